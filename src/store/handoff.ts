// Entries handed to the shipper by the audit log of the same process, as it seals their lines: the log holds
// each entry's fields then, so the shipper need not decode and parse again what was just written. The file
// stays the spool: the shipper still reads it, and takes a handed entry only for a line whose bytes in the
// file are the handed line's, byte for byte; any other line is parsed as it always is.
import { type Entry, iso } from '../audit/entry.js';
import type { CopyWriter } from './encode.js';
import { rowOf } from './row.js';

/** Bytes of handed lines kept at most; past it, lines are read from the file only. */
const LIMIT = 8 * 1024 * 1024;
const BACKSLASH = 0x5c;

/** Who seals the lines: the members every line of the chain repeats. */
export interface HandoffWriter {
  chain: string;
  service: string;
  host: string;
}

/**
 * The request entries of one writer, in the order it sealed them, each with its hash and a copy of its line.
 * The row of a handed entry is made by the same {@link rowOf} and {@link CopyWriter} as the row of a line
 * read from the file, from the values JSON.parse of the line gives back (test/store/handoff.test.ts compares
 * both ways, byte for byte).
 */
export class Handoff {
  private entries: Entry[] = [];
  private hashes: string[] = [];
  private lens: number[] = [];
  /** The next entry to take, and where its line starts in `lines`. */
  private head = 0;
  private headAt = 0;
  private lines = Buffer.allocUnsafe(64 * 1024);
  private end = 0;
  /** The month of the row last taken. */
  month: string | undefined;

  constructor(readonly writer: HandoffWriter) {}

  /**
   * Hands over `e`, sealed as `bytes[start..end]` (its line, without newline) with hash `hash`. Request entries
   * only: the log's own entries carry members of their own, and are parsed from the file.
   */
  add(e: Entry, bytes: Buffer, start: number, end: number, hash: string): void {
    const len = end - start;
    if (e.audit !== undefined || this.end - this.headAt + len > LIMIT) return;
    if (this.end + len > this.lines.length) this.room(len);
    bytes.copy(this.lines, this.end, start, end);
    this.end += len;
    this.entries.push(e);
    this.hashes.push(hash);
    this.lens.push(len);
  }

  /**
   * Appends to `into` the row of the next handed entry if its line is `file[start..end]`, byte for byte, and
   * needs no escaping in COPY (no backslash: then no JSON escape either), and says whether it did (then
   * {@link month} is that row's month).
   */
  take(file: Buffer, start: number, end: number, into: CopyWriter): boolean {
    const i = this.head;
    if (i === this.entries.length) return false;
    const len = this.lens[i] as number;
    if (end - start !== len || file.compare(this.lines, this.headAt, this.headAt + len, start, end) !== 0) return false;
    if (file.subarray(start, end).includes(BACKSLASH)) return false;
    const e = this.entries[i] as Entry;
    const w = this.writer;
    // What JSON.parse of the line gives for these members is what the log serialised them from.
    const row = rowOf(
      {
        at: iso(e.timestamp),
        action: e.action,
        outcome: e.outcome,
        sequence: e.sequence,
        clientIp: e.clientIp,
        peerAddress: e.peerAddress,
        method: e.method,
        status: e.status,
        route: e.route,
        path: e.path,
        userId: e.userId,
        service: w.service,
        host: w.host,
        chain: w.chain,
      },
      '', // the line is copied from `file`
      this.hashes[i] as string,
    );
    if (typeof row === 'string') return false; // (a writer's entry always has a chain and a sequence)
    // A valid UTF-8 line without a backslash is its own COPY text (src/store/spool.ts copies it the same way).
    into.add(row, file, start, end);
    this.month = row.month;
    this.next();
    return true;
  }

  /**
   * A line of this writer's chain with sequence `sequence` was read without its handed entry (it was sealed
   * before the shipper started, it needs escaping, or the file holds something else there): the entries up
   * to it will never be read now (a writer's lines are in its file in the order it sealed them), and are let go.
   */
  passed(sequence: number): void {
    while (this.head < this.entries.length && (this.entries[this.head] as Entry).sequence <= sequence) this.next();
  }

  private next(): void {
    this.headAt += this.lens[this.head] as number;
    this.head++;
    if (this.head < this.entries.length) return;
    // All taken: start again from the beginning (a batch lets go of every entry it took).
    this.entries = [];
    this.hashes = [];
    this.lens = [];
    this.head = 0;
    this.headAt = 0;
    this.end = 0;
  }

  /** Makes room for `len` more bytes of lines: the taken ones are dropped first, then the buffer grows. */
  private room(len: number): void {
    if (this.head > 0) {
      this.lines.copyWithin(0, this.headAt, this.end);
      this.end -= this.headAt;
      this.headAt = 0;
      this.entries = this.entries.slice(this.head);
      this.hashes = this.hashes.slice(this.head);
      this.lens = this.lens.slice(this.head);
      this.head = 0;
    }
    if (this.end + len <= this.lines.length) return;
    let size = this.lines.length * 2;
    while (size < this.end + len) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.lines.copy(bigger, 0, 0, this.end);
    this.lines = bigger;
  }
}
