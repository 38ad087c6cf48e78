import http from 'node:http';
import https from 'node:https';
import { checkNear } from '../known-options.js';
import type { ProxyProtocolOptions } from './options.js';
import { withProxyProtocol } from './with-proxy-protocol.js';

/** `https.createServer` options plus `proxyProtocol`. */
export interface ServerOptions extends https.ServerOptions {
  proxyProtocol?: ProxyProtocolOptions;
}

/** `http.createServer` options plus `proxyProtocol`. */
export interface HttpServerOptions extends http.ServerOptions {
  proxyProtocol?: ProxyProtocolOptions;
}

function split<T extends { proxyProtocol?: ProxyProtocolOptions }>(
  options: T | http.RequestListener | undefined,
  listener: http.RequestListener | undefined,
  who: string,
): [Omit<T, 'proxyProtocol'>, ProxyProtocolOptions | undefined, http.RequestListener | undefined] {
  if (typeof options === 'function') return [{} as T, undefined, options];
  if (options !== undefined && options !== null && typeof options === 'object') checkNear(options, 'proxyProtocol', who);
  // A copy without our key: the caller's object is never mutated.
  const { proxyProtocol, ...rest } = options ?? ({} as T);
  return [rest, proxyProtocol, listener];
}

/**
 * Drop-in for `https.createServer`: same arguments, plus `proxyProtocol` in the options. Every connection
 * must start with a PROXY header, which is read before the TLS ClientHello.
 *
 * @example
 * ```ts
 * import { createServer } from 'proxy-protocol-audit'; // was: import { createServer } from 'node:https'
 * createServer({ key, cert, proxyProtocol: { trustedProxies: ['10.0.0.0/8'] } }, app).listen(443);
 * ```
 */
export function createServer(options: ServerOptions, requestListener?: http.RequestListener): https.Server;
export function createServer(requestListener?: http.RequestListener): https.Server;
export function createServer(
  options?: ServerOptions | http.RequestListener,
  requestListener?: http.RequestListener,
): https.Server {
  const [rest, pp, listener] = split(options, requestListener, 'createServer');
  return withProxyProtocol(https.createServer(rest, listener), pp);
}

/**
 * Drop-in for `http.createServer` with `proxyProtocol` in the options: for TLS terminated elsewhere, or
 * for local development.
 *
 * @example
 * ```ts
 * createHttpServer({ proxyProtocol: { requireHeader: true } }, app).listen(8080);
 * ```
 */
export function createHttpServer(options?: HttpServerOptions, requestListener?: http.RequestListener): http.Server;
export function createHttpServer(requestListener?: http.RequestListener): http.Server;
export function createHttpServer(
  options?: HttpServerOptions | http.RequestListener,
  requestListener?: http.RequestListener,
): http.Server {
  const [rest, pp, listener] = split(options, requestListener, 'createHttpServer');
  return withProxyProtocol(http.createServer(rest, listener), pp);
}
