// The request-level audit both framework adapters share: one entry per request, written when the response
// finishes or the connection closes first.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { type ConnectionEnds, connectionEnds } from '../connection/socket-info.js';
import { addListener, headersOf, headersSent, responseHeader, writableFinished } from '../http-objects.js';
import type { AuditLog } from './audit-log.js';
import type { RequestFields } from './record.js';

/** Options of the `auditLog` middleware; `T` is the Express request or the Koa context. */
export interface AuditMiddlewareOptions<T> {
  /** The log from `createAuditLog`. */
  log: AuditLog;
  /** Returns an opaque user id for `user.id` (called when the request ends, after authentication ran). */
  user?: (target: T) => string | number | undefined | null;
  /** Returns true for requests that get no entry (health checks, metrics). */
  skip?: (target: T) => boolean;
  /**
   * What `url.path` holds: `'path'` (default; the path without query), `'route'` (the route template, e.g.
   * `/patients/:id`, falling back to the path), or a function returning the value to log (redaction).
   */
  path?: 'path' | 'route' | ((target: T) => string | undefined);
  /** Record the query's parameter names (never values) in `url.query`, e.g. `"dob&name"`. Default false. */
  queryKeys?: boolean;
  /** Header carrying an incoming request id (kept when 1–128 safe characters). Default `x-request-id`; false: always generate. */
  requestIdHeader?: string | false;
  /** Also set the request id on the response, under `requestIdHeader`. Default false: no header the app did not ask for. */
  echoRequestId?: boolean;
}

/** How the adapters tell the shared code about their framework. */
export interface FrameworkBinding<T> {
  /** The route template matched by the router, when known. */
  route(target: T): string | undefined;
  /** The client decided by `clientIp()`, when it ran. */
  client(target: T): { ip: string; port: number | undefined } | undefined;
}

const SAFE_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;
const MAX_PATH = 2048;
const MAX_UA = 512;

function queryNames(url: string, q: number): string | undefined {
  const names = new Set<string>();
  for (const part of url.slice(q + 1).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    let name = eq < 0 ? part : part.slice(0, eq);
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {}
    names.add(name.slice(0, 64));
  }
  return names.size === 0 ? undefined : [...names].sort().join('&');
}

function tlsVersion(socket: IncomingMessage['socket']): string | undefined {
  const p = (socket as TLSSocket | null)?.getProtocol?.();
  return typeof p === 'string' && p.startsWith('TLSv') ? p.slice(4) : undefined;
}

// Most requests carry the same Host header: remember the last answer.
let lastHost = '';
let lastDomain: string | undefined;

function domainOf(req: IncomingMessage): string | undefined {
  const headers = headersOf(req);
  const host = headers.host ?? (headers[':authority'] as string | undefined);
  if (!host) return undefined;
  if (host === lastHost) return lastDomain;
  const h = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  const d = h && /^[A-Za-z0-9.\-[\]:]{1,255}$/.test(h) ? h.toLowerCase() : undefined;
  lastHost = host;
  lastDomain = d;
  return d;
}

/** Whether the connection of an unfinished request went away through a server timeout. */
function timedOut(req: IncomingMessage): boolean {
  const err =
    (req as { errored?: (Error & { code?: string }) | null }).errored ??
    (req.socket as { errored?: (Error & { code?: string }) | null } | null)?.errored;
  return err?.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err?.code === 'ETIMEDOUT';
}

/** A throwing user callback must cost the entry one field, never the entry. */
function attempt<R>(fn: () => R): R | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

/** What `begin` decided. */
export type Begin = 'skip' | 'serve' | 'unavailable';

type Kind = 'finished' | 'aborted' | 'timeout' | 'shutdown';

/** The compiled options, shared by every request of one middleware. */
interface Compiled<T> {
  log: AuditLog;
  binding: FrameworkBinding<T>;
  user: ((target: T) => string | number | undefined | null) | undefined;
  path: 'path' | 'route' | ((target: T) => string | undefined);
  queryKeys: boolean;
}

/**
 * One request between `begin` and its entry: a plain object per request. Nothing is stored on the request or
 * the response: a property added to Node's objects gives them another hidden class, and the framework code
 * that touches them afterwards measured ~10% slower for it.
 */
export interface OpenEntry {
  compiled: Compiled<unknown>;
  target: unknown;
  req: IncomingMessage;
  res: ServerResponse;
  timestamp: number;
  t0: number;
  url: string;
  /** The incoming (or echoed) id; undefined: the log generates one as it writes the line. */
  requestId: string | undefined;
  socket: IncomingMessage['socket'];
  /** Read when the request starts: the balancer's address is asked of the socket while it is open. */
  ends: ConnectionEnds;
  accepting: boolean;
  done: boolean;
  /** Neighbours in the log's list of open entries (for the close deadline). */
  prev: OpenEntry | undefined;
  next: OpenEntry | undefined;
}

/** The response ended or the connection went away first. */
function closed(e: OpenEntry): void {
  if (writableFinished(e.res)) finish(e, 'finished');
  else finish(e, timedOut(e.req) ? 'timeout' : 'aborted');
}

/** Writes the entry of one request (once). Also called for requests still open at a close deadline. */
export function finish(e: OpenEntry, kind: Kind): void {
  if (e.done) return;
  e.done = true;
  const c = e.compiled;
  const { log, binding, path, user } = c;
  const { req, res, target, url } = e;
  log.untrack(e);
  try {
    const { ends } = e;
    const decided = binding.client(target);
    const route = binding.route(target);
    const q = url.indexOf('?');
    let logged: string | undefined;
    if (typeof path === 'function') logged = attempt(() => path(target));
    else logged = (path === 'route' ? route : undefined) ?? (q < 0 ? url : url.slice(0, q));
    const uid = user ? attempt(() => user(target)) : undefined;
    const status = kind === 'finished' || headersSent(res) ? res.statusCode : undefined;
    const length = Number(responseHeader(res, 'content-length') ?? Number.NaN);
    const ua = headersOf(req)['user-agent'];
    const fields: RequestFields = {
      timestamp: e.timestamp,
      category: 'web',
      action: 'http-request',
      outcome: kind !== 'finished' || (status ?? 500) >= 400 ? 'failure' : 'success',
      duration: (performance.now() - e.t0) * 1e6,
      // ('' is what clientIp() reports for a connection gone before it asked: unknown, not an address)
      clientIp: decided && decided.ip !== '' ? decided.ip : ends.clientIp,
      clientPort: decided && decided.ip !== '' ? decided.port : ends.clientPort,
      peerAddress: ends.peerIp,
      peerPort: ends.peerPort,
      method: req.method,
      requestId: e.requestId,
      generateRequestId: true,
      httpVersion: req.httpVersion,
      domain: domainOf(req),
      path: logged === undefined ? undefined : logged.slice(0, MAX_PATH),
      query: c.queryKeys && q >= 0 ? queryNames(url, q) : undefined,
      route,
      status,
      bytes: Number.isSafeInteger(length) && length >= 0 ? length : undefined,
      userAgent: typeof ua === 'string' ? ua.slice(0, MAX_UA) : undefined,
      userId: uid === undefined || uid === null ? undefined : String(uid),
      tlsVersion: tlsVersion(e.socket),
    };
    if (!e.accepting) {
      fields.errorType = 'audit_unavailable';
    } else if (kind === 'aborted') {
      fields.errorType = 'client_aborted';
    } else if (kind === 'timeout') {
      fields.errorType = 'timeout';
    } else if (kind === 'shutdown') {
      fields.errorType = 'shutdown';
    }
    log.write(fields);
  } finally {
    log.end();
  }
}

/**
 * Compiles the options once. The returned `begin` is called at the start of every request: it registers the
 * entry for when the request ends and says whether to serve it (`'unavailable'`: answer 503, the log is
 * failing closed).
 */
export function compileRequestAudit<T>(options: AuditMiddlewareOptions<T>, binding: FrameworkBinding<T>) {
  const {
    log,
    user,
    skip,
    path = 'path',
    queryKeys = false,
    requestIdHeader = 'x-request-id',
    echoRequestId = false,
  } = options ?? ({} as never);
  if (!log || typeof log.write !== 'function')
    throw new TypeError('auditLog: options.log must be an AuditLog from createAuditLog');
  if (user !== undefined && typeof user !== 'function') throw new TypeError('auditLog: user must be a function');
  if (skip !== undefined && typeof skip !== 'function') throw new TypeError('auditLog: skip must be a function');
  if (path !== 'path' && path !== 'route' && typeof path !== 'function')
    throw new TypeError("auditLog: path must be 'path', 'route' or a function");
  if (requestIdHeader !== false && typeof requestIdHeader !== 'string') throw new TypeError('auditLog: bad requestIdHeader');
  const idHeader = requestIdHeader === false ? undefined : requestIdHeader.toLowerCase();
  const compiled: Compiled<T> = { log, binding, user, path, queryKeys };

  return function begin(target: T, req: IncomingMessage, res: ServerResponse): Begin {
    if (skip?.(target)) return 'skip';
    const timestamp = Date.now();
    const t0 = performance.now();
    const incoming = idHeader ? headersOf(req)[idHeader] : undefined;
    let requestId = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : undefined;
    if (echoRequestId) {
      // Needed now, as a string; otherwise the log writes a new one into the line (same kind: random UUID v4).
      requestId ??= randomUUID();
      if (!res.headersSent) res.setHeader(idHeader ?? 'x-request-id', requestId);
    }
    const accepting = log.accepting;
    const socket = req.socket;
    log.begin();
    const e: OpenEntry = {
      compiled: compiled as Compiled<unknown>,
      target,
      req,
      res,
      timestamp,
      t0,
      url: req.url ?? '/',
      requestId,
      socket,
      ends: connectionEnds(socket),
      accepting,
      done: false,
      prev: undefined,
      next: undefined,
    };
    log.track(e);
    // ServerResponse (and Http2ServerResponse) emit 'close' once, when the response completed or the
    // connection went away first: one listener instead of on-finished's several.
    addListener.call(res, 'close', () => closed(e));
    // A connection that went away before this middleware ran (during an earlier asynchronous one) had its
    // response's 'close' already, and nothing the app sends can reach the client: the entry is written as
    // aborted once this turn's handlers ran (after authentication, so that user() can still answer).
    if (socket?.destroyed) setImmediate(finish, e, timedOut(req) ? 'timeout' : 'aborted');
    return accepting || !log.failClosed ? 'serve' : 'unavailable';
  };
}
