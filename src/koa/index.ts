/**
 * Koa adapter: `clientIp()` and `auditLog()` middleware.
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type {} from 'koa';
import { type ClientAddress, type ClientIpOptions, compileClientIp, compileClientIpOption } from '../client-ip.js';
import { type AuditMiddlewareOptions, compileRequestAudit } from '../middleware/request-audit.js';

export type { ClientIpOptions } from '../client-ip.js';

declare module 'koa' {
  interface DefaultContext {
    /** The client IP from the PROXY header (or the socket), set by `clientIp()`. */
    clientIp: string;
    /** The client port, when known. */
    clientPort: number | undefined;
  }
  interface Request {
    /** The client IP from the PROXY header (or the socket), set by `clientIp()`. */
    clientIp: string;
  }
}

/** The part of a Koa context the middleware touches (keeps this file free of a runtime Koa import). */
interface KoaLikeContext {
  req: IncomingMessage;
  res: ServerResponse;
  request: object;
  clientIp?: string;
  clientPort?: number;
  _matchedRoute?: unknown;
  status?: number;
  body?: unknown;
  set?: (field: string, value: string) => void;
}

/**
 * Sets `ctx.clientIp`, `ctx.clientPort` and `ctx.request.clientIp` from the PROXY header of the connection
 * (or the socket peer), makes `ctx.ip` / `ctx.request.ip` the same address whatever `app.proxy` says, and makes
 * `X-Forwarded-For` spoof-proof.
 *
 * @param options.forwardedFor `'replace'` (default) | `'append'` | `'preserve'`
 * @param options.trustForwardedFrom layer-7 hops whose `X-Forwarded-For` entries are followed (default none)
 * @example
 * ```ts
 * import { clientIp } from 'proxy-protocol-audit/koa';
 * app.use(clientIp());
 * app.use((ctx) => { ctx.body = ctx.clientIp; });
 * ```
 */
export function clientIp(options: ClientIpOptions = {}) {
  const resolve = compileClientIp(options);
  return function clientIp(ctx: KoaLikeContext, next: () => Promise<unknown>): Promise<unknown> {
    setClientIp(resolve, ctx);
    return next();
  };
}

/** What `clientIp()` does to one context (also run by `auditLog({ clientIp })`). */
function setClientIp(resolve: (req: IncomingMessage) => ClientAddress, ctx: KoaLikeContext): void {
  const { ip, port } = resolve(ctx.req);
  const c = ctx as KoaLikeContext & {
    clientIp: string;
    clientPort: number | undefined;
    request: { clientIp: string; ip: string };
  };
  c.clientIp = ip;
  c.clientPort = port;
  c.request.clientIp = ip;
  // Koa's `request.ip` (and `ctx.ip`, which delegates to it) is read once and memoised, from
  // X-Forwarded-For when `app.proxy` is set; its setter replaces the memo, also after an earlier reader.
  c.request.ip = ip;
}

/** Options of the Koa `auditLog` middleware (`T` is your Koa context type). */
export type KoaAuditOptions<T = import('koa').Context> = AuditMiddlewareOptions<T> & {
  /** Also do what `clientIp()` does, first, in the same middleware: `true`, or the options of `clientIp()`. Default false. */
  clientIp?: boolean | ClientIpOptions;
};

/**
 * One audit entry per request, written when the response finishes or the connection closes first. Use it
 * first, after `clientIp()` — or give it `clientIp: true` and use it alone. While the log fails closed,
 * requests are answered 503.
 *
 * @param options.log the log from `createAuditLog` (required)
 * @param options.user `(ctx) => id`: opaque user id for `user.id`
 * @param options.skip `(ctx) => boolean`: no entry (e.g. health checks)
 * @param options.path `'path'` (default) | `'route'` (from @koa/router) | `(ctx) => string`
 * @param options.queryKeys record query parameter names, never values (default false)
 * @param options.requestIdHeader default `x-request-id`
 * @param options.echoRequestId set the id on the response too (default false)
 * @param options.clientIp `true` or `clientIp()`'s options: set the client address in this same middleware
 * @example
 * ```ts
 * app.use(clientIp());
 * app.use(auditLog({ log, user: (ctx) => ctx.state.user?.id }));
 * ```
 */
export function auditLog<T = import('koa').Context>(options: KoaAuditOptions<T>) {
  const resolve = compileClientIpOption(options?.clientIp);
  const begin = compileRequestAudit<KoaLikeContext>(options as unknown as AuditMiddlewareOptions<KoaLikeContext>, {
    route(ctx) {
      return typeof ctx._matchedRoute === 'string' ? ctx._matchedRoute : undefined;
    },
    client(ctx) {
      return ctx.clientIp === undefined ? undefined : { ip: ctx.clientIp, port: ctx.clientPort };
    },
    url: (ctx) => (ctx as { originalUrl?: string }).originalUrl,
  });
  return function auditLog(ctx: KoaLikeContext, next: () => Promise<unknown>): Promise<unknown> {
    if (resolve !== undefined) setClientIp(resolve, ctx);
    const decision = begin(ctx, ctx.req, ctx.res);
    if (decision === 'skip' || decision === 'serve') return next();
    if (decision === 'drop') {
      (ctx as { respond?: boolean }).respond = false;
      return Promise.resolve();
    }
    ctx.status = 503;
    if (decision === 'closing') ctx.set?.('connection', 'close');
    else ctx.set?.('retry-after', '5');
    ctx.body = decision === 'closing' ? 'Service Unavailable: shutting down\n' : 'Service Unavailable: audit log unavailable\n';
    return Promise.resolve();
  };
}
