/**
 * Express adapter: `clientIp()` and `auditLog()` middleware.
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type {} from 'express-serve-static-core';
import { type AuditMiddlewareOptions, compileRequestAudit } from '../audit/http-entry.js';
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

type ExpressLikeRequest = IncomingMessage & {
  clientIp?: string;
  clientPort?: number;
  route?: { path?: unknown };
  baseUrl?: string;
};

/** Options of the Express `auditLog` middleware. */
export type ExpressAuditOptions = AuditMiddlewareOptions<ExpressLikeRequest & import('express-serve-static-core').Request>;

/**
 * One audit entry per request, written when the response finishes or the connection closes first. Put it
 * first, after `clientIp()`. While the log fails closed, requests are answered 503.
 *
 * @param options.log the log from `createAuditLog` (required)
 * @param options.user `(req) => id`: opaque user id for `user.id`
 * @param options.skip `(req) => boolean`: no entry (e.g. health checks)
 * @param options.path `'path'` (default) | `'route'` | `(req) => string`: what `url.path` holds
 * @param options.queryKeys record query parameter names, never values (default false)
 * @param options.requestIdHeader default `x-request-id`
 * @param options.echoRequestId set the id on the response too (default false)
 * @example
 * ```ts
 * app.use(clientIp());
 * app.use(auditLog({ log, user: (req) => req.user?.id, skip: (req) => req.path === '/health' }));
 * ```
 */
export function auditLog(options: ExpressAuditOptions) {
  const begin = compileRequestAudit<ExpressLikeRequest>(options as AuditMiddlewareOptions<ExpressLikeRequest>, {
    route(req) {
      const p = req.route?.path;
      return typeof p === 'string' ? `${req.baseUrl ?? ''}${p}` : undefined;
    },
    client(req) {
      return req.clientIp === undefined ? undefined : { ip: req.clientIp, port: req.clientPort };
    },
  });
  return function auditLog(req: IncomingMessage, res: ServerResponse, next: Next): void {
    if (begin(req as ExpressLikeRequest, req, res) === 'unavailable') {
      res.statusCode = 503;
      res.setHeader('retry-after', '5');
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end('Service Unavailable: audit log unavailable\n');
      return;
    }
    next();
  };
}
