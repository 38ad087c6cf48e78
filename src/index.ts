/**
 * proxy-protocol-audit: PROXY protocol v1/v2 for Node.js servers, the client address on every socket, and a
 * tamper-evident audit log. Framework adapters live in `proxy-protocol-audit/express` and `/koa`.
 * @packageDocumentation
 */
export * from './protocol/index.js';
export { type HttpServerOptions, type ServerOptions, createHttpServer, createServer } from './connection/create-server.js';
export type { ProxyProtocolOptions } from './connection/options.js';
export { type ProxyInfo, getProxyInfo } from './connection/socket-info.js';
export { withProxyProtocol } from './connection/with-proxy-protocol.js';
export { type TrustList, compileTrust, unmapIPv4 } from './trust.js';
