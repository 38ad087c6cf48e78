import type { KeyObject } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import type { Server, Socket } from 'node:net';
import os from 'node:os';
import winston from 'winston';
import type TransportStream from 'winston-transport';
import { connectionEnds, getProxyInfo } from '../connection/socket-info.js';
import { append, type List, remove } from '../list.js';
import type { ProxyProtocolError } from '../protocol/errors.js';
import { unmapIPv4 } from '../trust.js';
import { Chain, toPrivateKey } from './chain.js';
import { AccessLogTransport } from './elb-format.js';
import { AuditFileTransport } from './file-sink.js';
import { finish as finishEntry, type OpenEntry } from './http-entry.js';
import { LineBuffer } from './line-buffer.js';
import type { AuditFields } from './record.js';

const MESSAGE = Symbol.for('message');
const LEVEL = Symbol.for('level');

/** Options of {@link createAuditLog}. */
export interface AuditLogOptions {
  /** The embedded sink: JSON lines appended to this file (mode 0600 when created). */
  filename?: string;
  /** More winston transports, beside or instead of the file: syslog, CloudWatch, Elasticsearch, … */
  transports?: TransportStream[];
  /** `service.name` of every entry. Default: `npm_package_name` or `"app"`. */
  service?: string;
  /** `host.name` of every entry. Default: `os.hostname()`. */
  host?: string;
  /** A secret that turns the SHA-256 chain into an HMAC-SHA256 chain (forging then needs the key). */
  hashKey?: string | Buffer;
  /** An Ed25519 private key (KeyObject or PEM): signed checkpoints, so truncation is detected. */
  signingKey?: KeyObject | string | Buffer;
  /** A signed checkpoint after this many entries. Default 1000. */
  checkpointEvery?: number;
  /** …and at least every this many milliseconds while entries arrive. Default 60000. */
  checkpointInterval?: number;
  /**
   * What happens while the sink cannot keep up or fails: `'fail-closed'` (default) answers new requests with
   * 503 until it recovers; `'fail-open'` serves them and counts the entries it could not queue.
   */
  onSinkError?: 'fail-closed' | 'fail-open';
  /** Entries held for a slow or failing file before the log counts as unavailable. Default 10000. */
  maxQueue?: number;
  /** An nginx `elb_format`-style access log (human-readable, no query values, not chained) in this file. */
  accessLog?: string;
}

/** Counters of an {@link AuditLog}. */
export interface AuditStats {
  /** Entries sealed into the chain (entries are sealed at the end of the turn of the event loop they are written in). */
  entries: number;
  /** Entries that could not be queued (fail-open while unavailable); recorded as an `audit-entries-dropped` entry. */
  dropped: number;
  /** Requests begun and not yet logged. */
  inFlight: number;
  /** Entries waiting to be sealed or written to the file. */
  pending: number;
}

/** Options of {@link AuditLog.close}. */
export interface CloseOptions {
  /** Milliseconds to wait for requests in flight. Default 30000. */
  timeout?: number;
  /** Then milliseconds to wait for the sink to take the last entries (a failing disk). Default 10000. */
  flushTimeout?: number;
}

/** Options of {@link AuditLog.watch}. */
export interface WatchOptions {
  /** Also write an entry for every accepted connection. Default false. */
  accepted?: boolean;
}

/**
 * A tamper-evident audit log. Create it with {@link createAuditLog}.
 *
 * Events: `'error'` (sink failure; emitted only when listened to, otherwise a process warning),
 * `'recovered'`, `'entry'` (every sealed line, at the end of the turn of the event loop it was written in).
 */
export class AuditLog extends EventEmitter {
  /**
   * The winston logger of the log's transports; add or remove transports through it at any time. While the
   * embedded file is its only transport, entries are handed to the file directly (winston's stream pipeline
   * costs more than the rest of an entry); its `level` and `silent` never filter audit entries.
   */
  readonly logger: winston.Logger;
  /** The embedded file sink, when `filename` was given. */
  readonly file: AuditFileTransport | undefined;
  readonly failClosed: boolean;
  private readonly chain: Chain;
  private readonly checkpointEvery: number;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private dropped = 0;
  private droppedUnreported = 0;
  private inFlight = 0;
  private idle: (() => void)[] = [];
  /** Requests begun and not yet logged, oldest first (written as `shutdown` at a close deadline). */
  private readonly open: List<OpenEntry> = { head: undefined, tail: undefined };
  private unhealthy: Error | undefined;
  private closing: Promise<void> | undefined;
  private closed = false;
  private warned = false;
  private readonly unwatch: (() => void)[] = [];
  /** True while the file sink is the logger's only transport: entries skip winston's pipeline. */
  private direct = false;
  /** Entries written this turn of the event loop, sealed together at its end (see sealQueued). */
  private queued: AuditFields[] = [];
  private sealScheduled = false;
  /** Where lines for winston's transports are sealed (the file sink's own buffer takes them in direct mode). */
  private readonly scratch = new LineBuffer();

  /** @internal use {@link createAuditLog} */
  constructor(options: AuditLogOptions) {
    super();
    const {
      filename,
      transports = [],
      service = process.env.npm_package_name ?? 'app',
      host = os.hostname(),
      hashKey,
      signingKey,
      checkpointEvery = 1000,
      checkpointInterval = 60_000,
      onSinkError = 'fail-closed',
      maxQueue = 10_000,
      accessLog,
    } = options;
    if (filename === undefined && transports.length === 0) {
      throw new TypeError('createAuditLog: give a filename, transports, or both');
    }
    if (filename !== undefined && (typeof filename !== 'string' || filename === ''))
      throw new TypeError('createAuditLog: bad filename');
    if (!Array.isArray(transports)) throw new TypeError('createAuditLog: transports must be an array');
    if (onSinkError !== 'fail-closed' && onSinkError !== 'fail-open') {
      throw new TypeError("createAuditLog: onSinkError must be 'fail-closed' or 'fail-open'");
    }
    if (!Number.isInteger(checkpointEvery) || checkpointEvery < 1) throw new TypeError('createAuditLog: bad checkpointEvery');
    if (!Number.isInteger(checkpointInterval) || checkpointInterval < 0)
      throw new TypeError('createAuditLog: bad checkpointInterval');
    if (!Number.isInteger(maxQueue) || maxQueue < 1) throw new TypeError('createAuditLog: bad maxQueue');
    if (hashKey !== undefined && !(typeof hashKey === 'string' || Buffer.isBuffer(hashKey))) {
      throw new TypeError('createAuditLog: hashKey must be a string or Buffer');
    }
    this.failClosed = onSinkError === 'fail-closed';
    this.checkpointEvery = checkpointEvery;
    this.chain = new Chain({
      hashKey,
      signingKey: signingKey === undefined ? undefined : toPrivateKey(signingKey),
      service,
      host,
    });
    this.file = filename === undefined ? undefined : new AuditFileTransport({ filename, maxQueue });
    const all: TransportStream[] = [...(this.file ? [this.file] : []), ...transports];
    if (accessLog !== undefined) all.push(new AccessLogTransport({ filename: accessLog }));
    // No format: every transport receives the sealed line as info[MESSAGE] and info.message, byte for byte.
    this.logger = winston.createLogger({
      level: 'info',
      format: winston.format((info) => info)(),
      transports: all,
      exitOnError: false,
    });
    this.direct = this.file !== undefined && all.length === 1;
    // The file sink is fed directly while it is the logger's only transport: winston's stream pipeline costs
    // more than the rest of an entry. Adding or removing transports through the logger switches back.
    const logger = this.logger as unknown as Record<'add' | 'remove' | 'clear' | 'configure', (...a: unknown[]) => unknown>;
    for (const m of ['add', 'remove', 'clear', 'configure'] as const) {
      const original = logger[m] as (...a: unknown[]) => unknown;
      logger[m] = (...args: unknown[]) => {
        this.sealQueued(); // entries written before the change go where they would have gone then
        const r = original.apply(this.logger, args);
        const now = this.logger.transports;
        this.direct = this.file !== undefined && now.length === 1 && now[0] === this.file;
        return r;
      };
    }
    if (this.file) this.file.beforeFlush = () => this.sealQueued();
    this.logger.on('error', (err: Error) => this.sinkFailed(err));
    for (const t of all) t.on('logged', () => this.sinkRecovered());
    this.file?.on('sink-error', (err: Error) => this.sinkFailed(err));
    this.file?.on('recovered', () => this.sinkRecovered());
    this.file?.on('flushed', () => {
      if (this.file && this.file.pending < this.file.maxQueue) this.sinkRecovered();
    });
    if (this.chain.signing && checkpointInterval > 0) {
      this.checkpointTimer = setInterval(() => {
        this.sealQueued();
        if (this.chain.sinceCheckpoint > 0) this.writeCheckpoint(false);
      }, checkpointInterval);
      this.checkpointTimer.unref();
    }
    this.seal({
      kind: 'state',
      category: 'configuration',
      action: 'audit-log-started',
      outcome: 'success',
      auditExtra: this.startInfo(),
    });
  }

  private startInfo(): string {
    const fp = this.chain.fingerprint;
    return `"pid":${process.pid}${fp ? `,"key_fingerprint":"${fp}"` : ''}`;
  }

  /** The chain id of this writer (one per process). */
  get chainId(): string {
    return this.chain.id;
  }

  /** Counters. */
  get stats(): AuditStats {
    return {
      entries: this.chain.sequence,
      dropped: this.dropped,
      inFlight: this.inFlight,
      pending: this.queued.length + (this.file?.pending ?? 0),
    };
  }

  /**
   * Whether new requests may be served: false while the sink is failing or full, and after close.
   * With `'fail-open'`, always true until close.
   */
  get accepting(): boolean {
    if (this.closed) return false;
    if (!this.failClosed) return true;
    return this.unhealthy === undefined && !this.full;
  }

  /** Whether the file holds as many entries (queued to be sealed or to be written) as it may. */
  private get full(): boolean {
    return this.file !== undefined && this.queued.length + this.file.pending >= this.file.maxQueue;
  }

  private sinkFailed(err: Error): void {
    const first = this.unhealthy === undefined;
    this.unhealthy = err;
    if (!first) return;
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else if (!this.warned) {
      this.warned = true;
      process.emitWarning(`audit log sink failed: ${err.message}`, { code: 'ERR_PROXY_AUDIT_SINK' });
    }
  }

  private sinkRecovered(): void {
    if (this.unhealthy === undefined && this.droppedUnreported === 0) return;
    if (this.file?.error) return;
    const was = this.unhealthy;
    this.unhealthy = undefined;
    this.warned = false;
    if (this.droppedUnreported > 0) {
      const n = this.droppedUnreported;
      this.droppedUnreported = 0;
      this.enqueue({
        category: 'configuration',
        action: 'audit-entries-dropped',
        outcome: 'failure',
        errorType: 'audit_sink_unavailable',
        auditExtra: `"dropped":${n}`,
      });
    }
    if (was) this.emit('recovered');
  }

  private enqueue(fields: AuditFields): void {
    this.queued.push(fields);
    if (!this.sealScheduled) {
      this.sealScheduled = true;
      setImmediate(this.sealSoon);
    }
  }

  private readonly sealSoon = (): void => {
    this.sealScheduled = false;
    this.sealQueued();
  };

  /**
   * Seals the queued entries, in order, and hands their lines to the sinks. Entries are sealed once per turn
   * of the event loop, all together: hashing and serialising back to back keeps that code hot, where one
   * SHA-256 per request between two requests' framework code measured several times its cost in isolation.
   */
  private sealQueued(): void {
    if (this.queued.length === 0) return;
    const batch = this.queued;
    this.queued = [];
    for (const fields of batch) {
      this.seal(fields);
      if (this.chain.signing && this.chain.sinceCheckpoint >= this.checkpointEvery) this.writeCheckpoint(false);
    }
    if (this.direct) (this.file as AuditFileTransport).flushNow();
  }

  private seal(fields: AuditFields): void {
    if (this.direct) {
      // Sealed straight into the file's buffer: the bytes that are hashed are the bytes that are written.
      const file = this.file as AuditFileTransport;
      const start = file.out.pos;
      const listened = this.listenerCount('entry') > 0;
      this.chain.seal(fields, file.out, listened); // the fields are read back only by 'entry' listeners
      const line = listened ? file.out.text(start) : undefined;
      file.endLine(); // before any listener runs: the buffer holds whole lines whatever a listener does
      if (line !== undefined) this.emit('entry', line, fields);
      return;
    }
    const out = this.scratch;
    out.clear();
    this.chain.seal(fields, out);
    const line = out.text(0);
    this.logger.log({ level: 'info', message: line, [LEVEL]: 'info', [MESSAGE]: line, fields } as unknown as winston.LogEntry);
    if (this.listenerCount('entry') > 0) this.emit('entry', line, fields);
  }

  private writeCheckpoint(final: boolean): void {
    this.seal(this.chain.checkpoint(final));
    this.chain.sinceCheckpoint = 0;
  }

  /**
   * Writes one entry. Returns false when it could not be queued (sink full or closed): the loss is counted
   * and recorded as soon as the sink recovers.
   */
  write(fields: AuditFields): boolean {
    if (this.closed || this.full) {
      this.dropped++;
      if (!this.closed) this.droppedUnreported++;
      return false;
    }
    this.enqueue(fields);
    return true;
  }

  /** @internal the middleware marks a request as begun… */
  begin(): void {
    this.inFlight++;
  }

  /** @internal …and as logged. */
  end(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.idle.length > 0) {
      const waiters = this.idle;
      this.idle = [];
      for (const w of waiters) w();
    }
  }

  /** @internal a request's entry is open until `finish` writes it… */
  track(e: OpenEntry): void {
    append(this.open, e);
  }

  /** @internal …and leaves the list then. */
  untrack(e: OpenEntry): void {
    remove(this.open, e);
  }

  /**
   * Also audits the connection level of a server wrapped by `withProxyProtocol`: an entry for every
   * rejected connection (`'proxyError'`: reason code, peer address and port), and with `accepted: true`
   * for every accepted one.
   *
   * @example
   * ```ts
   * log.watch(withProxyProtocol(server));
   * ```
   */
  watch(server: Server, options: WatchOptions = {}): this {
    const onError = (err: ProxyProtocolError) => {
      this.write({
        category: 'network',
        action: 'connection-rejected',
        outcome: 'failure',
        peerAddress: err.peer ? unmapIPv4(err.peer.address) : undefined,
        peerPort: err.peer?.port,
        errorType: 'proxy_protocol',
        errorCode: err.code,
        errorMessage: err.message,
      });
    };
    server.on('proxyError', onError);
    this.unwatch.push(() => server.removeListener('proxyError', onError));
    if (options.accepted) {
      const onConnection = (socket: Socket) => {
        if (!getProxyInfo(socket)) return; // not a connection the PROXY layer handled
        const ends = connectionEnds(socket);
        this.write({
          category: 'network',
          action: 'connection-accepted',
          outcome: 'success',
          clientIp: ends.clientIp,
          clientPort: ends.clientPort,
          peerAddress: ends.peerIp,
          peerPort: ends.peerPort,
        });
      };
      server.on('connection', onConnection);
      this.unwatch.push(() => server.removeListener('connection', onConnection));
    }
    return this;
  }

  /**
   * Waits for in-flight requests, writes the last entries (and a final signed checkpoint), flushes and
   * closes every transport. Resolves when every entry is on disk or handed to its transport. Requests still
   * in flight at the deadline are written with `error.type: "shutdown"`. Safe to call more than once.
   *
   * @example
   * ```ts
   * process.on('SIGTERM', () => server.close(async () => { await log.close(); process.exit(0); }));
   * ```
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.closing ??= this.doClose(options.timeout ?? 30_000, options.flushTimeout ?? 10_000);
    return this.closing;
  }

  private async doClose(timeout: number, flushTimeout: number): Promise<void> {
    const deadline = Date.now() + timeout;
    for (const u of this.unwatch) u();
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idle.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        }),
      ]);
      clearTimeout(timer);
      while (this.open.head !== undefined) finishEntry(this.open.head, 'shutdown');
    }
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    this.sealQueued();
    this.seal({
      kind: 'state',
      category: 'configuration',
      action: 'audit-log-stopped',
      outcome: 'success',
      auditExtra: `"dropped":${this.dropped}`,
    });
    if (this.chain.signing) this.writeCheckpoint(true);
    this.closed = true;
    const flushDeadline = Date.now() + flushTimeout;
    const transports = [...this.logger.transports];
    const finished = transports.map((t) => (t.writableFinished ? Promise.resolve() : once(t, 'finish').then(() => undefined)));
    this.logger.end();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), Math.max(0, flushDeadline - Date.now()));
    });
    const r = await Promise.race([Promise.all(finished), late]);
    clearTimeout(timer);
    if (r === 'late' && this.file) {
      const fileDone = this.file.writableFinished ? Promise.resolve() : once(this.file, 'finish');
      const lost = this.file.abandon();
      let t2: NodeJS.Timeout | undefined;
      await Promise.race([fileDone, new Promise((res) => (t2 = setTimeout(res, 1000)))]);
      clearTimeout(t2);
      throw Object.assign(new Error(`audit log closed with ${lost} entries not written (sink unavailable)`), {
        code: 'ERR_PROXY_AUDIT_LOST',
        lost,
      });
    }
  }
}

/**
 * Creates the audit log: one tamper-evident, PHI-minimised JSON line per request (through the `auditLog`
 * middleware) and per rejected connection (through {@link AuditLog.watch}).
 *
 * @example
 * ```ts
 * const log = createAuditLog({ filename: '/var/log/app/audit.jsonl', service: 'ehr-api' });
 * app.use(auditLog({ log, user: (req) => req.user?.id }));
 * ```
 */
export function createAuditLog(options: AuditLogOptions): AuditLog {
  return new AuditLog(options);
}
