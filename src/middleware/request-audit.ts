// The request lifecycle every adapter shares: one entry per request, on the log's open-entry API. The entry
// is written when the app ends its response — and the last bytes of that response wait until the line is
// written, so that no client ever holds an answer whose entry a crash could still lose — or when the
// connection closes first.

import { randomUUID } from 'node:crypto';
import { type IncomingMessage, OutgoingMessage, type ServerResponse } from 'node:http';
import type { Http2Session, Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { AuditLog, OpenEntry } from '../audit/audit-log.js';
import { type AuditFields, MAX_STRING } from '../audit/entry.js';
import { claim, claimed, handOver, takeOver } from '../audited.js';
import { type BalancerFacts, balancerFacts, type ConnectionEnds, connectionEnds } from '../connection/socket-info.js';
import { addListener, headersOf, headersSent, MAX_PATH, pathOf, responseHeader } from '../http-objects.js';
import { checkOptions, type Known } from '../known-options.js';

/** Options of the `auditLog` middleware; `T` is the Express request or the Koa context. */
export interface AuditMiddlewareOptions<T> {
  /** The log from `createAuditLog`. */
  log: AuditLog;
  /**
   * Returns an opaque user id for `user.id` (called when the request ends, after authentication ran). A
   * string or a finite number; anything else (or a throw) leaves `user.id` out and is reported as a warning.
   */
  user?: (target: T) => string | number | undefined | null;
  /** Returns true for requests that get no entry (health checks, metrics). A throw counts as "audit it". */
  skip?: (target: T) => boolean;
  /**
   * What `url.path` holds: `'path'` (default; the path without query), `'route'` (the route template, e.g.
   * `/patients/:id`, falling back to the path), or a function returning the string to log (redaction).
   */
  path?: 'path' | 'route' | ((target: T) => string | undefined);
  /** Record the query's parameter names (never values) in `url.query`, e.g. `"dob&name"`. Default false. */
  queryKeys?: boolean;
  /** Header carrying an incoming request id (kept when 1–128 safe characters). Default `x-request-id`; false: always generate. */
  requestIdHeader?: string | false;
  /** Also set the request id on the response, under `requestIdHeader`. Default false: no header the app did not ask for. */
  echoRequestId?: boolean;
  /**
   * Which request id wins when both are there: by default the balancer's unique id (PROXY v2 unique-id TLV,
   * set by the balancer, so the two logs join) before the `requestIdHeader` (which a client can set); true:
   * the header first. Default false.
   */
  preferRequestIdHeader?: boolean;
}

/** How an adapter tells the shared code about its framework. */
export interface FrameworkBinding<T> {
  /** The route template matched by the router, when known. */
  route(target: T): string | undefined;
  /** The client decided by `clientIp()`, when it ran. */
  client(target: T): { ip: string; port: number | undefined } | undefined;
  /**
   * The response's body size, when the framework declared it where `res.getHeader()` cannot see it
   * (`res.writeHead(status, headers)` with a headers object, as Fastify does).
   */
  bytes?(target: T): number | undefined;
  /**
   * The request target as the client sent it, when a router may have cut it short in `req.url` (Express and
   * Koa strip a mount path there and keep the whole in `originalUrl`).
   */
  url?(target: T): string | undefined;
}

/**
 * What `begin` decided: `'skip'` (no entry; serve), `'serve'`, `'unavailable'` (answer 503: the log fails
 * closed), `'closing'` (answer 503 with `Connection: close`: the log is closing), `'drop'` (the log is
 * closed: the connection was destroyed, answer nothing).
 */
export type Begin = 'skip' | 'serve' | 'unavailable' | 'closing' | 'drop';

export const SAFE_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;
export const MAX_UA = 512;

/** The names of the query's `name=value` parameters, sorted, or undefined (see the `queryKeys` option). */
export function queryNames(url: string): string | undefined {
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  const hash = url.indexOf('#');
  if (hash >= 0 && hash < q) return undefined; // (in the fragment)
  const names = new Set<string>();
  for (const part of url.slice(q + 1, hash < 0 ? url.length : hash).split('&')) {
    const eq = part.indexOf('=');
    // A part without `=` names nothing: it is a value (`?222-22-2222`), and values are never logged.
    if (eq <= 0) continue;
    let name = part.slice(0, eq);
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {}
    names.add(name.slice(0, 64));
  }
  return names.size === 0 ? undefined : [...names].sort().join('&');
}

/** `TLSv1.3` → `1.3` (ECS `tls.version`). */
function ecsTlsVersion(p: unknown): string | undefined {
  return typeof p === 'string' && p.startsWith('TLSv') ? p.slice(4) : undefined;
}

/** The TLS version of a connection this process decrypts. */
export function tlsVersion(socket: IncomingMessage['socket']): string | undefined {
  return ecsTlsVersion((socket as TLSSocket | null)?.getProtocol?.());
}

/**
 * The TLS facts of a request's connection for `tls.*`: the connection's own when this process decrypts it,
 * else what the balancer said in its SSL TLV when TLS ended there (version, cipher, client certificate CN).
 */
export function tlsFacts(
  socket: IncomingMessage['socket'],
  facts: BalancerFacts,
): { version?: string; cipher?: string; clientCn?: string } | undefined {
  const own = tlsVersion(socket);
  if (own !== undefined) return { version: own };
  const t = facts.tls;
  return t === undefined ? undefined : { version: ecsTlsVersion(t.version), cipher: t.cipher, clientCn: t.clientCn };
}

/**
 * The request id of an entry: the balancer's unique id (PROXY v2 unique-id TLV, e.g. HAProxy's
 * `unique-id-format`, which its own log carries) when it sent one, else the incoming header — or the header
 * first with `preferHeader`. Each only when it is 1–128 safe characters. Undefined: generate one.
 */
export function pickRequestId(incoming: unknown, facts: BalancerFacts, preferHeader: boolean): string | undefined {
  const header = typeof incoming === 'string' && SAFE_ID.test(incoming) ? incoming : undefined;
  const balancer = facts.uniqueId !== undefined && SAFE_ID.test(facts.uniqueId) ? facts.uniqueId : undefined;
  return preferHeader ? (header ?? balancer) : (balancer ?? header);
}

// Most requests carry the same Host header: remember the last answer.
let lastHost = '';
let lastDomain: string | undefined;

/** `url.domain`: the Host (or `:authority`) of the request, else the balancer's authority TLV (its SNI). */
export function domainOf(req: IncomingMessage, facts?: BalancerFacts): string | undefined {
  const headers = headersOf(req);
  const host = headers.host ?? (headers[':authority'] as string | undefined) ?? facts?.authority;
  if (!host) return undefined;
  if (host === lastHost) return lastDomain;
  const h = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  const d = h && /^[A-Za-z0-9.\-[\]:]{1,255}$/.test(h) ? h.toLowerCase() : undefined;
  lastHost = host;
  lastDomain = d;
  return d;
}

// Sockets whose idle timeout (`server.timeout`, `socket.setTimeout`) fired: Node then destroys them without an
// error, so a listener (one per connection, added at its first audited request) is the only way to tell.
// A listener on the socket changes nothing of what Node does on a timeout (it asks the request, the
// response and the server, not the socket's listeners).
// The time of the last timeout is kept (performance.now()), not the fact: an app that handles a timeout
// (`server.setTimeout(ms, callback)`) keeps the connection, and a later request on it is not timed out by it.
const idleTimedOut = new WeakMap<object, number>();

/** Whether `socket` (or an HTTP/2 session) timed out since `since` (a request's start, performance.now()). */
function timedOutSince(socket: object | null | undefined, since: number): boolean {
  const at = socket ? idleTimedOut.get(socket) : undefined;
  return at !== undefined && at >= since;
}

// An HTTP/2 session's idle timeout (`server.setTimeout()` of an http2 server) destroys the session the same way.
function watchTimeout(socket: Socket | Http2Session): void {
  // (Node's own listener, added before this one, has destroyed the socket or session by now unless the app
  // handled the timeout: a handled one keeps the connection and is no cause of its end)
  socket.on('timeout', () => {
    if (socket.destroyed) idleTimedOut.set(socket, performance.now());
  });
}

/**
 * An HTTP/1 connection with audited requests: how many answers the app made are not yet sent (held for their
 * entries, or queued behind one: pipelined), and an end Node asked for meanwhile.
 */
interface Connection {
  unsent: number;
  /** Node's `socket.end()` waits for them (see connectionOf). */
  hooked: boolean;
  /** The arguments of that `socket.end()` call, once made. */
  endArgs: unknown[] | undefined;
}

const connections = new WeakMap<object, Connection>();

/**
 * The connection of an audited HTTP/1 request, watched from its first one: its timeout (above), and the
 * client's half-close. Node's HTTP server ends a connection as soon as it reads that (its `httpAllowHalfOpen`
 * is off): without the audit every answer made before is sent by then, but an answer held for its entry, or
 * queued behind one (pipelined), would be cut while its entry says it was sent. So the held ones are let go
 * at once (this listener runs before Node's own), and Node's `socket.end()` waits until the answers made
 * before are sent; an answer the app makes later is lost as without the audit, and written as
 * `client_aborted` (test/middleware/half-close.test.ts). The hook is an own property of this socket only,
 * there while those answers are sent.
 */
function connectionOf(socket: Socket, log: AuditLog): Connection {
  const known = connections.get(socket);
  if (known !== undefined) return known;
  const conn: Connection = { unsent: 0, hooked: false, endArgs: undefined };
  connections.set(socket, conn);
  watchTimeout(socket);
  socket.prependListener('end', () => {
    log.settle();
    if (conn.unsent === 0) return;
    conn.hooked = true;
    socket.end = function endAfterAnswers(this: Socket, ...args: unknown[]): Socket {
      conn.endArgs = args;
      return this;
    } as Socket['end'];
  });
  return conn;
}

/** An answer of `conn` is sent (or given up): the last one lets an end that waited go on. */
function answerSent(socket: Socket, conn: Connection): void {
  if (--conn.unsent > 0 || !conn.hooked) return;
  conn.hooked = false;
  delete (socket as { end?: unknown }).end;
  const args = conn.endArgs;
  conn.endArgs = undefined;
  if (args !== undefined && !socket.destroyed) socket.end(...(args as []));
}

// HTTP/2 sessions whose connection the client ended (its FIN) or the network failed under (a system call's
// error, a reset): a session destroyed otherwise was destroyed by the server. The session's socket is gone by
// the time its streams close, so its end is listened for (through `session.socket`, which forwards listeners
// to the connection's socket) at the first audited request of each session.
// Its timeout is watched from then too (see watchTimeout).
const watchedSessions = new WeakSet<Http2Session>();
const clientEnded = new WeakSet<Http2Session>();
function watchSession(session: Http2Session): void {
  if (watchedSessions.has(session)) return;
  watchedSessions.add(session);
  watchTimeout(session);
  const left = () => clientEnded.add(session);
  try {
    const socket = session.socket;
    socket.on('end', left);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (typeof err.syscall === 'string') left();
    });
  } catch {
    // (a session no longer bound to its socket: gone already, the client's doing or not, it reads as the client's)
    left();
  }
}

/**
 * The status an HTTP/2 compatibility response's stream sent when the app answered through the stream itself
 * and the stream ended normally (no reset: `rstCode` 0, NGHTTP2_NO_ERROR); otherwise undefined.
 */
function streamAnswer(res: ServerResponse): number | undefined {
  if (res instanceof OutgoingMessage) return undefined;
  const stream = streamOf(res);
  if (stream === undefined || stream.rstCode !== 0 || !stream.writableEnded) return undefined;
  const status = Number(stream.sentHeaders?.[':status']);
  return Number.isInteger(status) && status >= 100 ? status : undefined;
}

/** The error an HTTP/1 response was destroyed with by the app (`res.destroy(err)`), if it was. */
function appError(res: ServerResponse): unknown {
  return res instanceof OutgoingMessage ? (res as { errored?: unknown }).errored : undefined;
}

/** Why the connection of an unfinished request went away through a server timeout, if it did. */
function timeoutOf(req: IncomingMessage, since: number, res?: ServerResponse): 'request' | 'idle' | undefined {
  type Errored = { errored?: (Error & { code?: string }) | null } | null;
  // (the request itself then says ECONNRESET: the socket has the cause, unless it is the app's own error)
  const own = res === undefined ? undefined : appError(res);
  const socketError = (req.socket as Errored)?.errored;
  const codes = [socketError === own ? undefined : socketError?.code, (req as Errored)?.errored?.code];
  if (codes.includes('ERR_HTTP_REQUEST_TIMEOUT')) return 'request';
  // (not a socket's ETIMEDOUT: TCP gave up on a peer that stopped answering, the network's doing; see clientLeft)
  if (timedOutSince(req.socket, since)) return 'idle';
  return undefined;
}

// Errors of a connection that the client or the network ended: a reset, a broken pipe, a dead link, bytes
// Node's HTTP parser refused (`HPE_…`). Anything else the server did itself (`res.destroy()`, `socket.destroy()`).
const CLIENT_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN']);
/** RST_STREAM's CANCEL (RFC 9113 §7), what clients send for a request they no longer want. */
const NGHTTP2_CANCEL = 8;

/**
 * Whether the client (or the network) ended an unanswered request's connection, rather than the server.
 * HTTP/1: the socket read the client's end or failed with a network error; a socket the server destroyed
 * did neither. HTTP/2: the client ended or reset the session's connection, or reset the stream with CANCEL; a
 * session the server destroyed did neither, and a stream the server destroyed is reset with NO_ERROR or
 * INTERNAL_ERROR (Node does not say which side sent a reset: a client's reset with another code reads as the
 * server's).
 */
function clientLeft(req: IncomingMessage, res: ServerResponse, session: Http2Session | undefined): boolean {
  if (session !== undefined) {
    if (session.destroyed) return clientEnded.has(session);
    if (session.closed) return true;
    const stream = streamOf(res) as (Http2Stream & { errored?: unknown }) | undefined;
    // Destroyed with an error by the app (`res.destroy(err)`, an AbortSignal, a failed pipeline): Node then
    // resets with CANCEL or INTERNAL_ERROR itself.
    if (stream?.errored != null) return false;
    return stream?.rstCode === NGHTTP2_CANCEL;
  }
  // `res.destroy(err)` (a failed `pipeline()` passes the upstream's ECONNRESET): the socket then holds the
  // app's error, which is no word of the client's.
  if (appError(res) != null) return false;
  const socket = req.socket as (IncomingMessage['socket'] & { errored?: (Error & { code?: unknown }) | null }) | null;
  if (!socket || socket.readableEnded) return true;
  const code = socket.errored?.code;
  return typeof code === 'string' && (CLIENT_ERRORS.has(code) || code.startsWith('HPE_'));
}

/**
 * Runs a callback of the app for one entry (`user`, `path`, `skip`, an adapter's readers): a throw or a
 * promise (the callbacks are synchronous: an answer that comes later cannot be in the entry, and a rejection
 * nobody handles would end the process) costs the value, never the entry, and is reported on the log.
 */
export function callApp<A, R>(log: AuditLog, fn: (arg: A) => R, arg: A, what: string): R | undefined {
  let r: R;
  try {
    r = fn(arg);
  } catch (err) {
    log.warn(err, `${what} threw`);
    return undefined;
  }
  if (r !== null && typeof r === 'object' && typeof (r as { then?: unknown }).then === 'function') {
    Promise.resolve(r).catch((err: unknown) => log.warn(err, `${what} rejected`));
    log.warn(new TypeError('returned a promise; it must answer synchronously'), what);
    return undefined;
  }
  return r;
}

/** The byte count of the body `res.end(chunk, encoding)` sends, when no header says it. */
function endLength(chunk: unknown, encoding: unknown): number | undefined {
  if (typeof chunk === 'string')
    return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  if (chunk === undefined || chunk === null || typeof chunk === 'function') return 0;
  return undefined;
}

type Kind = 'finished' | 'aborted' | 'destroyed' | 'timeout' | 'shutdown';

/** The compiled options, shared by every request of one middleware. */
interface Compiled<T> {
  log: AuditLog;
  binding: FrameworkBinding<T>;
  user: ((target: T) => string | number | undefined | null) | undefined;
  path: 'path' | 'route' | ((target: T) => string | undefined);
  queryKeys: boolean;
}

/** One request between `begin` and its entry. */
class RequestEntry<T> {
  readonly timestamp = Date.now();
  readonly t0 = performance.now();
  readonly url: string;
  /** Read when the request starts: the balancer's address is asked of the socket while it is open. */
  readonly ends: ConnectionEnds;
  /** What the balancer said in its header's TLVs (TLS, unique id, authority); the empty set otherwise. */
  readonly facts: BalancerFacts;
  /** The TLS version of an HTTP/2 request's connection, read when the request came (see the constructor). */
  readonly h2Tls: string | undefined;
  /** An HTTP/2 request's session, kept for when its stream closes (the stream then no longer has it). */
  readonly h2Session: Http2Session | undefined;
  entry: OpenEntry | undefined = undefined;
  done = false;
  /** Body bytes went out before `end()` (through `res.write()`): the chunk of `end()` is then not the body. */
  wrote = false;
  /** HTTP/1: its connection. */
  conn: Connection | undefined = undefined;
  /** Its answer is made and counted in `conn.unsent` until it is sent. */
  unsent = false;

  constructor(
    public c: Compiled<T>,
    public target: T,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** Undefined: the log writes a new one into the line. A later audit's own replaces it (see adopt). */
    public requestId: string | undefined,
    /** Why the request is refused (`errorType` of its entry), if it is. */
    readonly refused: 'audit_unavailable' | 'shutdown' | undefined,
  ) {
    const original = c.binding.url?.(target);
    this.url = typeof original === 'string' ? original : (req.url ?? '/');
    this.ends = connectionEnds(req.socket);
    this.facts = balancerFacts(req.socket);
    // An HTTP/2 request's socket is its stream's view of the session's, which knows nothing once the stream
    // closed (a stream the client cancelled is written then): its TLS version is read now.
    this.h2Tls = req.httpVersionMajor === 2 ? tlsVersion(req.socket) : undefined;
    this.h2Session = req.httpVersionMajor === 2 ? streamOf(res)?.session : undefined;
  }

  /**
   * A later audit of this request for the same log (a framework's `auditLog` inside a server's `auditRequests`,
   * one mounted on a router inside one on the app) takes over: its options (user, path, route) and its target
   * make the entry, and its request id when it picked one (the one it set on the response, with
   * `echoRequestId`). The request target stays the one read first (before a router cut it short).
   */
  private adopt(): void {
    const later = takeOver(this.res, this.c.log);
    if (later === undefined) return;
    this.c = later.by as Compiled<T>;
    this.target = later.target as T;
    if (later.requestId !== undefined) this.requestId = later.requestId;
  }

  /** A callback of the app, run so that a throw or an odd value costs the field, never the entry. */
  private call<R>(fn: (target: T) => R, what: string): R | undefined {
    return callApp(this.c.log, fn, this.target, what);
  }

  /** The entry's fields; `end`: the arguments of the `res.end()` call that finished the response. */
  fields(kind: Kind, end?: unknown[]): AuditFields {
    this.adopt();
    const { c, req, res, url, ends } = this;
    const { binding, path, user, log } = c;
    const decided = this.call((t) => binding.client(t), 'the client address of the adapter');
    const route = this.call((t) => binding.route(t), 'the route of the adapter');
    let logged: unknown;
    if (typeof path === 'function') logged = this.call(path, 'the path option');
    else logged = (path === 'route' ? route : undefined) ?? pathOf(url);
    if (logged !== undefined && typeof logged !== 'string') {
      log.warn(new TypeError(`returned ${typeof logged}`), 'the path option');
      logged = undefined;
    }
    let uid: unknown = user ? this.call(user, 'the user option') : undefined;
    if (typeof uid === 'number' && Number.isFinite(uid)) uid = String(uid);
    else if (uid !== undefined && uid !== null && typeof uid !== 'string') {
      log.warn(new TypeError(`returned ${Object.prototype.toString.call(uid)}`), 'the user option');
      uid = undefined;
    }
    const sent = kind === 'finished' || headersSent(res);
    let status = sent ? res.statusCode : undefined;
    // `requestTimeout` before the app answered: Node (or watch()) answers 408 on the connection.
    if (status === undefined && kind === 'timeout' && timeoutOf(req, this.t0) === 'request') status = 408;
    const declared = Number(
      responseHeader(res, 'content-length') ??
        (binding.bytes === undefined ? undefined : this.call(binding.bytes, 'the byte count of the adapter')) ??
        Number.NaN,
    );
    // No body goes with these, whatever Content-Length says (RFC 9110 §6.4.1).
    const bodyless = req.method === 'HEAD' || status === 204 || status === 304;
    // A response that did not finish sent some of its body, how much is not known: no count rather than
    // the declared length.
    const bytes = bodyless
      ? 0
      : kind !== 'finished'
        ? undefined
        : Number.isSafeInteger(declared) && declared >= 0
          ? declared
          : end !== undefined && !this.wrote
            ? endLength(end[0], end[1])
            : undefined;
    const ua = headersOf(req)['user-agent'];
    const ip = decided && decided.ip !== '' && typeof decided.ip === 'string' ? decided : undefined;
    const f: AuditFields = {
      timestamp: this.timestamp,
      category: 'web',
      action: 'http-request',
      outcome: kind !== 'finished' || (status ?? 500) >= 400 ? 'failure' : 'success',
      duration: (performance.now() - this.t0) * 1e6,
      clientIp: ip ? ip.ip : ends.clientIp,
      clientPort: ip ? (typeof ip.port === 'number' ? ip.port : undefined) : ends.clientPort,
      peerAddress: ends.peerIp,
      peerPort: ends.peerPort,
      method: req.method,
      requestId: this.requestId,
      httpVersion: req.httpVersion,
      domain: domainOf(req, this.facts),
      path: logged === undefined ? undefined : (logged as string).slice(0, MAX_PATH),
      query: c.queryKeys ? queryNames(url) : undefined,
      route: typeof route === 'string' ? route.slice(0, MAX_STRING) : undefined,
      status: status !== undefined && Number.isInteger(status) && status >= 0 && status <= 999 ? status : undefined,
      bytes,
      userAgent: typeof ua === 'string' ? ua.slice(0, MAX_UA) : undefined,
      userId: uid === undefined || uid === null ? undefined : (uid as string),
    };
    const tls = this.h2Tls !== undefined ? { version: this.h2Tls } : tlsFacts(req.socket, this.facts);
    if (tls !== undefined) {
      f.tlsVersion = tls.version;
      f.tlsCipher = tls.cipher;
      f.tlsClientCn = tls.clientCn;
    }
    if (this.refused !== undefined) f.errorType = this.refused;
    else if (kind === 'aborted') f.errorType = 'client_aborted';
    else if (kind === 'destroyed') f.errorType = 'server_aborted';
    else if (kind === 'timeout') f.errorType = 'timeout';
    else if (kind === 'shutdown') f.errorType = 'shutdown';
    return f;
  }

  /** Writes the entry now (the connection closed first, or close() reached its deadline). */
  finish(kind: Kind): void {
    if (this.done) return;
    this.done = true;
    this.write(this.fields(kind));
  }

  /**
   * Writes the entry. A field the log refuses (an odd value an adapter or the app put on the request, e.g.
   * a port out of range) costs the fields that came from the app, never the entry.
   */
  write(fields: AuditFields, whenWritten?: (written: boolean) => void): void {
    const entry = this.entry as OpenEntry;
    try {
      entry.write(fields, whenWritten);
    } catch (err) {
      this.c.log.warn(err, 'a field of the entry');
      const { ends } = this;
      entry.write(
        {
          timestamp: fields.timestamp,
          category: 'web',
          action: 'http-request',
          outcome: fields.outcome,
          duration: fields.duration,
          clientIp: ends.clientIp,
          clientPort: ends.clientPort,
          peerAddress: ends.peerIp,
          peerPort: ends.peerPort,
          requestId: this.requestId,
          status: fields.status,
          errorType: fields.errorType,
        },
        whenWritten,
      );
    }
  }

  /** The response ended or the connection went away ('close'). */
  readonly closed = (): void => {
    if (this.unsent) {
      this.unsent = false;
      answerSent(this.req.socket, this.conn as Connection);
    }
    if (this.done) return;
    const status = streamAnswer(this.res);
    if (status === undefined) {
      const { req, res } = this;
      const session = this.h2Session;
      const timedOut = timeoutOf(req, this.t0, res) !== undefined || timedOutSince(session, this.t0);
      this.finish(timedOut ? 'timeout' : clientLeft(req, res, session) ? 'aborted' : 'destroyed');
      return;
    }
    // Answered through the HTTP/2 stream itself (`res.stream.respond()`, `.end()`), which bypasses `res.end()`:
    // its last bytes could not wait for the line; the entry records what the stream sent.
    this.done = true;
    const fields = this.fields('finished');
    fields.status = status;
    fields.outcome = status >= 400 ? 'failure' : 'success';
    this.write(fields);
  };
}

/** While a response's end waits for its line, it reads as ended (see holdEnd). */
const ENDED: PropertyDescriptor = { get: () => true, configurable: true };

/** The callback of an `end([chunk][, encoding][, callback])` call. */
function callbackOf(args: unknown[]): (() => void) | undefined {
  for (let i = args.length - 1; i >= 0; i--) if (typeof args[i] === 'function') return args[i] as () => void;
  return undefined;
}

/** What Node's end() does when called again on an ended HTTP/1 response (lib/_http_outgoing.js). */
function endedAgain(res: ServerResponse, args: unknown[]): void {
  const cb = callbackOf(args) as ((err?: Error) => void) | undefined;
  const chunk = typeof args[0] === 'function' ? undefined : args[0];
  if (chunk !== undefined && chunk !== null && chunk !== '') {
    const err = writeAfterEndError();
    process.nextTick(() => {
      cb?.(err);
      if (!res.destroyed) res.emit('error', err);
    });
  } else if (cb !== undefined) res.once('finish', cb);
}

/** `ERR_STREAM_WRITE_AFTER_END`, as Node makes it. */
function writeAfterEndError(): Error {
  return Object.assign(new Error('write after end'), { code: 'ERR_STREAM_WRITE_AFTER_END' });
}

/**
 * The private fields of Node's HTTP/1 response (lib/_http_outgoing.js) that say whether its head was made:
 * `headersSent` reads `_header`, and `setHeader()`, `writeHead()`, `removeHeader()` refuse once it is set;
 * `_headerSent` says whether it went out with the first body bytes. Only holdEnd touches them.
 */
type Head = { _header: string | null; _headerSent: boolean };

/**
 * Makes `res.end()` write the entry first and send the response's last bytes once the line is written.
 * The hook is an own property of this response only: nothing of Node's or the framework's prototypes changes.
 *
 * Meanwhile the response reads as ended, as it would at once without the hold — `writableEnded` (so Fastify's
 * `reply.sent`, Koa's `ctx.writable`, on-finished): a hook that answered without `return reply`, a double
 * send, a guard on `writableEnded` behave as without the audit — and its head as sent (`headersSent`, so an
 * error handler's guard, Express's own, Koa's `ctx.headerSent`): `setHeader()` and `writeHead()` throw
 * `ERR_HTTP_HEADERS_SENT` (HTTP/2: `ERR_HTTP2_HEADERS_SENT`), a `statusCode` set meanwhile is not sent; a
 * second `end()` and a `write()` get what Node gives an ended response. Not `finished` of an HTTP/1 response:
 * Node's server.close() takes a connection whose response is `finished` for idle and destroys it
 * (closeIdleConnections), which would cut the held answer.
 */
function holdEnd<T>(r: RequestEntry<T>): void {
  const res = r.res;
  const end = res.end as (...args: unknown[]) => ServerResponse;
  const outgoing = res instanceof OutgoingMessage;
  let held = false;
  /** The head was not made when the end came: it reads as made until the real end makes it. */
  let headHeld = false;
  let status = 0;
  let statusMessage: string | undefined;
  /** HTTP/2: a write() after end() destroys the stream, as Node does, once the real end went out. */
  let destroyAfter: Error | undefined;
  const release = (args: unknown[], written: boolean) => {
    held = false;
    // (the last properties added, taken back in reverse: the response keeps its shape)
    if (headHeld) {
      headHeld = false;
      if (outgoing) {
        const head = res as unknown as Head;
        head._headerSent = false;
        head._header = null;
      } else delete (streamOf(res) as { headersSent?: boolean }).headersSent;
      // What was set after end() is not sent, as Node sends the head made at end(). Stored only when changed:
      // storing them always measured 0.91x of the audited Express app (bench/ab.mjs, 2 rounds). (HTTP/2 has no
      // status message: reading or setting one only warns.)
      if (res.statusCode !== status) res.statusCode = status;
      if (outgoing && res.statusMessage !== statusMessage) res.statusMessage = statusMessage as string;
    }
    if (!outgoing) delete (res as { finished?: boolean }).finished;
    delete (res as { writableEnded?: boolean }).writableEnded;
    if (!written) {
      // The entry will never be written: no answer without it.
      res.destroy();
      return;
    }
    try {
      end.apply(res, args);
    } catch (err) {
      r.c.log.warn(err, 'res.end() threw once its entry was written');
      res.destroy(err as Error);
      return;
    }
    if (destroyAfter !== undefined) res.destroy(destroyAfter);
  };
  // A write() while the end waits is one after end(): sent, it would follow the body (past its
  // Content-Length, into the next response on a keep-alive connection). The hook is there from the start: put
  // on and taken off with the hold instead, it measured 0.978x of this (the audited Express app, bench/ab.mjs,
  // 3 rounds; this: 0.96x of no hook), and Node's own finished check cannot serve (see `finished` above).
  const write = res.write as (...args: unknown[]) => boolean;
  res.write = function auditedWrite(this: ServerResponse, ...args: unknown[]): boolean {
    if (!held) {
      r.wrote = true;
      return write.apply(this, args);
    }
    if (typeof args[0] !== 'string' && !(args[0] instanceof Uint8Array)) return write.apply(this, args);
    // What Node's write() does on an ended response (lib/_http_outgoing.js, lib/internal/http2/compat.js): the
    // chunk is not sent, the callback gets the error; HTTP/1 emits it, HTTP/2 destroys the stream with it.
    const cb = callbackOf(args) as ((err?: Error) => void) | undefined;
    const err = writeAfterEndError();
    if (outgoing) {
      process.nextTick(() => {
        cb?.(err);
        if (!this.destroyed) this.emit('error', err);
      });
    } else {
      if (cb !== undefined) process.nextTick(cb, err);
      destroyAfter ??= err;
    }
    return false;
  } as ServerResponse['write'];
  res.end = function auditedEnd(this: ServerResponse, ...args: unknown[]): ServerResponse {
    if (held) {
      // A second end() while the first waits: as Node answers an ended response (HTTP/2's calls back).
      if (outgoing) endedAgain(this, args);
      else {
        const cb = callbackOf(args);
        if (cb !== undefined) process.nextTick(cb);
      }
      return this;
    }
    if (r.done || r.entry === undefined) return end.apply(this, args);
    // The connection is gone, or Node ended it (the client half-closed, and this answer came after Node read
    // that): nothing of this answer can reach the client.
    if (r.req.socket?.destroyed || (outgoing && r.req.socket?.writableEnded)) {
      r.closed();
      return end.apply(this, args);
    }
    r.done = true;
    const fields = r.fields('finished', args);
    // Refused because the log cannot write: the 503 does not wait for a disk that may not come back (its
    // entry is queued and written on recovery, or counted as dropped).
    if (r.refused === 'audit_unavailable') {
      r.write(fields);
      return end.apply(this, args);
    }
    held = true;
    if (r.conn !== undefined) {
      r.conn.unsent++;
      r.unsent = true;
    }
    Object.defineProperty(res, 'writableEnded', ENDED);
    if (!outgoing) Object.defineProperty(res, 'finished', ENDED);
    if (!res.headersSent) {
      headHeld = true;
      status = res.statusCode;
      if (outgoing) {
        statusMessage = res.statusMessage;
        // A head that reads as made and as gone out (so that flushHeaders() sends nothing meanwhile).
        const head = res as unknown as Head;
        head._header = HELD_HEAD;
        head._headerSent = true;
      } else Object.defineProperty(streamOf(res) as Http2Stream, 'headersSent', ENDED);
    }
    r.write(fields, (written) => release(args, written));
    return this;
  } as ServerResponse['end'];
}

/** `_header` of a held response (never sent: `_headerSent` is true meanwhile). */
const HELD_HEAD = 'HTTP/1.1 000 held\r\n\r\n';

/** The stream of an HTTP/2 compatibility response (none for HTTP/1). */
function streamOf(res: ServerResponse): Http2Stream | undefined {
  return (res as unknown as { stream?: Http2Stream }).stream;
}

/** The options every auditing entry point shares (requests, upgrades). */
export type CommonAuditOptions<T> = Omit<AuditMiddlewareOptions<T>, 'echoRequestId'>;

/** Checks the shared options (a `TypeError` naming `name` for a bad one) and fills in their defaults. */
/** The options every audit middleware takes; `checkAuditOptions` is told the ones of its own. */
const COMMON = ['log', 'user', 'skip', 'path', 'queryKeys', 'requestIdHeader', 'preferRequestIdHeader'] as const;

export function checkAuditOptions<T>(name: string, options: CommonAuditOptions<T>, routes: boolean, own: readonly string[]) {
  if (options === null || typeof options !== 'object') throw new TypeError(`${name}: options must be an object`);
  checkOptions(options, Object.fromEntries([...COMMON, ...own].map((k) => [k, true])) as Known<object>, name);
  const {
    log,
    user,
    skip,
    path = 'path',
    queryKeys = false,
    requestIdHeader = 'x-request-id',
    preferRequestIdHeader = false,
  } = options ?? ({} as never);
  if (!log || typeof log.open !== 'function') throw new TypeError(`${name}: options.log must be an AuditLog from createAuditLog`);
  if (user !== undefined && typeof user !== 'function') throw new TypeError(`${name}: user must be a function`);
  if (skip !== undefined && typeof skip !== 'function') throw new TypeError(`${name}: skip must be a function`);
  if (path !== 'path' && !(routes && path === 'route') && typeof path !== 'function')
    throw new TypeError(`${name}: path must be 'path'${routes ? ", 'route'" : ''} or a function`);
  if (requestIdHeader !== false && typeof requestIdHeader !== 'string') throw new TypeError(`${name}: bad requestIdHeader`);
  if (typeof preferRequestIdHeader !== 'boolean') throw new TypeError(`${name}: preferRequestIdHeader must be a boolean`);
  const idHeader = requestIdHeader === false ? undefined : requestIdHeader.toLowerCase();
  return { log, user, skip, path, queryKeys: queryKeys === true, idHeader, preferRequestIdHeader };
}

/**
 * Compiles the options once (a `TypeError` for bad ones). The returned `begin` is called at the start of
 * every request: it opens the request's entry and says what to do with the request (see {@link Begin}).
 */
export function compileRequestAudit<T>(options: AuditMiddlewareOptions<T>, binding: FrameworkBinding<T>) {
  // (`clientIp`: the adapters' and auditRequests' own, read by them)
  const { log, user, skip, path, queryKeys, idHeader, preferRequestIdHeader } = checkAuditOptions('auditLog', options, true, [
    'echoRequestId',
    'clientIp',
  ]);
  const { echoRequestId = false } = options;
  const compiled: Compiled<T> = { log, binding, user, path, queryKeys };

  return function begin(target: T, req: IncomingMessage, res: ServerResponse): Begin {
    if (skip !== undefined && callApp(log, skip, target, 'the skip option (the request is audited)') === true) return 'skip';
    const state = log.state;
    if (state === 'closed') {
      // Nothing can record an answer any more: the connection goes without one.
      req.socket?.destroy();
      return 'drop';
    }
    // One entry per request in a log: a second audit of it for the same log (auditLog mounted twice,
    // auditRequests beside a framework's middleware) takes over the entry the first opened.
    const incoming = idHeader ? headersOf(req)[idHeader] : undefined;
    let requestId = pickRequestId(incoming, balancerFacts(req.socket), preferRequestIdHeader);
    if (echoRequestId) {
      // Needed now, as a string; otherwise the log writes a new one into the line (same kind: random UUID v4).
      requestId ??= randomUUID();
      if (!res.headersSent) res.setHeader(idHeader ?? 'x-request-id', requestId);
    }
    if (claimed(res, log)) {
      handOver(res, { log, by: compiled, target, requestId });
      return 'serve';
    }
    const refused = state === 'closing' ? 'shutdown' : log.accepting || !log.failClosed ? undefined : 'audit_unavailable';
    const r = new RequestEntry(compiled, target, req, res, requestId, refused);
    claim(res, log);
    r.entry = log.open({ reserve: refused === undefined, generateRequestId: true, onShutdown: () => r.finish('shutdown') });
    holdEnd(r);
    // ServerResponse (and Http2ServerResponse) emit 'close' once: when the response completed or the
    // connection went away first. One listener, where on-finished's attach several to the response and the
    // socket: on-finished measured 8.5% of an audited Express request head to head (bench/ab.mjs, 0.915x).
    addListener.call(res, 'close', r.closed);
    if (r.h2Session !== undefined) watchSession(r.h2Session);
    else if (req.socket && typeof req.socket.on === 'function') r.conn = connectionOf(req.socket, log);
    // A connection that went away before this middleware ran (during an earlier asynchronous one) had its
    // response's 'close' already, and nothing the app sends can reach the client: the entry is written as
    // aborted once this turn's handlers ran (after authentication, so that user() can still answer).
    if (req.socket?.destroyed) setImmediate(r.closed);
    return refused === undefined ? 'serve' : refused === 'shutdown' ? 'closing' : 'unavailable';
  };
}
