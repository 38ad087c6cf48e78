// The audit file as a winston transport, for a winston logger of your own.

import TransportStream from 'winston-transport';
import { checkOptions, type Known } from '../known-options.js';
import { type Durability, FileSink } from './file-sink.js';

const MESSAGE = Symbol.for('message');

/** Options of {@link AuditFileTransport}. */
export interface AuditFileOptions {
  filename: string;
  /** Milliseconds between retries after a write error. Default 1000. */
  retryInterval?: number;
  /** `'write'` (default) or `'fsync'`: see `createAuditLog`'s `durability`. */
  durability?: Durability;
}

const KNOWN: Known<AuditFileOptions> = { filename: true, retryInterval: true, durability: true };

/**
 * Appends each line a winston logger gives it (`info[MESSAGE]`, e.g. the sealed lines an `AuditLog` hands its
 * transports) to `filename`, whole lines only, with the same file handling as the audit log's own file:
 * `O_APPEND` batches, retries after errors without loss, torn tails ended, rotation followed. `'finish'`
 * means the last line is on disk.
 *
 * @example
 * ```ts
 * log.logger.add(new AuditFileTransport({ filename: '/mnt/second-disk/audit-copy.jsonl' }));
 * ```
 */
export class AuditFileTransport extends TransportStream {
  private readonly sink: FileSink;

  constructor(options: AuditFileOptions) {
    super({ level: 'info' });
    checkOptions(options, KNOWN, 'AuditFileTransport');
    this.sink = new FileSink(options);
    this.sink.open('start');
    this.sink.on('failed', (err: Error) => this.emit('warn', err));
  }

  /** The file. */
  get filename(): string {
    return this.sink.filename;
  }

  /** Lines waiting for the disk. */
  get pending(): number {
    return this.sink.pending;
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.sink.follow();
    this.sink.out.utf8(String(info[MESSAGE]));
    this.sink.endLine();
    callback();
  }

  /** Resolves when every line given so far is written. */
  drained(): Promise<void> {
    this.sink.flush();
    return new Promise((resolve) => this.sink.whenWritten(() => resolve()));
  }

  // Writable's last step before 'finish': 'finish' must mean "on disk".
  override _final(callback: (error?: Error | null) => void): void {
    this.sink.close().then(
      () => callback(),
      (err: Error) => callback(err),
    );
  }
}
