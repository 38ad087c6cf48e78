// Appending whole lines to one file: the embedded sink of the audit log (and of the access log).
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { ErrorCodes } from '../protocol/errors.js';
import { LineBuffer } from './line-buffer.js';
import { endsWithNewline, inspectTail, type TailInfo } from './tail.js';

/** How far an entry has gone before the answer it belongs to may leave the process. */
export type Durability = 'write' | 'fsync';

/** Options of {@link FileSink}. */
export interface FileSinkOptions {
  filename: string;
  /** File mode of a new file. Default 0o600: the audit log holds client IPs (ePHI). */
  mode?: number;
  /** Milliseconds between retries after a write error. Default 1000. */
  retryInterval?: number;
  /** `'write'` (default): waiters run once the lines are written to the operating system; `'fsync'`: once on disk. */
  durability?: Durability;
}

/** What the sink found when it opened the file. */
export interface Opened extends TailInfo {
  /**
   * Why it was opened: the first time, because the file at `filename` was replaced, because asked to, or
   * because an earlier open failed.
   */
  reason: 'start' | 'rotated' | 'truncated' | 'reopen' | 'retry';
}

const NL = Buffer.from('\n');

/** Where one write of whole lines landed: the file (inode and device) and the bytes from `from` to `to`. */
export interface Written {
  ino: number;
  dev: number;
  from: number;
  to: number;
  /** Lines in it. */
  lines: number;
}

/** Told where the sink's writes land (see {@link FileSink.tracker}). */
export interface WriteTracker {
  /**
   * After every write of queued lines: where they landed, or `undefined` when that is not known (another
   * process wrote to the file meanwhile, the write failed or was cut short).
   */
  written(w: Written | undefined): void;
  /** The descriptor was closed: what was said of its file may name another file now (inodes are reused). */
  closed(): void;
}

/**
 * Lines for one file, appended with one `write(2)` per batch on an `O_APPEND` descriptor, so that lines of
 * several processes never interleave mid-line. Only whole lines are ever handed to the file: after a short or
 * failed write the torn line is kept from its start and written again whole once the disk takes it, after a
 * newline that ends the fragment the failed write left. Nothing is dropped on an error: the lines stay queued
 * and are retried. Events: `'opened'` ({@link Opened}, after every open), `'failed'` (first error of an outage),
 * `'recovered'`.
 */
export class FileSink extends EventEmitter {
  readonly filename: string;
  readonly durability: Durability;
  private readonly mode: number;
  private readonly retryInterval: number;
  /** Lines waiting for the disk, as bytes, oldest first, each ending in a newline. */
  readonly out = new LineBuffer();
  /** Whole lines in `out`. */
  private lines = 0;
  /** Lines written so far. */
  written = 0;
  private fd: number | undefined;
  private ino = 0;
  private dev = 0;
  /** A write was cut short or failed: the file may end in a fragment of a line. */
  private torn = false;
  private failed: Error | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private scheduled: NodeJS.Immediate | undefined;
  /** Run once everything now in `out` is written (and synced, with `'fsync'`); false: given up on. */
  private waiting: ((written: boolean) => void)[] = [];
  /** Written, waiting for the fsync under way or the next one. */
  private unsynced: ((written: boolean) => void)[] = [];
  private syncing = false;
  /** The callbacks of the sync under way. */
  private inflight: ((written: boolean) => void)[] = [];
  /** Lines were written since the last fdatasync began. */
  private writtenSinceSync = false;
  private closed = false;
  /** Told where each write lands (set by the owner; none by default). */
  tracker: WriteTracker | undefined;
  /** Where the next write lands if no other process writes to the file meanwhile (NaN: not known). */
  private expected = Number.NaN;
  /** The least the file's size can be: when last looked at, plus what was appended since. Less: it was cut. */
  private seenSize = 0;

  constructor(options: FileSinkOptions) {
    super();
    const { filename, mode = 0o600, retryInterval = 1000, durability = 'write' } = options;
    if (typeof filename !== 'string' || filename === '') throw new TypeError('FileSink: filename must be a non-empty string');
    if (durability !== 'write' && durability !== 'fsync') throw new TypeError("durability must be 'write' or 'fsync'");
    if (!Number.isInteger(retryInterval) || retryInterval < 1) throw new TypeError('FileSink: bad retryInterval');
    this.filename = filename;
    this.mode = mode;
    this.retryInterval = retryInterval;
    this.durability = durability;
  }

  /** Lines waiting for the disk. */
  get pending(): number {
    return this.lines;
  }

  /** The last write error, until a write succeeds again. */
  get error(): Error | undefined {
    return this.failed;
  }

  /**
   * Opens `filename` (creating it), ends a torn last line with a newline and says what the file held. Throws
   * when the file cannot be opened. Called by the owner before the first line, after rotation, on request.
   */
  open(reason: Opened['reason']): Opened {
    this.closeFd();
    const fd = fs.openSync(this.filename, 'a+', this.mode);
    let info: TailInfo;
    try {
      info = inspectTail(fd);
      const st = fs.fstatSync(fd);
      this.ino = st.ino;
      this.dev = st.dev;
      // A fragment at the end (a writer died mid-line): end it, so that the next line is not glued to it.
      if (info.tornBytes > 0) fs.writeSync(fd, NL);
      this.expected = info.size + (info.tornBytes > 0 ? 1 : 0);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    this.fd = fd;
    this.torn = false;
    this.seenSize = info.size;
    const opened: Opened = { ...info, reason };
    this.emit('opened', opened);
    return opened;
  }

  /**
   * What became of the file at `filename`, looked at now: `'rotated'` when it is no longer the one open
   * (renamed or removed), `'truncated'` when it is, shorter than it was (`copytruncate`), else undefined.
   */
  rotated(): 'rotated' | 'truncated' | undefined {
    if (this.fd === undefined || this.closed) return undefined;
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(this.filename, { throwIfNoEntry: false });
    } catch {
      return undefined; // the directory is unreadable: keep writing where we are, the error shows on write
    }
    if (st === undefined || st.ino !== this.ino || st.dev !== this.dev) return 'rotated';
    const cut = st.size < this.seenSize;
    this.seenSize = st.size;
    return cut ? 'truncated' : undefined;
  }

  /**
   * Opens `filename` anew when the file there was replaced, removed or cut (see {@link rotated}); returns
   * whether it was. Called before every batch: one `stat` each. A watch on the directory instead (inotify
   * reports every append too, so one callback per batch) measured 0.998x and 1.002x of it head to head on the
   * audited Fastify app (bench/ab.mjs, bench/README.md): the stat stays, and notices at the next batch. An
   * error is kept and retried like a write error.
   */
  follow(): boolean {
    const why = this.rotated();
    if (why === undefined) return false;
    try {
      this.open(why);
    } catch (err) {
      this.closeFd();
      this.fail(err as Error);
    }
    return true;
  }

  /** Ends the line just written into `out`; the batch is written at the end of this turn of the event loop. */
  endLine(): void {
    this.out.byte(0x0a);
    this.lines++;
    if (this.scheduled === undefined && this.retryTimer === undefined && !this.closed) {
      this.scheduled = setImmediate(this.flushSoon);
    }
  }

  /**
   * Runs `callback(true)` once every line now queued is written (and on disk, with `'fsync'`), or
   * `callback(false)` if the sink gives up on them (see {@link close}).
   */
  whenWritten(callback: (written: boolean) => void): void {
    if (this.lines > 0)
      this.waiting.push(callback); // released by the flush that writes them
    else if (this.durability === 'write' || (!this.writtenSinceSync && !this.syncing && this.unsynced.length === 0)) {
      callback(true);
    } else {
      // Written, not yet synced (or a sync under way that may have started before): the next sync.
      this.unsynced.push(callback);
      this.sync();
    }
  }

  /**
   * Runs every waiting callback now: with `true` when the owner lets answers go while the disk fails
   * (fail-open), `false` when the lines are given up on.
   */
  releaseWaiting(written: boolean): void {
    const w = [...this.unsynced, ...this.waiting];
    this.unsynced = [];
    this.waiting = [];
    for (const cb of w) cb(written);
  }

  private readonly flushSoon = (): void => {
    this.scheduled = undefined;
    this.flush();
  };

  /** Writes what is queued, now. Never throws: errors are kept, reported once, and retried. */
  flush(): void {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    if (this.retryTimer !== undefined) return; // a retry is due; it writes everything
    if (this.lines === 0) {
      this.written0();
      return;
    }
    const out = this.out;
    let fd: number;
    try {
      // (no descriptor: an earlier reopen failed; this one tells the owner through 'opened')
      if (this.fd === undefined) this.open('retry');
      fd = this.fd as unknown as number;
      // One synchronous append per batch, as pino's file destination does: the bytes reach the page cache in
      // microseconds, where a thread-pool round trip costs more than the write. A short write leaves part of
      // a line in the file, and the rest is never appended after it (another process's line may follow it
      // already): the line is written again whole, after a newline that ends the fragment unless another
      // writer ended it — at once, once more, then on the retry timer.
      for (let attempt = 0; ; attempt++) {
        if (this.torn) {
          if (!endsWithNewline(fd)) this.seenSize += fs.writeSync(fd, NL);
          this.torn = false;
          this.expected = Number.NaN;
        }
        const n = fs.writeSync(fd, out.buf, 0, out.pos);
        this.seenSize += n; // (the file is at least this long now, unless cut)
        if (n === out.pos) break;
        this.expected = Number.NaN;
        this.keepFrom(n);
        if (attempt === 1) throw Object.assign(new Error('short write: the disk took part of a batch'), { code: 'ENOSPC' });
      }
    } catch (err) {
      this.expected = Number.NaN;
      this.tracker?.written(undefined);
      this.fail(err as Error);
      return;
    }
    if (this.tracker !== undefined) this.landed(fd, out.pos);
    this.written += this.lines;
    this.lines = 0;
    this.writtenSinceSync = true;
    out.clear();
    if (this.failed) {
      this.failed = undefined;
      this.emit('recovered');
    }
    this.written0();
  }

  /**
   * Tells the tracker where the `n` bytes just appended landed. With O_APPEND a write goes to the end of the
   * file as it is then, which only the size afterwards tells: when it grew by exactly `n` since this sink's
   * last write, no other process wrote in between, and the bytes are at `to - n`.
   */
  private landed(fd: number, n: number): void {
    let to: number;
    try {
      to = fs.fstatSync(fd).size;
    } catch {
      this.expected = Number.NaN;
      this.tracker?.written(undefined);
      return;
    }
    const from = to - n;
    const w = from === this.expected ? { ino: this.ino, dev: this.dev, from, to, lines: this.lines } : undefined;
    this.expected = to;
    this.tracker?.written(w);
  }

  /**
   * After a write that stopped at `off`: keep the lines not wholly written, each from its start. A write that
   * stopped right before a line's newline left that line whole in the file: only its newline is kept (written
   * again, the line would be in the file twice: a duplicate entry; another process's line glued after it
   * is a whole line too).
   */
  private keepFrom(off: number): void {
    const out = this.out;
    const done = off === 0 ? 0 : out.buf[off] === 0x0a ? off : out.buf.lastIndexOf(0x0a, off - 1) + 1;
    if (off > done) this.torn = true;
    let left = 0;
    for (let i = out.buf.indexOf(0x0a, done); i >= 0 && i < out.pos; i = out.buf.indexOf(0x0a, i + 1)) left++;
    this.written += this.lines - left;
    this.lines = left;
    out.buf.copyWithin(0, done, out.pos);
    out.pos -= done;
  }

  /** Everything queued is written: release the waiters, or sync first. */
  private written0(): void {
    if (this.waiting.length === 0) return;
    if (this.durability === 'write') {
      const w = this.waiting;
      this.waiting = [];
      for (const cb of w) cb(true);
      return;
    }
    this.unsynced.push(...this.waiting);
    this.waiting = [];
    this.sync();
  }

  // Group commit: one fdatasync for every line written while the previous one ran.
  private sync(): void {
    if (this.syncing || this.unsynced.length === 0 || this.fd === undefined) return;
    this.syncing = true;
    this.writtenSinceSync = false;
    this.inflight = this.unsynced;
    this.unsynced = [];
    fs.fdatasync(this.fd, (err) => {
      this.syncing = false;
      const batch = this.inflight; // (empty when syncNow() let them go meanwhile)
      this.inflight = [];
      if (err) {
        this.unsynced.unshift(...batch);
        this.fail(err);
        return;
      }
      for (const cb of batch) cb(true);
      this.sync();
    });
  }

  /**
   * With `'fsync'`: syncs now, on this thread, and lets go of every callback waiting for a sync (also one
   * under way). For an answer that must go out before Node ends its connection; a failure is left to the
   * ordinary sync, which reports it.
   */
  syncNow(): void {
    if (this.fd === undefined || this.lines > 0 || (this.unsynced.length === 0 && this.inflight.length === 0)) return;
    try {
      fs.fdatasyncSync(this.fd);
    } catch {
      return;
    }
    const batch = [...this.inflight, ...this.unsynced];
    this.inflight = [];
    this.unsynced = [];
    this.writtenSinceSync = false;
    for (const cb of batch) cb(true);
  }

  private fail(err: Error): void {
    const first = this.failed === undefined;
    this.failed = err;
    // Reopen on retry: the file may have been replaced or its directory recreated.
    if (first) this.emit('failed', err);
    if (this.closed || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.lines === 0 && this.unsynced.length > 0) this.sync();
      else this.flush();
    }, this.retryInterval);
    this.retryTimer.unref();
  }

  /**
   * Writes and syncs what is left, then closes the file. Resolves when done; after `timeout` ms of a failing
   * disk, gives up and rejects with `ERR_PROXY_AUDIT_LOST` (`lost`: the lines not written).
   */
  async close(timeout = 10_000): Promise<void> {
    this.flush();
    const deadline = Date.now() + timeout;
    while ((this.lines > 0 || this.syncing) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, this.retryInterval)));
      if (this.retryTimer === undefined && this.lines > 0) this.flush();
    }
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const lost = this.lines;
    if (lost > 0) {
      this.lines = 0;
      this.out.clear();
      this.releaseWaiting(false);
      this.closeFd();
      throw Object.assign(new Error(`audit log closed with ${lost} entries not written (the disk did not take them)`), {
        code: ErrorCodes.AUDIT_LOST,
        lost,
      });
    }
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) {
      await new Promise<void>((resolve) => fs.fsync(fd, () => fs.close(fd, () => resolve())));
    }
    this.releaseWaiting(true);
  }

  /** Writes what is left, syncs and closes, synchronously (at process exit). Errors are given up on. */
  closeSync(): void {
    this.flush();
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.fd !== undefined) {
      try {
        fs.fsyncSync(this.fd);
      } catch {}
    }
    this.closeFd();
  }

  private closeFd(): void {
    if (this.fd === undefined) return;
    try {
      fs.closeSync(this.fd);
    } catch {}
    this.fd = undefined;
    this.tracker?.closed();
  }
}
