/**
 * Express adapter: `clientIp()` and `auditLog()` middleware.
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type {} from 'express-serve-static-core';
import { type ClientIpOptions, compileClientIp } from '../client-ip.js';

export type { ClientIpOptions } from '../client-ip.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** The client IP from the PROXY header (or the socket), set by `clientIp()`. IPv4-mapped IPv6 is unmapped. */
    clientIp: string;
    /** The client port, when known (not when the address came from `X-Forwarded-For`). */
    clientPort: number | undefined;
  }
}

type Next = (err?: unknown) => void;

/**
 * Sets `req.clientIp` and `req.clientPort` from the PROXY header of the connection (or the socket peer) and
 * makes `X-Forwarded-For` spoof-proof.
 *
 * @param options.forwardedFor `'replace'` (default) | `'append'` | `'preserve'`
 * @param options.trustForwardedFrom layer-7 hops whose `X-Forwarded-For` entries are followed (default none)
 * @example
 * ```ts
 * import { clientIp } from 'proxy-protocol-audit/express';
 * app.use(clientIp());
 * app.get('/', (req, res) => res.send(req.clientIp));
 * ```
 */
export function clientIp(options: ClientIpOptions = {}) {
  const resolve = compileClientIp(options);
  return function clientIp(req: IncomingMessage, _res: ServerResponse, next: Next): void {
    const { ip, port } = resolve(req);
    const r = req as IncomingMessage & { clientIp: string; clientPort: number | undefined };
    r.clientIp = ip;
    r.clientPort = port;
    next();
  };
}
