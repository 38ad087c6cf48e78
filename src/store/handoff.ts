// Rows handed to the shipper by the audit log of the same process, as it seals their lines: the log holds each
// entry's fields and its exact bytes then, so the shipper need not decode and parse again what was just
// written. The file stays the spool: the shipper still reads it, and takes a handed row only for a line whose
// bytes in the file are the handed line's, byte for byte; any other line is parsed as it always is.
import { type Entry, iso } from '../audit/entry.js';
import { CopyWriter } from './encode.js';
import { rowOf } from './row.js';

/** Handed rows kept at most (bytes of COPY data); past it, lines are read from the file only. */
const LIMIT = 8 * 1024 * 1024;
/** A segment is closed past this size, so that consumed rows are let go of while later ones wait. */
const SEGMENT = 1024 * 1024;
const BACKSLASH = 0x5c;

/** Rows of one stretch of sealed lines, oldest first. */
interface Segment {
  copy: CopyWriter;
  /** The byte length of each row's line, and its sequence number in the chain. */
  lens: number[];
  sequences: number[];
  months: (string | undefined)[];
  /** The next row to take. */
  head: number;
}

/** Who seals the lines: the members every line of the chain repeats. */
export interface HandoffWriter {
  chain: string;
  service: string;
  host: string;
}

/**
 * The rows of one writer's request lines, in the order it sealed them, made as COPY data by the shipper's own
 * {@link CopyWriter} from the same {@link rowOf} as a line read from the file: a handed row and the row of its
 * line read back are the same bytes (test/store/handoff.test.ts compares them).
 */
export class Handoff {
  private segments: Segment[] = [];
  private bytes = 0;
  /** The month of the row last taken. */
  month: string | undefined;
  private lastMonth: string | undefined;

  constructor(
    private readonly source: string,
    readonly writer: HandoffWriter,
  ) {}

  /**
   * Hands over the row of `e`, sealed as `bytes[start..end]` (its line, without newline) with hash `hash`. Only
   * request entries (the log's own entries carry extra audit members, which are parsed from the file) whose
   * line has no backslash (a line read from the file that needs COPY escaping is encoded from its text).
   */
  add(e: Entry, bytes: Buffer, start: number, end: number, hash: string): void {
    if (e.audit !== undefined || this.bytes >= LIMIT || bytes.subarray(start, end).includes(BACKSLASH)) return;
    const w = this.writer;
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
      '', // the line is copied from `bytes`
      hash,
    );
    if (typeof row === 'string') return;
    let s = this.segments[this.segments.length - 1];
    if (s === undefined || s.copy.data.length >= SEGMENT) {
      s = { copy: new CopyWriter(this.source, Buffer.allocUnsafe(64 * 1024)), lens: [], sequences: [], months: [], head: 0 };
      this.segments.push(s);
    }
    const before = s.copy.data.length;
    s.copy.add(row, bytes, start, end);
    this.bytes += s.copy.data.length - before;
    s.lens.push(end - start);
    s.sequences.push(row.sequence);
    // (one string for a month's rows)
    if (row.month !== this.lastMonth) this.lastMonth = row.month;
    s.months.push(this.lastMonth);
  }

  /**
   * Appends to `into` the next handed row if its line is `file[start..end]`, byte for byte, and says whether
   * it did (then {@link month} is that row's month).
   */
  take(file: Buffer, start: number, end: number, into: CopyWriter): boolean {
    const s = this.segments[0];
    if (s === undefined || s.head === s.lens.length) return false;
    const i = s.head;
    const len = s.lens[i] as number;
    if (end - start !== len) return false;
    const data = s.copy.buffer;
    const rowEnd = s.copy.ends[i] as number;
    const lineEnd = rowEnd - s.copy.tailLength;
    if (file.compare(data, lineEnd - len, lineEnd, start, end) !== 0) return false;
    into.row(data, i === 0 ? 0 : (s.copy.ends[i - 1] as number), rowEnd);
    this.month = s.months[i];
    this.next(s);
    return true;
  }

  /**
   * A line of this writer's chain with sequence `sequence` was read without its handed row (it was sealed
   * before the shipper started, or the file holds something else there): the rows up to it will never be
   * read now (the chain's lines are in the file in sealed order), and are let go of.
   */
  passed(sequence: number): void {
    for (let s = this.segments[0]; s !== undefined && s.head < s.lens.length; s = this.segments[0]) {
      if ((s.sequences[s.head] as number) > sequence) return;
      this.next(s);
    }
  }

  private next(s: Segment): void {
    s.head++;
    if (s.head < s.lens.length) return;
    this.bytes -= s.copy.data.length;
    if (this.segments.length > 1) {
      this.segments.shift();
      return;
    }
    // The only segment, all taken: written again from its start.
    s.copy.clear();
    s.lens = [];
    s.sequences = [];
    s.months = [];
    s.head = 0;
  }
}
