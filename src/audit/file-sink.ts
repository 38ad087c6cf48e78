// The embedded default sink: JSON lines appended to one file, as a winston transport.
import fs from 'node:fs';
import TransportStream from 'winston-transport';
import { LineBuffer } from './line-buffer.js';

const MESSAGE = Symbol.for('message');

/** Options of {@link AuditFileTransport}. */
export interface AuditFileOptions {
  filename: string;
  /** Lines held while the disk is slow or failing; beyond it the sink reports itself full. Default 10000. */
  maxQueue?: number;
  /** Milliseconds between retries after a write error. Default 1000. */
  retryInterval?: number;
  /** File mode for a new file. Default 0o600: the audit log holds client IPs (ePHI). */
  mode?: number;
}

/**
 * Appends each entry's line to `filename`. Lines are batched into one `write(2)` per turn of the event loop
 * on an `O_APPEND` descriptor, so lines from several processes never interleave mid-line. Nothing is
 * dropped on an error: the batch stays queued and is retried; `end()` resolves only after the last byte
 * is written and fsync'ed.
 */
export class AuditFileTransport extends TransportStream {
  readonly filename: string;
  readonly maxQueue: number;
  private readonly retryInterval: number;
  private readonly mode: number;
  private fd: number | undefined;
  /**
   * @internal The lines waiting for the disk, as bytes, oldest first: appended at the end, written from the
   * start. After a failed or short write the unwritten bytes stay at the front, so no line is torn or doubled.
   * The AuditLog seals entries straight into it while this sink is the logger's only transport.
   */
  readonly out = new LineBuffer();
  /** Lines in `out` whose newline is not on disk yet. */
  private lines = 0;
  /** The flush scheduled for the end of this turn of the event loop, if any. */
  private scheduled: NodeJS.Immediate | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failed: Error | undefined;
  private idleWaiters: (() => void)[] = [];
  /**
   * Set by the AuditLog: seals the entries it still holds for this turn of the event loop, so that
   * `drained()` and `reopen()` cover every entry written before they were called.
   */
  beforeFlush: (() => void) | undefined;
  /** Lines written to disk so far. */
  written = 0;

  constructor(options: AuditFileOptions) {
    super({ level: 'info' });
    this.filename = options.filename;
    this.maxQueue = options.maxQueue ?? 10_000;
    this.retryInterval = options.retryInterval ?? 1000;
    this.mode = options.mode ?? 0o600;
  }

  /** Lines waiting for the disk. */
  get pending(): number {
    return this.lines;
  }

  /** The last write error, until a write succeeds again. */
  get error(): Error | undefined {
    return this.failed;
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.append(info[MESSAGE] as string);
    callback();
  }

  /**
   * Queues one line (without its newline) for the next batch. What `log` does for winston; the AuditLog
   * calls it directly while this sink is the logger's only transport.
   */
  append(line: string): void {
    this.out.utf8(line);
    this.endLine();
  }

  /** @internal Ends the line just written into `out` (by `append`, or sealed there by the AuditLog). */
  endLine(): void {
    this.out.byte(0x0a);
    this.lines++;
    if (this.scheduled === undefined && this.retryTimer === undefined) {
      this.scheduled = setImmediate(this.flushSoon);
    }
  }

  private readonly flushSoon = (): void => {
    this.scheduled = undefined;
    this.flush();
  };

  /** Writes what is queued now, in this call, instead of at the end of this turn of the event loop. */
  flushNow(): void {
    if (this.retryTimer !== undefined) return;
    if (this.scheduled !== undefined) {
      // The scheduled flush would find nothing left to write.
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    this.flush();
  }

  private flush(): void {
    const out = this.out;
    if (this.lines === 0) {
      this.settle();
      return;
    }
    if (this.fd === undefined) {
      try {
        this.fd = fs.openSync(this.filename, 'a', this.mode);
      } catch (err) {
        this.fail(err as Error);
        return;
      }
    }
    const lines = this.lines;
    // One synchronous append per batch (per turn of the event loop), as pino's file destination does: the
    // bytes go to the page cache in microseconds, where a thread-pool round trip costs more than the write.
    let off = 0;
    try {
      while (off < out.pos) off += fs.writeSync(this.fd, out.buf, off, out.pos - off);
    } catch (err) {
      // Keep what did not reach the file at the front: whole lines, and the rest of one the write cut short.
      out.buf.copyWithin(0, off, out.pos);
      out.pos -= off;
      let left = 0;
      const rest = out.buf.subarray(0, out.pos);
      for (let i = rest.indexOf(0x0a); i >= 0; i = rest.indexOf(0x0a, i + 1)) left++;
      this.lines = left;
      this.written += lines - left;
      this.fail(err as Error);
      return;
    }
    out.clear();
    this.lines = 0;
    this.written += lines;
    if (this.failed) {
      this.failed = undefined;
      this.emit('recovered');
    }
    this.emit('flushed', lines);
    this.settle();
  }

  private fail(err: Error): void {
    // Reopen on retry: the file may have been replaced (log rotation) or its directory recreated.
    if (this.fd !== undefined) {
      try {
        fs.closeSync(this.fd);
      } catch {}
      this.fd = undefined;
    }
    const first = this.failed === undefined;
    this.failed = err;
    // Not 'error': on a piped Writable that would unpipe it from the logger. The AuditLog listens for this.
    if (first) this.emit('sink-error', err);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.flush();
    }, this.retryInterval);
    this.retryTimer.unref();
  }

  private settle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when every queued line is on disk (not fsync'ed). */
  drained(): Promise<void> {
    this.beforeFlush?.();
    if (this.lines === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // Writable's last step before 'finish': winston ends every transport when the logger ends, and 'finish'
  // must mean "on disk" (winston's own File transport signals it before the bytes land).
  override _final(callback: (error?: Error | null) => void): void {
    const finish = () => {
      if (this.retryTimer) {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
      }
      const fd = this.fd;
      this.fd = undefined;
      if (fd === undefined) return callback();
      fs.fsync(fd, () => fs.close(fd, () => callback()));
    };
    if (this.lines === 0) finish();
    else this.idleWaiters.push(finish);
  }

  /**
   * Closes the file so that the next write opens `filename` afresh: call it after log rotation moved the
   * file away (e.g. on SIGHUP from logrotate's postrotate). Entries written before the call go to the old file;
   * the chain continues in the new one, so verify both, oldest first.
   */
  reopen(): void {
    this.beforeFlush?.();
    // What was written before this call still goes to the old file (the one the descriptor points at).
    if (this.fd !== undefined && this.retryTimer === undefined && this.lines > 0) {
      this.flush();
    }
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      fs.closeSync(fd);
    } catch {}
  }

  /**
   * Gives up on what is still queued (the disk never came back before a shutdown deadline): returns how many
   * lines are lost and lets `_final` complete.
   */
  abandon(): number {
    const lost = this.lines;
    this.out.clear();
    this.lines = 0;
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    this.settle();
    return lost;
  }

  override close(): void {
    // Called by winston on unpipe; the descriptor is released in _final.
  }
}
