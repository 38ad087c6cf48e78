/**
 * Koa adapter: `clientIp()` and `auditLog()` middleware.
 * @packageDocumentation
 */
import type { IncomingMessage } from 'node:http';
import type {} from 'koa';
import { type ClientIpOptions, compileClientIp } from '../client-ip.js';

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
  request: object;
}

/**
 * Sets `ctx.clientIp`, `ctx.clientPort` and `ctx.request.clientIp` from the PROXY header of the connection
 * (or the socket peer) and makes `X-Forwarded-For` spoof-proof.
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
    const { ip, port } = resolve(ctx.req);
    const c = ctx as KoaLikeContext & { clientIp: string; clientPort: number | undefined; request: { clientIp: string } };
    c.clientIp = ip;
    c.clientPort = port;
    c.request.clientIp = ip;
    return next();
  };
}
