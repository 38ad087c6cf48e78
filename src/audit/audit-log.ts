import type { KeyObject } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import type { Server } from 'node:net';
import os from 'node:os';
import winston from 'winston';
import type TransportStream from 'winston-transport';
import { checkOptions, type Known } from '../known-options.js';
import { ErrorCodes } from '../protocol/errors.js';
import type { Handoff } from '../store/handoff.js';
import { checkPostgres, type PostgresOption } from '../store/pg.js';
import { PostgresShipper } from '../store/shipper.js';
import { Chain, ownEntry, toPrivateKey } from './chain.js';
import { formatElbLine } from './elb-format.js';
import { type AuditFields, type Entry, toEntry } from './entry.js';
import { type Durability, FileSink, type Opened } from './file-sink.js';
import { LineBuffer } from './line-buffer.js';
import { type WatchOptions, watchServer } from './watch.js';

export type { WatchOptions } from './watch.js';

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
   * How far a request's entry has gone before its response may leave the process (the file sink):
   * `'write'` (default) — written to the operating system, so a crash of the process (SIGKILL) loses no entry
   * of an answered request; `'fsync'` — on disk (group-committed `fdatasync`), so a crash of the machine
   * loses none either.
   */
  durability?: Durability;
  /**
   * What happens while the sink cannot keep up or fails: `'fail-closed'` (default) answers new requests with
   * 503 until it recovers and holds the answers whose entries wait for the disk; `'fail-open'` serves them
   * and counts the entries it could not queue.
   */
  onSinkError?: 'fail-closed' | 'fail-open';
  /** Entries held for a slow or failing file before the log counts as unavailable. Default 10000. */
  maxQueue?: number;
  /** Milliseconds between retries after a write error. Default 1000. */
  retryInterval?: number;
  /** An nginx `elb_format`-style access log (human-readable, no query values, not chained) in this file. */
  accessLog?: string;
  /**
   * Also ship the file to PostgreSQL, in this process (a {@link PostgresShipper} on `filename`, the durable
   * spool): a connection string or `{ connectionString?, pool?, table? }` (table default `"audit_log"`, made
   * by `proxy-protocol-audit pg-init`). Needs `filename` and the `pg` package. An outage of the database
   * never stops the app: the lines wait in the file. `close()` then resolves once every entry is in
   * PostgreSQL. Default: none.
   */
  postgres?: PostgresOption;
}

const KNOWN_OPTIONS: Known<AuditLogOptions> = {
  filename: true,
  transports: true,
  service: true,
  host: true,
  hashKey: true,
  signingKey: true,
  checkpointEvery: true,
  checkpointInterval: true,
  durability: true,
  onSinkError: true,
  maxQueue: true,
  retryInterval: true,
  accessLog: true,
  postgres: true,
};

/** Counters of an {@link AuditLog}. */
export interface AuditStats {
  /** Entries sealed into the chain. */
  entries: number;
  /** Entries that could not be queued (queue full, or after close); recorded as an `audit-entries-dropped` entry. */
  dropped: number;
  /** Open entries (requests begun and not yet logged). */
  inFlight: number;
  /** Entries waiting to be sealed or written to the file. */
  pending: number;
  /** Callbacks and listeners of the app that threw or returned a bad value (each also a `'warning'`). */
  callbackErrors: number;
}

/** Options of {@link AuditLog.close}. */
export interface CloseOptions {
  /** Milliseconds to wait for open entries (requests in flight). Default 30000. */
  timeout?: number;
  /** Then milliseconds to wait for the sink to take the last entries (a failing disk). Default 10000. */
  flushTimeout?: number;
  /**
   * With `postgres`: then milliseconds to wait for every line of the file to be in PostgreSQL; past it,
   * close() rejects with `ERR_PROXY_AUDIT_SHIP_TIMEOUT` (the file holds the rest; the next shipper of the
   * file sends it). Default 30000.
   */
  shipTimeout?: number;
}

/** Where a log is in its life: `open`, `closing` (close() called, open entries finishing), `closed`. */
export type AuditLogState = 'open' | 'closing' | 'closed';

/**
 * An entry that stays open while what it records goes on: a request, a WebSocket session. Get one from
 * {@link AuditLog.open}; write it once, when the thing it records ended.
 */
export interface OpenEntry {
  /**
   * Writes the entry (the first call only; later calls return false). `whenWritten(true)` runs once its line
   * is written to the file (and on disk, with `durability: 'fsync'`): an adapter holds the last byte of its
   * answer until then. `whenWritten(false)`: the entry will not be written (the disk never came back before
   * `close()` gave up, or no room while failing closed) — do not answer; close the connection. Throws a
   * `TypeError` for fields of a wrong type.
   */
  write(fields: AuditFields, whenWritten?: (written: boolean) => void): boolean;
  /** Whether the entry was written. */
  readonly done: boolean;
}

/** Options of {@link AuditLog.open}. */
export interface OpenOptions {
  /**
   * Called when `close()` reaches its deadline with this entry still open: write it then (for a request,
   * with `errorType: 'shutdown'`). Without it, the log writes the entry as `open-entry-shutdown`.
   */
  onShutdown?: (entry: OpenEntry) => void;
  /**
   * Keep room in the queue for this entry from now on, so that entries written meanwhile (503 refusals) never
   * take its place. Default true.
   */
  reserve?: boolean;
  /** When the fields have no `requestId`, write a new random UUID v4 as `http.request.id`. Default false. */
  generateRequestId?: boolean;
}

class Open implements OpenEntry {
  done = false;
  prev: Open | undefined = undefined;
  next: Open | undefined = undefined;
  constructor(
    private readonly log: AuditLog,
    readonly reserved: boolean,
    readonly generate: boolean,
    readonly onShutdown: ((entry: OpenEntry) => void) | undefined,
  ) {}

  write(fields: AuditFields, whenWritten?: (written: boolean) => void): boolean {
    if (this.done) return false;
    const e = toEntry(fields); // a TypeError leaves the entry open
    e.generateRequestId = this.generate;
    this.done = true;
    return this.log.ended(this, e, whenWritten);
  }
}

/**
 * A tamper-evident audit log. Create it with {@link createAuditLog}.
 *
 * Events: `'error'` (sink failure; emitted only when listened to, otherwise a process warning),
 * `'recovered'`, `'warning'` (a callback or listener of the app failed; `code: 'ERR_PROXY_AUDIT_CALLBACK'`;
 * otherwise a process warning), `'reopened'` (the file was replaced or cut short, e.g. by log rotation, and opened anew),
 * `'entry'` `(line, fields)` (every sealed line).
 */
export class AuditLog extends EventEmitter {
  /**
   * The winston logger of the log's other transports (syslog, CloudWatch, …): add or remove transports
   * through it at any time; each gets every sealed line as `info[MESSAGE]` and the entry as `info.fields`.
   * Its `level` and `silent` never filter audit entries. The embedded file is not one of its transports.
   */
  readonly logger: winston.Logger;
  readonly failClosed: boolean;
  private readonly file: FileSink | undefined;
  private readonly access: FileSink | undefined;
  private readonly chain: Chain;
  private readonly checkpointEvery: number;
  private readonly maxQueue: number;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private dropped = 0;
  private droppedUnreported = 0;
  private callbackErrors = 0;
  private warnedCallback = false;
  private inFlight = 0;
  /** Open entries that hold a place in the queue. */
  private reserved = 0;
  private idle: (() => void)[] = [];
  private readonly openHead: { next: Open | undefined } = { next: undefined };
  private unhealthy: Error | undefined;
  private closing: Promise<void> | undefined;
  private lifecycle: AuditLogState = 'open';
  private warnedSink = false;
  private readonly unwatch: (() => void)[] = [];
  /** Entries written this turn of the event loop, sealed together at its end (see sealQueued). */
  private queued: Entry[] = [];
  private holds: ((written: boolean) => void)[] = [];
  private sealScheduled = false;
  /** Where lines are sealed when there is no file (the file's own buffer takes them otherwise). */
  private readonly scratch = new LineBuffer();
  /** The last entries (stop, final checkpoint) are sealed. */
  private stopped = false;
  /** Ships the file to PostgreSQL (with `postgres`): its events (`'outage'`, `'recovered'`, …), `lag`, `stats`. */
  readonly shipper: PostgresShipper | undefined;
  /** Where the rows of the lines written to the file go for the shipper (with `postgres`). */
  private readonly handoff: Handoff | undefined;

  /** @internal use {@link createAuditLog} */
  constructor(options: AuditLogOptions) {
    // An async listener that rejects ('entry' handed to a SIEM) is reported as a warning, not a crash.
    super({ captureRejections: true });
    checkOptions(options, KNOWN_OPTIONS, 'createAuditLog');
    const {
      filename,
      transports = [],
      service = process.env.npm_package_name ?? 'app',
      host = os.hostname(),
      hashKey,
      signingKey,
      checkpointEvery = 1000,
      checkpointInterval = 60_000,
      durability = 'write',
      onSinkError = 'fail-closed',
      maxQueue = 10_000,
      retryInterval = 1000,
      accessLog,
      postgres,
    } = options ?? ({} as AuditLogOptions);
    if (filename === undefined && transports.length === 0) {
      throw new TypeError('createAuditLog: give a filename, transports, or both');
    }
    if (filename !== undefined && (typeof filename !== 'string' || filename === ''))
      throw new TypeError('createAuditLog: bad filename');
    if (!Array.isArray(transports)) throw new TypeError('createAuditLog: transports must be an array');
    if (onSinkError !== 'fail-closed' && onSinkError !== 'fail-open') {
      throw new TypeError("createAuditLog: onSinkError must be 'fail-closed' or 'fail-open'");
    }
    if (durability !== 'write' && durability !== 'fsync')
      throw new TypeError("createAuditLog: durability must be 'write' or 'fsync'");
    if (!Number.isInteger(checkpointEvery) || checkpointEvery < 1) throw new TypeError('createAuditLog: bad checkpointEvery');
    if (!Number.isInteger(checkpointInterval) || checkpointInterval < 0)
      throw new TypeError('createAuditLog: bad checkpointInterval');
    if (!Number.isInteger(maxQueue) || maxQueue < 1) throw new TypeError('createAuditLog: bad maxQueue');
    if (hashKey !== undefined && !(typeof hashKey === 'string' || Buffer.isBuffer(hashKey))) {
      throw new TypeError('createAuditLog: hashKey must be a string or Buffer');
    }
    if (typeof service !== 'string' || typeof host !== 'string')
      throw new TypeError('createAuditLog: service and host must be strings');
    if (accessLog !== undefined && (typeof accessLog !== 'string' || accessLog === ''))
      throw new TypeError('createAuditLog: bad accessLog');
    if (postgres !== undefined && filename === undefined) {
      throw new TypeError('createAuditLog: postgres ships the file: give a filename too');
    }
    if (postgres !== undefined) checkPostgres(postgres, 'createAuditLog');
    this.failClosed = onSinkError === 'fail-closed';
    this.checkpointEvery = checkpointEvery;
    this.maxQueue = maxQueue;
    this.chain = new Chain({
      hashKey,
      signingKey: signingKey === undefined ? undefined : toPrivateKey(signingKey),
      service,
      host,
    });
    // No format: every transport receives the sealed line as info[MESSAGE] and info.message, byte for byte.
    this.logger = winston.createLogger({
      level: 'info',
      format: winston.format((info) => info)(),
      transports,
      exitOnError: false,
    });
    this.logger.on('error', (err: Error) => {
      if (this.file === undefined) this.sinkFailed(err);
      else this.report(err);
    });
    let opened: Opened | undefined;
    if (filename !== undefined) {
      const file = new FileSink({ filename, durability, retryInterval });
      try {
        opened = file.open('start');
      } catch {
        // (a directory not there yet, a volume not mounted yet): the first write retries and reports it, and
        // once the file opens, an `audit-log-reopened` entry records what it held
      }
      file.on('failed', (err: Error) => this.sinkFailed(err));
      file.on('recovered', () => this.sinkRecovered());
      file.on('opened', (o: Opened) => this.reopened(o));
      this.file = file;
    }
    // Made (and its options checked) at construction; it reads the file the sink writes.
    this.shipper =
      postgres === undefined ? undefined : new PostgresShipper({ filename: filename as string, postgres, unref: true }).start();
    this.handoff = this.shipper?.handOver({ chain: this.chain.id, service, host });
    if (this.file !== undefined) this.file.tracker = this.handoff;
    if (accessLog !== undefined) {
      this.access = new FileSink({ filename: accessLog, retryInterval });
      this.access.on('failed', (err: Error) => this.report(err));
      try {
        this.access.open('start');
      } catch {
        // (as for the audit file: the first write retries the open and reports a failure)
      }
    }
    if (this.chain.signing && checkpointInterval > 0) {
      this.checkpointTimer = setInterval(() => {
        this.sealQueued();
        if (this.chain.sinceCheckpoint > 0) this.sealOne(this.chain.checkpoint(false));
        this.file?.flush();
      }, checkpointInterval);
      this.checkpointTimer.unref();
    }
    live.add(this);
    if (live.size === 1) process.on('exit', closeAllAtExit);
    this.enqueue(ownEntry('audit-log-started', { pid: process.pid, ...this.keyInfo(), ...found(opened) }));
  }

  private keyInfo(): Record<string, unknown> {
    const fp = this.chain.fingerprint;
    return fp === undefined ? {} : { key_fingerprint: fp };
  }

  /** The chain id of this writer (one per process). */
  get chainId(): string {
    return this.chain.id;
  }

  /** The file of the embedded sink, if any. */
  get filename(): string | undefined {
    return this.file?.filename;
  }

  /** Counters. */
  get stats(): AuditStats {
    return {
      entries: this.chain.sequence,
      dropped: this.dropped,
      inFlight: this.inFlight,
      pending: this.queued.length + (this.file?.pending ?? 0),
      callbackErrors: this.callbackErrors,
    };
  }

  /** `open`, `closing` (from the call of `close()`), `closed` (every entry written). */
  get state(): AuditLogState {
    return this.lifecycle;
  }

  /**
   * Whether new requests may be served: false while the sink is failing or full (with `'fail-closed'`), and
   * once `close()` was called.
   */
  get accepting(): boolean {
    if (this.lifecycle !== 'open') return false;
    if (!this.failClosed) return true;
    return this.unhealthy === undefined && !this.full;
  }

  /** Whether the queue (entries to seal, lines to write, places kept for open entries) is at its bound. */
  private get full(): boolean {
    return this.queued.length + this.reserved + (this.file?.pending ?? 0) >= this.maxQueue;
  }

  private sinkFailed(err: Error): void {
    const first = this.unhealthy === undefined;
    this.unhealthy = err;
    // Fail-open serves while the disk fails: the answers waiting for their entries go now.
    if (!this.failClosed) this.file?.releaseWaiting(true);
    if (!first) return;
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else if (!this.warnedSink) {
      this.warnedSink = true;
      process.emitWarning(`audit log sink failed: ${err.message}`, { code: ErrorCodes.AUDIT_SINK });
    }
  }

  private sinkRecovered(): void {
    if (this.unhealthy === undefined) return;
    this.unhealthy = undefined;
    this.warnedSink = false;
    this.reportDropped();
    this.emit('recovered');
  }

  private reportDropped(): void {
    if (this.droppedUnreported === 0) return;
    const n = this.droppedUnreported;
    this.droppedUnreported = 0;
    const e = ownEntry('audit-entries-dropped', { dropped: n }, 'failure');
    e.errorType = 'audit_sink_unavailable';
    this.enqueue(e);
  }

  /** A transport or the access log failed: said, but the audit file (the evidence) decides health. */
  private report(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else process.emitWarning(`audit log transport failed: ${err.message}`, { code: ErrorCodes.AUDIT_SINK });
  }

  /**
   * Reports a callback or listener of the app that threw or returned a bad value: counted in
   * `stats.callbackErrors` and emitted as `'warning'` (or, with no listener, one process warning). Adapters
   * call it; it never throws.
   */
  warn(cause: unknown, what: string): void {
    this.callbackErrors++;
    const err = Object.assign(new Error(`audit log: ${what}: ${cause instanceof Error ? cause.message : String(cause)}`), {
      code: ErrorCodes.AUDIT_CALLBACK,
      cause,
    });
    if (this.listenerCount('warning') > 0) {
      try {
        this.emit('warning', err);
      } catch {}
    } else if (!this.warnedCallback) {
      this.warnedCallback = true;
      process.emitWarning(err.message, { code: ErrorCodes.AUDIT_CALLBACK });
    }
  }

  /** Where EventEmitter sends the rejection of an async listener (captureRejections). */
  [Symbol.for('nodejs.rejection')](err: unknown, event: string | symbol): void {
    const what = `an async '${String(event)}' listener rejected`;
    // (a 'warning' listener that rejects is not told about itself, again and again)
    if (event === 'warning') process.emitWarning(`audit log: ${what}: ${err instanceof Error ? err.message : String(err)}`);
    else this.warn(err, what);
  }

  private reopened(o: Opened): void {
    // (after the stop entry nothing more may join the chain: the lines left are written as they are)
    if (o.reason === 'start' || this.stopped) return;
    const e = ownEntry('audit-log-reopened', { pid: process.pid, reason: o.reason, ...found(o) });
    this.sealOne(e);
    if (this.chain.signing) this.sealOne(this.chain.checkpoint(false)); // (as after the start entry)
    if (o.reason === 'rotated' || o.reason === 'truncated') this.emit('reopened', this.file?.filename);
  }

  private enqueue(e: Entry, hold?: (written: boolean) => void): void {
    this.queued.push(e);
    if (hold !== undefined) this.holds.push(hold);
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
   * Seals the queued entries, in order, writes their lines with one `write(2)`, and then lets go of the
   * answers that waited for them. Entries are sealed once per turn of the event loop, all together: hashing
   * and serialising back to back keeps that code hot, where one SHA-256 per request between two requests'
   * framework code measured several times its cost in isolation.
   */
  private sealQueued(follow = true): void {
    if (this.queued.length === 0) return;
    const file = this.file;
    if (follow) {
      file?.follow(); // after rotation, 'opened' seals the reopen entry first
      this.access?.follow();
    }
    const batch = this.queued;
    const holds = this.holds;
    this.queued = [];
    this.holds = [];
    for (const e of batch) {
      this.sealOne(e);
      // The start entry is signed at once: it names the file's last line (audit.previous), which counts as a
      // witness of that line's writer only as far as a checkpoint covers it (see the verifier's trusts()).
      if (this.chain.signing && (this.chain.sinceCheckpoint >= this.checkpointEvery || e.action === 'audit-log-started'))
        this.sealOne(this.chain.checkpoint(false));
    }
    this.access?.flush();
    if (file === undefined) {
      for (const h of holds) h(true);
      return;
    }
    file.flush();
    // In fail-open mode with the disk failing, the answers do not wait (the entries stay queued and retried).
    const wait = this.failClosed || this.unhealthy === undefined;
    for (const h of holds) {
      if (wait) file.whenWritten(h);
      else h(true);
    }
  }

  private sealOne(e: Entry): void {
    const file = this.file;
    const out = file ? file.out : this.scratch;
    const start = out.pos;
    const transports = this.logger.transports.length > 0;
    const listened = this.listenerCount('entry') > 0;
    let line: string | undefined;
    try {
      this.chain.seal(e, out, listened || transports);
      if (listened || transports) line = out.text(start);
    } catch (err) {
      out.pos = start; // nothing of a line that failed stays behind
      this.warn(err, `entry ${e.action} could not be sealed`);
      return;
    }
    if (file) {
      file.endLine();
      this.handoff?.add(e, out.buf, start, out.pos - 1, this.chain.lastHash);
    } else out.clear();
    if (this.access !== undefined) {
      const text = formatElbLine(e);
      if (text !== undefined) {
        this.access.out.utf8(text);
        this.access.endLine();
      }
    }
    if (line === undefined) return;
    if (transports) {
      this.logger.log({
        level: 'info',
        message: line,
        [LEVEL]: 'info',
        [MESSAGE]: line,
        fields: e,
      } as unknown as winston.LogEntry);
    }
    if (listened) {
      try {
        this.emit('entry', line, e);
      } catch (err) {
        this.warn(err, "an 'entry' listener threw");
      }
    }
  }

  /**
   * Writes one entry; `whenWritten` runs once its line is written (see {@link OpenEntry.write}). Returns false
   * when it could not be queued (queue full, or the log closed): the loss is counted and recorded as soon as
   * the sink recovers, and `whenWritten` runs at once — with `false` when failing closed (do not answer),
   * `true` when failing open. Throws a `TypeError` for fields of a wrong type.
   */
  write(fields: AuditFields, whenWritten?: (written: boolean) => void): boolean {
    const e = toEntry(fields);
    return this.queue(e, false, whenWritten);
  }

  private queue(e: Entry, reserved: boolean, whenWritten: ((written: boolean) => void) | undefined): boolean {
    if (this.lifecycle === 'closed' || (!reserved && this.full)) {
      this.dropped++;
      if (this.lifecycle !== 'closed') this.droppedUnreported++;
      whenWritten?.(!this.failClosed);
      return false;
    }
    this.enqueue(e, whenWritten);
    return true;
  }

  /**
   * Opens an entry for something that goes on (a request, a WebSocket session): counted in `stats.inFlight`,
   * waited for by `close()`, written by its owner with {@link OpenEntry.write} when it ends.
   *
   * @example
   * ```ts
   * const entry = log.open({ onShutdown: (e) => e.write({ ...fields(), errorType: 'shutdown' }) });
   * socket.on('close', () => entry.write(fields()));
   * ```
   */
  open(options: OpenOptions = {}): OpenEntry {
    const { onShutdown, reserve = true, generateRequestId = false } = options;
    const reserved = reserve && this.lifecycle !== 'closed' && !this.full;
    const o = new Open(this, reserved, generateRequestId, onShutdown);
    if (reserved) this.reserved++;
    this.inFlight++;
    const head = this.openHead;
    o.next = head.next;
    if (head.next) head.next.prev = o;
    head.next = o;
    return o;
  }

  /**
   * @internal Writes the entries queued now instead of at the end of this turn (and syncs, with `'fsync'`),
   * so that the answers waiting for them go out at once: Node ends a connection whose client half-closed as
   * soon as it reads that, and an answer still held then would never reach the client.
   */
  settle(): void {
    if (this.holds.length > 0) this.sealQueued();
    this.file?.syncNow();
  }

  /** @internal an open entry was written */
  ended(o: Open, e: Entry, whenWritten: ((written: boolean) => void) | undefined): boolean {
    if (o.prev) o.prev.next = o.next;
    else this.openHead.next = o.next;
    if (o.next) o.next.prev = o.prev;
    o.prev = o.next = undefined;
    if (o.reserved) this.reserved--;
    const r = this.queue(e, o.reserved, whenWritten);
    this.inFlight--;
    if (this.inFlight === 0 && this.idle.length > 0) {
      const waiters = this.idle;
      this.idle = [];
      for (const w of waiters) w();
    }
    return r;
  }

  /**
   * Also audits the connection level of a server: an entry for every connection rejected by
   * `withProxyProtocol` (`'proxyError'`), every request Node's HTTP server rejects before the app
   * (`'clientError'`: 400, 408, 431, answered once the entry is written — unless the server has another
   * `'clientError'` listener, as Fastify's has: that listener answers, and the entry, written all the same,
   * records no status), and with `accepted: true` every accepted connection.
   *
   * @example
   * ```ts
   * log.watch(withProxyProtocol(server));
   * ```
   */
  watch(server: Server, options: WatchOptions = {}): this {
    checkOptions(options, { accepted: true } satisfies Known<WatchOptions>, 'watch');
    this.unwatch.push(watchServer(this, server, options));
    return this;
  }

  /**
   * Closes the file so that the next entry opens `filename` afresh (recorded as `audit-log-reopened`).
   * Rotation (the file at `filename` renamed, removed or cut short) is noticed without it, at the next
   * entry; call it after a rotation that keeps the name, the inode and the size (never use `copytruncate`:
   * the entries written between its copy and its cut are lost). Entries written before the call go to the
   * old file.
   */
  reopen(): void {
    if (this.lifecycle === 'closed') return;
    this.sealQueued(false); // what was written before the call goes where the descriptor points
    this.file?.flush();
    try {
      this.file?.open('reopen');
    } catch (err) {
      this.sinkFailed(err as Error);
    }
    try {
      this.access?.open('reopen');
    } catch (err) {
      this.report(err as Error);
    }
  }

  /** Resolves when every entry written so far is in the file (written; on disk with `'fsync'`). */
  drained(): Promise<void> {
    this.sealQueued();
    const file = this.file;
    if (file === undefined) return Promise.resolve();
    return new Promise((resolve) => file.whenWritten(() => resolve()));
  }

  /**
   * Stops taking new requests (`state` becomes `closing`: adapters answer late requests 503 and close their
   * connections), waits for open entries, writes the last entries (and a final signed checkpoint), then
   * flushes and closes every sink. Resolves when every entry is on disk or handed to its transport (and, with
   * `postgres`, in PostgreSQL); rejects with `ERR_PROXY_AUDIT_LOST` when the disk did not take them by
   * `flushTimeout`, or with `ERR_PROXY_AUDIT_SHIP_TIMEOUT` when PostgreSQL did not by `shipTimeout`. Open entries still open at
   * the deadline are written by their `onShutdown`. Safe to call more than once.
   *
   * @example
   * ```ts
   * process.on('SIGTERM', () => server.close(async () => { await log.close(); process.exit(0); }));
   * ```
   */
  close(options: CloseOptions = {}): Promise<void> {
    checkOptions(options, { timeout: true, flushTimeout: true, shipTimeout: true } satisfies Known<CloseOptions>, 'close');
    this.closing ??= this.doClose(options.timeout ?? 30_000, options.flushTimeout ?? 10_000).then(
      () => this.shipper?.close(options.shipTimeout ?? 30_000),
      async (err) => {
        // The file did not take every entry; ship what it holds all the same, and report the loss.
        await this.shipper?.close(options.shipTimeout ?? 30_000).catch(() => {});
        throw err;
      },
    );
    return this.closing;
  }

  /**
   * Seals what is left and the last entries (`audit-log-stopped`, the final checkpoint): once, from
   * `close()` or at process exit. Stops watching and checkpointing; the log is `closed` from here on.
   */
  private stop(reason: 'close' | 'exit'): void {
    if (this.stopped) return;
    this.stopped = true;
    live.delete(this);
    if (live.size === 0) process.removeListener('exit', closeAllAtExit);
    for (const u of this.unwatch) u();
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    this.sealQueued();
    this.reportDropped();
    this.sealQueued();
    this.sealOne(ownEntry('audit-log-stopped', { dropped: this.dropped, reason }));
    if (this.chain.signing) this.sealOne(this.chain.checkpoint(true));
    this.lifecycle = 'closed';
  }

  /** @internal at process exit: writes open entries as `shutdown`, the last entries, and syncs the file. */
  closeAtExit(): void {
    for (let o = this.openHead.next; o !== undefined; o = this.openHead.next) this.shutdown(o);
    this.stop('exit');
    this.file?.closeSync();
    this.access?.closeSync();
  }

  private shutdown(o: Open): void {
    if (o.onShutdown) {
      try {
        o.onShutdown(o);
      } catch (err) {
        this.warn(err, 'an onShutdown callback threw');
      }
    }
    if (!o.done) o.write({ category: 'web', action: 'open-entry-shutdown', outcome: 'unknown', errorType: 'shutdown' });
  }

  private async doClose(timeout: number, flushTimeout: number): Promise<void> {
    this.lifecycle = 'closing';
    if (this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.idle.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, timeout);
        }),
      ]);
      clearTimeout(timer);
      for (let o = this.openHead.next; o !== undefined; o = this.openHead.next) this.shutdown(o);
    }
    this.stop('close');
    const transports = [...this.logger.transports];
    // A transport that fails on its way out is reported (winston emits its error on the logger), not waited for:
    // the audit file, the evidence, decides how close() ends.
    const finished = transports.map((t) =>
      t.writableFinished
        ? Promise.resolve()
        : once(t, 'finish').then(
            () => undefined,
            () => undefined,
          ),
    );
    this.logger.end();
    const deadline = Date.now() + flushTimeout;
    // The access log is closed beside the audit file, not before it (the file keeps its whole budget); it is
    // not evidence: one failing at close is tried once more and given up on (reported), not waited for.
    const access = this.access;
    const accessClosed = access?.close(access.error === undefined ? flushTimeout : 0).catch((err: Error) => this.report(err));
    // (its failure is taken at once: it may come while the transports are waited for)
    const fileClosed = this.file?.close(Math.max(0, deadline - Date.now())).then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(finished),
      new Promise((resolve) => {
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      }),
    ]);
    clearTimeout(timer);
    await accessClosed;
    const failed = await fileClosed;
    if (failed !== undefined) throw failed.err;
  }
}

/** Logs not closed yet: written to the end if the process exits without closing them. */
const live = new Set<AuditLog>();

// 'exit' runs synchronously, and the file sink writes synchronously: a process ended by process.exit() —
// an app's own, or a cluster worker's whose primary went away, which Node ends at once — still closes its
// chain. (A signal without a handler ends the process with no 'exit': install one that calls close().)
function closeAllAtExit(): void {
  for (const log of live) log.closeAtExit();
}

/** The `audit.*` members of a start or reopen entry: what the writer found at the end of the file. */
function found(o: Opened | undefined): Record<string, unknown> {
  if (o === undefined) return {};
  const r: Record<string, unknown> = {};
  if (o.previous) r.previous = o.previous;
  if (o.tornBytes > 0) r.torn_bytes = o.tornBytes;
  return r;
}

/**
 * Creates the audit log: one tamper-evident, PHI-minimised JSON line per request (through the `auditLog`
 * middleware) and per rejected connection (through {@link AuditLog.watch}). A file that cannot be opened yet
 * (its directory missing) is an outage like a failing disk: see `onSinkError`.
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
