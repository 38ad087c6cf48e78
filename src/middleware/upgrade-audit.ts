// Auditing upgraded connections (WebSocket, socket.io's websocket transport, any `Upgrade:` protocol): one
// `http-upgrade` entry per upgrade request, written when the upgraded connection ends — or at once when the
// app refuses the upgrade, whose answer waits for the line. An accepted upgrade's `101` waits for an
// `http-upgrade-started` entry (unless switched off), so that no client holds an open session whose record a
// crash could still lose.
import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { AuditLog, OpenEntry } from '../audit/audit-log.js';
import type { AuditFields } from '../audit/entry.js';
import { type BalancerFacts, balancerFacts, type ConnectionEnds, connectionEnds } from '../connection/socket-info.js';
import { headersOf, MAX_PATH, pathOf } from '../http-objects.js';
import { callApp, checkAuditOptions, domainOf, MAX_UA, pickRequestId, queryNames, tlsFacts } from './request-audit.js';
import { interceptEvent } from './server-events.js';

/** Options of {@link auditUpgrades}. */
export interface AuditUpgradesOptions {
  /** The log from `createAuditLog`. */
  log: AuditLog;
  /**
   * Returns an opaque user id for `user.id`, e.g. from the token the app checked before accepting. Called
   * when the answer (`101` or a refusal) is written, or when the connection ends unanswered. A string or a
   * finite number; anything else (or a throw) leaves `user.id` out and is reported as a warning.
   */
  user?: (req: IncomingMessage) => string | number | undefined | null;
  /** Returns true for upgrades that get no entry. A throw counts as "audit it". */
  skip?: (req: IncomingMessage) => boolean;
  /** What `url.path` holds: `'path'` (default; the path without query) or a function returning the string to log. */
  path?: 'path' | ((req: IncomingMessage) => string | undefined);
  /** Record the query's parameter names (never values) in `url.query`. Default false. */
  queryKeys?: boolean;
  /** Header carrying an incoming request id (kept when 1–128 safe characters). Default `x-request-id`; false: always generate. */
  requestIdHeader?: string | false;
  /** The header's id before the balancer's unique id (see `auditLog`). Default false. */
  preferRequestIdHeader?: boolean;
  /**
   * Write an `http-upgrade-started` entry when the app accepts an upgrade, and send its `101` once that line is
   * written. Default true. With false, an upgrade has only its `http-upgrade` entry, written when the
   * connection ends: a crash of the process during a session loses the record of that session.
   */
  startEntry?: boolean;
}

type Held = (() => void)[];
type SocketFns = Pick<Socket, 'write' | 'end' | 'destroy'>;

/** The status of an HTTP/1 status line at the start of the first bytes written, if they are one. */
function statusOf(text: string): number | undefined {
  const m = /^HTTP\/1\.[01] (\d{3})[ \r]/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** The first bytes written to the socket, as Latin-1 text (enough for a status line and the end of a head). */
function firstText(chunk: unknown, encoding: unknown): string | undefined {
  if (typeof chunk === 'string') {
    const e = typeof encoding === 'string' ? encoding : 'utf8';
    return Buffer.isEncoding(e) ? Buffer.from(chunk, e).toString('latin1') : undefined;
  }
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
  return undefined;
}

interface Compiled {
  log: AuditLog;
  user: AuditUpgradesOptions['user'];
  path: NonNullable<AuditUpgradesOptions['path']>;
  queryKeys: boolean;
  startEntry: boolean;
}

/** One upgrade request, from the `'upgrade'` event to the end of its connection. */
class Session {
  readonly timestamp = Date.now();
  readonly t0 = performance.now();
  readonly ends: ConnectionEnds;
  /** `socket.bytesRead` before the first byte after the request's head. */
  readonly readBase: number;
  /** `socket.bytesWritten` once the answer's head was written; undefined before an answer. */
  sentBase: number | undefined = undefined;
  status: number | undefined = undefined;
  userId: string | undefined = undefined;
  userRead = false;
  /** The client ended its side (or reset the connection): an unanswered upgrade it left is `client_aborted`. */
  clientLeft = false;
  /** Read when the upgrade starts: a closed socket no longer tells. */
  readonly tls: ReturnType<typeof tlsFacts>;
  readonly facts: BalancerFacts;
  entry: OpenEntry | undefined = undefined;
  /** Socket calls of the app that wait for a line to be written, in order; undefined while none wait. */
  held: Held | undefined = undefined;
  /** The socket's own methods, back in place once nothing is held any more. */
  private readonly own: SocketFns;
  private hooked = false;

  constructor(
    readonly c: Compiled,
    readonly req: IncomingMessage,
    readonly socket: Socket,
    head: Buffer,
    readonly requestId: string,
  ) {
    this.ends = connectionEnds(socket);
    this.facts = balancerFacts(socket);
    this.tls = tlsFacts(socket, this.facts);
    this.readBase = socket.bytesRead - (head?.length ?? 0);
    this.own = { write: socket.write, end: socket.end, destroy: socket.destroy };
  }

  private call<R>(fn: (req: IncomingMessage) => R, what: string): R | undefined {
    return callApp(this.c.log, fn, this.req, what);
  }

  /** The user id, read once (see the `user` option). */
  private user(): string | undefined {
    if (this.userRead || this.c.user === undefined) return this.userId;
    this.userRead = true;
    let uid: unknown = this.call(this.c.user, 'the user option');
    if (typeof uid === 'number' && Number.isFinite(uid)) uid = String(uid);
    else if (uid !== undefined && uid !== null && typeof uid !== 'string') {
      this.c.log.warn(new TypeError(`returned ${Object.prototype.toString.call(uid)}`), 'the user option');
      uid = undefined;
    }
    this.userId = typeof uid === 'string' ? uid : undefined;
    return this.userId;
  }

  fields(action: string, errorType?: string): AuditFields {
    const { c, req, ends, socket } = this;
    const url = req.url ?? '/';
    let logged: unknown = typeof c.path === 'function' ? this.call(c.path, 'the path option') : pathOf(url);
    if (logged !== undefined && typeof logged !== 'string') {
      c.log.warn(new TypeError(`returned ${typeof logged}`), 'the path option');
      logged = undefined;
    }
    const ua = headersOf(req)['user-agent'];
    const end = action === 'http-upgrade';
    const status = this.status;
    const f: AuditFields = {
      timestamp: this.timestamp,
      category: 'web',
      action,
      outcome: status === 101 && errorType === undefined ? 'success' : 'failure',
      clientIp: ends.clientIp,
      clientPort: ends.clientPort,
      peerAddress: ends.peerIp,
      peerPort: ends.peerPort,
      method: req.method,
      requestId: this.requestId,
      httpVersion: req.httpVersion,
      domain: domainOf(req, this.facts),
      path: typeof logged === 'string' ? logged.slice(0, MAX_PATH) : undefined,
      query: c.queryKeys ? queryNames(url) : undefined,
      status,
      userAgent: typeof ua === 'string' ? ua.slice(0, MAX_UA) : undefined,
      userId: this.user(),
      tlsVersion: this.tls?.version,
      tlsCipher: this.tls?.cipher,
      tlsClientCn: this.tls?.clientCn,
    };
    if (end) {
      f.duration = (performance.now() - this.t0) * 1e6;
      f.requestBytes = Math.max(0, socket.bytesRead - this.readBase);
      if (this.sentBase !== undefined) f.bytes = Math.max(0, socket.bytesWritten - this.sentBase);
    }
    if (errorType !== undefined) f.errorType = errorType;
    return f;
  }

  /** Writes the `http-upgrade` entry (once). */
  finish(errorType?: string, whenWritten?: () => void): void {
    const entry = this.entry;
    if (entry === undefined || entry.done) {
      whenWritten?.();
      return;
    }
    entry.write(this.fields('http-upgrade', errorType), whenWritten);
  }

  /** The client's side ended. */
  readonly ended = (): void => {
    // (a FIN that answers the app's own socket.end() is the app's end, not the client's)
    if (!this.socket.writableEnded) this.clientLeft = true;
  };

  /** The connection closed. */
  readonly closed = (): void => {
    if (this.hooked && this.held === undefined) this.unhook(); // never answered: nothing to restore later
    const unanswered = this.status === undefined && this.sentBase === undefined;
    // A network error (a reset, a broken pipe) comes from a system call; an error the app destroyed the
    // socket with does not, as a rule.
    const errored = (this.socket as Socket & { errored?: { syscall?: unknown } | null }).errored;
    const left = this.clientLeft || typeof errored?.syscall === 'string';
    this.finish(unanswered ? (left ? 'client_aborted' : 'server_aborted') : undefined);
  };

  /** `close()` reached its deadline with the session still open: recorded, and the connection ended. */
  readonly shutdown = (): void => {
    this.finish('shutdown');
    this.socket.destroy();
  };

  /**
   * Puts the hooks on the socket: the first bytes the app writes are its answer, which waits for its line.
   * Own properties of this socket only, gone again once the answer left.
   */
  hook(): void {
    const s = this.socket as Socket & SocketFns;
    const self = this;
    this.hooked = true;
    s.write = function auditedWrite(this: Socket, ...args: unknown[]): boolean {
      if (self.held === undefined) self.answer(args[0], args[1]);
      if (self.held !== undefined) {
        self.held.push(() => Reflect.apply(self.own.write, s, args));
        return true;
      }
      return Reflect.apply(self.own.write, s, args) as boolean;
    } as Socket['write'];
    s.end = function auditedEnd(this: Socket, ...args: unknown[]): Socket {
      if (self.held === undefined && args[0] !== undefined && typeof args[0] !== 'function') self.answer(args[0], args[1], true);
      if (self.held !== undefined) {
        self.held.push(() => Reflect.apply(self.own.end, s, args));
        return s;
      }
      return Reflect.apply(self.own.end, s, args) as Socket;
    } as Socket['end'];
    s.destroy = function auditedDestroy(this: Socket, ...args: unknown[]): Socket {
      if (self.held !== undefined) {
        self.held.push(() => Reflect.apply(self.own.destroy, s, args));
        return s;
      }
      return Reflect.apply(self.own.destroy, s, args) as Socket;
    } as Socket['destroy'];
  }

  private unhook(): void {
    if (!this.hooked) return;
    this.hooked = false;
    const s = this.socket as unknown as Record<string, unknown>;
    delete s.write;
    delete s.end;
    delete s.destroy;
    // An own method the socket had before (rare) comes back.
    for (const k of ['write', 'end', 'destroy'] as const) {
      if (s[k] !== this.own[k]) s[k] = this.own[k];
    }
  }

  /** The app writes its first bytes: the answer. Decides whether they wait, and writes what they wait for. */
  private answer(chunk: unknown, encoding: unknown, last = false): void {
    const text = firstText(chunk, encoding);
    const status = text === undefined ? undefined : statusOf(text);
    if (status === undefined || text === undefined) {
      // Not an HTTP answer (or not one we can read): the bytes are the app's protocol; counted from here.
      this.sentBase = this.socket.bytesWritten;
      this.unhook();
      return;
    }
    this.status = status;
    const headEnd = text.indexOf('\r\n\r\n');
    // Sent bytes are counted after the answer's head (a head split across writes counts as body after its first part).
    this.sentBase = this.socket.bytesWritten + (headEnd < 0 ? text.length : headEnd + 4);
    const log = this.c.log;
    if (status === 101 && !this.c.startEntry) {
      this.unhook();
      return;
    }
    const held: Held = [];
    this.held = held;
    const release = (written = true) => {
      this.held = undefined;
      this.unhook();
      // The entry will never be written: no answer without it (as for requests); the connection is closed.
      if (!written) this.socket.destroy();
      else for (const call of held) call();
    };
    if (status === 101) {
      log.write(this.fields('http-upgrade-started'), release);
      return;
    }
    // Refused by the app: written at once, the refusal waits for it. Its body is what its head's Content-Length
    // says, else what this write carries after the head when it is the last (`end(answer)`); otherwise more may
    // follow: no count.
    const f = this.fields('http-upgrade');
    const size = text.length; // (latin1: one character per byte)
    const declared = headEnd < 0 ? undefined : CONTENT_LENGTH.exec(text.slice(0, headEnd + 2))?.[1];
    f.bytes = declared !== undefined ? Number(declared) : headEnd >= 0 && last ? size - (headEnd + 4) : undefined;
    if (this.entry === undefined || this.entry.done) release();
    else this.entry.write(f, release);
  }
}

const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d{1,15})[ \t]*\r\n/i;

const REFUSALS = {
  shutdown: ['Connection: close\r\n', 'Service Unavailable: shutting down\n'],
  audit_unavailable: ['Connection: close\r\nRetry-After: 5\r\n', 'Service Unavailable: audit log unavailable\n'],
} as const;

/**
 * Audits every upgrade request of a server (`'upgrade'` events: WebSocket with `ws`, socket.io's websocket
 * transport, any other protocol): one `http-upgrade` entry each, written when the upgraded connection ends,
 * with the client and balancer from the PROXY header, method, path (same rules as `auditLog`), user agent,
 * request id, the status sent (`101`, or the app's refusal), `event.duration` of the whole session and the
 * bytes received (`http.request.body.bytes`) and sent (`http.response.body.bytes`) after the heads. A refusal
 * is written at once and its bytes wait for the line; an accepted upgrade's `101` waits for its
 * `http-upgrade-started` entry (see `startEntry`); an answer whose entry the log gives up on is never sent, its
 * connection is closed instead. While the log fails closed or is closing, upgrades never
 * reach the app and are answered `503` (with their entry); once it closed, their connections are closed. At
 * `close()`, sessions still open at its deadline are written with `error.type: "shutdown"` and their
 * connections closed. Open sessions hold no place in the log's queue. Polling requests (socket.io's polling
 * transport) are requests: audit them with `auditLog` or {@link auditRequests}. Returns the server. Throws a
 * `TypeError` for bad options or for a server whose upgrades are audited already.
 *
 * @param options.log the log from `createAuditLog` (required)
 * @param options.user `(req) => id`: opaque user id for `user.id`
 * @param options.skip `(req) => boolean`: no entry
 * @param options.path `'path'` (default) | `(req) => string`: what `url.path` holds
 * @param options.queryKeys record query parameter names, never values (default false)
 * @param options.requestIdHeader default `x-request-id`
 * @param options.startEntry an `http-upgrade-started` entry before the `101` leaves (default true)
 * @example
 * ```ts
 * const server = withProxyProtocol(https.createServer({ key, cert }, app));
 * const wss = new WebSocketServer({ server });
 * auditUpgrades(server, { log, user: (req) => tokens.verify(req.headers.authorization)?.sub });
 * ```
 */
export function auditUpgrades<S extends EventEmitter>(server: S, options: AuditUpgradesOptions): S {
  const { log, user, skip, path, queryKeys, idHeader, preferRequestIdHeader } = checkAuditOptions<IncomingMessage>(
    'auditUpgrades',
    options,
    false,
    ['startEntry'],
  );
  const { startEntry = true } = options;
  if (typeof startEntry !== 'boolean') throw new TypeError('auditUpgrades: startEntry must be a boolean');
  const c: Compiled = { log, user, path: path as Compiled['path'], queryKeys, startEntry };

  interceptEvent<IncomingMessage, Socket>(
    server,
    'upgrade',
    function auditUpgrade(req, socket, head) {
      if (skip !== undefined && callApp(log, skip, req, 'the skip option (the upgrade is audited)') === true) return true;
      if (log.state === 'closed') {
        socket.destroy();
        return false;
      }
      const incoming = idHeader ? headersOf(req)[idHeader] : undefined;
      // Both entries of a session carry its id, so it is made here as a string (once per session).
      const requestId = pickRequestId(incoming, balancerFacts(socket), preferRequestIdHeader) ?? randomUUID();
      const s = new Session(c, req, socket, head as Buffer, requestId);
      const refused = log.state === 'closing' ? 'shutdown' : log.accepting || !log.failClosed ? undefined : 'audit_unavailable';
      if (refused !== undefined) {
        const [headers, body] = REFUSALS[refused];
        const answer = `HTTP/1.1 503 Service Unavailable\r\n${headers}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
        s.status = 503;
        const f = s.fields('http-upgrade', refused);
        f.bytes = body.length;
        const send = (written = true) => {
          if (!written) return void socket.destroy();
          if (!socket.destroyed) socket.end(answer);
          socket.once('finish', () => socket.destroy());
        };
        // As for requests: a refusal because the log cannot write does not wait for a disk that may not come back.
        if (refused === 'audit_unavailable') {
          log.write(f);
          send();
        } else log.write(f, send);
        return false;
      }
      s.entry = log.open({ reserve: false, onShutdown: s.shutdown });
      s.hook();
      socket.once('end', s.ended);
      socket.once('close', s.closed);
      return true;
    },
    'auditUpgrades',
  );
  return server;
}
