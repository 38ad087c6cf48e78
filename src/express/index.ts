/**
 * Express adapter: `clientIp()` and `auditLog()` middleware.
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type {} from 'express-serve-static-core';
import { type ClientAddress, type ClientIpOptions, compileClientIp, compileClientIpOption } from '../client-ip.js';
import { clientIpOf, clientPortOf } from '../connection/socket-info.js';
import { type AuditMiddlewareOptions, compileRequestAudit } from '../middleware/request-audit.js';

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

type Decided = { ip: string; port: number | undefined };
type Store = WeakMap<object, Decided>;

// Where the address lives. Express gives every request its app's `request` object as prototype
// (Object.setPrototypeOf); after that, every property added to a request makes V8 build a new hidden class for
// that one object, which measured several microseconds for the two properties. So, as Express defines `req.ip`
// with a getter on its request prototype, `clientIp`, `clientPort` and `ip` are accessors on the outermost
// app's `request`: they read the connection's client (what the PROXY header said), unless the middleware took
// the address from X-Forwarded-For or someone assigned it, which one store then holds; `ip` stays Express's
// own for a request the middleware has not seen. The store is named by a registry symbol so that two copies
// of this package (ESM and CommonJS) share it.
const kDecided = Symbol.for('proxy-protocol-audit.express.decided');
const kConnection = Symbol.for('proxy-protocol-audit.express.connection');
const registry = globalThis as { [kDecided]?: Store; [kConnection]?: Decided };
registry[kDecided] ??= new WeakMap();
const decided: Store = registry[kDecided];
/**
 * What the store holds for a request that passed clientIp() with the connection's client as its address:
 * `req.ip` is Express's own for a request that has not (a route outside the middleware, a middleware before
 * it), whichever request came first.
 */
registry[kConnection] ??= Object.freeze({ ip: '', port: undefined });
const CONNECTION: Decided = registry[kConnection];

/** Request prototypes (one per app) whose chain has the accessors. */
const ready = new WeakSet<object>();

function ipOf(req: IncomingMessage): string {
  const d = decided.get(req);
  return d !== undefined && d !== CONNECTION ? d.ip : (clientIpOf(req.socket) ?? '');
}

function portOf(req: IncomingMessage): number | undefined {
  const d = decided.get(req);
  return d !== undefined && d !== CONNECTION ? d.port : clientPortOf(req.socket);
}

/** The accessors for an app tree whose Express defines `req.ip` with `expressIp`. */
function accessorsOver(expressIp: ((this: IncomingMessage) => string) | undefined): PropertyDescriptorMap {
  return {
    ...accessors,
    // Express's own `req.ip` reads X-Forwarded-For as `trust proxy` says, which can disagree with the decided
    // address (`trust proxy: true` with `forwardedFor: 'append'` gives the client's first, spoofable entry).
    ip: {
      configurable: true,
      enumerable: true,
      get(this: IncomingMessage): string {
        if (decided.has(this) || expressIp === undefined) return ipOf(this);
        return expressIp.call(this);
      },
    },
  };
}

const accessors: PropertyDescriptorMap = {
  [kDecided]: { value: decided, configurable: true },
  clientIp: {
    configurable: true,
    get(this: IncomingMessage): string {
      return ipOf(this);
    },
    set(this: IncomingMessage, ip: string) {
      decided.set(this, { ip, port: portOf(this) });
    },
  },
  clientPort: {
    configurable: true,
    get(this: IncomingMessage): number | undefined {
      return portOf(this);
    },
    set(this: IncomingMessage, port: number | undefined) {
      decided.set(this, { ip: ipOf(this), port });
    },
  },
};

/** The store when the accessors are on this request's prototype chain; else undefined. */
function findStore(req: IncomingMessage, proto: object | null): Store | undefined {
  if (proto === null) return undefined;
  if (ready.has(proto)) return decided;
  if (!(kDecided in req)) return undefined;
  ready.add(proto); // a sub-app's prototype, or installed by another copy of this package
  return decided;
}

/** The store, installing the accessors on the app's first request; undefined outside Express. */
function storeOf(req: IncomingMessage): Store | undefined {
  const proto = Object.getPrototypeOf(req) as object | null;
  const found = findStore(req, proto);
  if (found !== undefined || proto === null) return found;
  type App = { request?: unknown; parent?: App };
  const app = (req as { app?: App }).app;
  if (app === undefined || app === null || app.request !== proto) return undefined; // not Express
  // On the outermost app's `request`: a mounted app's `request` inherits from its parent's, so every app of
  // the tree sees them, also once the request has left the sub-app whose clientIp() installed them.
  let top = app;
  for (let up = top.parent; up && typeof up.request === 'object' && up.request !== null; up = up.parent) top = up;
  let own = Object.getPrototypeOf(top.request) as object | null;
  while (own !== null && !Object.hasOwn(own, 'ip')) own = Object.getPrototypeOf(own) as object | null;
  const expressIp = own === null ? undefined : Object.getOwnPropertyDescriptor(own, 'ip')?.get;
  Object.defineProperties(top.request as object, accessorsOver(expressIp));
  ready.add(proto);
  // Set before the accessors existed: own properties would hide them.
  const r = req as { clientIp?: unknown; clientPort?: unknown };
  if (Object.hasOwn(r, 'clientIp')) delete r.clientIp;
  if (Object.hasOwn(r, 'clientPort')) delete r.clientPort;
  return decided;
}

/**
 * Sets `req.clientIp` and `req.clientPort` from the PROXY header of the connection (or the socket peer),
 * makes `req.ip` report the same address whatever `trust proxy` says, and makes `X-Forwarded-For` spoof-proof.
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
    setClientIp(resolve, req);
    next();
  };
}

/** What `clientIp()` does to one request (also run by `auditLog({ clientIp })`). */
function setClientIp(resolve: (req: IncomingMessage) => ClientAddress, req: IncomingMessage): void {
  const d = resolve(req);
  const store = storeOf(req);
  if (store !== undefined) {
    // The accessors read the connection's client, or the address from X-Forwarded-For stored here (one
    // assigned before this middleware ran is dropped, as an assignment would have overwritten it).
    store.set(req, d.forwarded ? { ip: d.ip, port: d.port } : CONNECTION);
  } else {
    const r = req as IncomingMessage & { clientIp: string; clientPort: number | undefined };
    r.clientIp = d.ip;
    r.clientPort = d.port;
  }
}

type ExpressLikeRequest = IncomingMessage & {
  clientIp?: string;
  clientPort?: number;
  route?: { path?: unknown };
  baseUrl?: string;
};

/** Options of the Express `auditLog` middleware. */
export type ExpressAuditOptions = AuditMiddlewareOptions<ExpressLikeRequest & import('express-serve-static-core').Request> & {
  /**
   * Also do what `clientIp()` does, first, in the same middleware: `true`, or the options of `clientIp()`.
   * Default false. Every Express middleware layer costs a small request a few percent (two no-op layers
   * measured ~6%), so one layer doing both is cheaper than `app.use(clientIp())` + `app.use(auditLog())`.
   */
  clientIp?: boolean | ClientIpOptions;
};

/**
 * One audit entry per request, written when the app ends the response (whose last bytes wait until the
 * line is written) or when the connection closes first. Put it first, after `clientIp()` — or give it `clientIp: true` and use it alone: one Express layer instead of two.
 * While the log fails closed, requests are answered 503.
 *
 * @param options.log the log from `createAuditLog` (required)
 * @param options.user `(req) => id`: opaque user id for `user.id`
 * @param options.skip `(req) => boolean`: no entry (e.g. health checks)
 * @param options.path `'path'` (default) | `'route'` | `(req) => string`: what `url.path` holds
 * @param options.queryKeys record query parameter names, never values (default false)
 * @param options.requestIdHeader default `x-request-id`
 * @param options.echoRequestId set the id on the response too (default false)
 * @param options.clientIp `true` or `clientIp()`'s options: set the client address in this same middleware
 * @example
 * ```ts
 * app.use(auditLog({ log, clientIp: true, user: (req) => req.user?.id, skip: (req) => req.path === '/health' }));
 * // the same, in two layers:
 * app.use(clientIp());
 * app.use(auditLog({ log, user: (req) => req.user?.id }));
 * ```
 */
export function auditLog(options: ExpressAuditOptions) {
  const resolve = compileClientIpOption(options?.clientIp);
  const begin = compileRequestAudit<ExpressLikeRequest>(options as AuditMiddlewareOptions<ExpressLikeRequest>, {
    route(req) {
      const p = req.route?.path;
      return typeof p === 'string' ? `${req.baseUrl ?? ''}${p}` : undefined;
    },
    client(req) {
      const store = findStore(req, Object.getPrototypeOf(req));
      // With the accessors, the address is the stored one or else the connection's (which the audit has).
      if (store !== undefined) return store.get(req);
      return req.clientIp === undefined ? undefined : { ip: req.clientIp, port: req.clientPort };
    },
    url: (req) => (req as { originalUrl?: string }).originalUrl,
  });
  return function auditLog(req: IncomingMessage, res: ServerResponse, next: Next): void {
    if (resolve !== undefined) setClientIp(resolve, req);
    const decision = begin(req as ExpressLikeRequest, req, res);
    if (decision === 'skip' || decision === 'serve') {
      next();
      return;
    }
    if (decision === 'drop') return;
    res.statusCode = 503;
    if (decision === 'closing') res.setHeader('connection', 'close');
    else res.setHeader('retry-after', '5');
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end(decision === 'closing' ? 'Service Unavailable: shutting down\n' : 'Service Unavailable: audit log unavailable\n');
  };
}
