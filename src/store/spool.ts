// Reading the audit file as the shipper's spool: whole lines from a byte offset, never the unfinished tail.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { type CopyBatch, CopyWriter, needsEscape } from './encode.js';
import type { Handoff } from './handoff.js';
import { candidates, toRow } from './row.js';

/** A line of the spool that is not an entry, and was not shipped. */
export interface SkippedLine {
  file: string;
  /** Byte offset of the physical line in the file. */
  offset: number;
  reason: string;
}

/** Lines read from one spool file: the rows, and the offset just past the last whole line they came from. */
export interface Chunk {
  /** The entries as COPY data. */
  batch: CopyBatch;
  /** The months (`YYYY-MM`) of their timestamps. */
  months: Set<string>;
  skipped: SkippedLine[];
  from: number;
  to: number;
}

const NL = 0x0a;
/** A line longer than this is not an entry the writers make; it is skipped in pieces of this size. */
const MAX_LINE = 16 * 1024 * 1024;

/**
 * One open spool file. It keeps its descriptor, so that a file renamed (rotated) or even deleted while it is
 * shipped can still be read to its end.
 */
export class SpoolFile {
  /** The device of the file (with `ino`, what the audit log's hand-over names). */
  readonly dev: number;
  /** `ino:sha256(first line)`, which identifies this file across renames (inode numbers alone are reused). */
  id: string | undefined;
  /** Shipped up to here (the start of the next line to read). */
  offset = 0;
  /** Last time the file was seen growing or was read with something new (ms). */
  lastGrowth = Date.now();
  /** The last read from `scannedFrom` found no whole line before `scanned` (an unfinished tail at most). */
  scanned = 0;
  scannedFrom = -1;
  private buf: Buffer;

  private constructor(
    readonly path: string,
    private readonly fh: fsp.FileHandle,
    readonly ino: number,
    dev: number,
    bufferSize: number,
  ) {
    this.dev = dev;
    this.buf = Buffer.allocUnsafe(bufferSize);
  }

  static async open(path: string, bufferSize: number): Promise<SpoolFile> {
    const fh = await fsp.open(path, 'r');
    try {
      const st = await fh.stat();
      return new SpoolFile(path, fh, st.ino, st.dev, bufferSize);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  async size(): Promise<number> {
    return (await this.fh.stat()).size;
  }

  /** Computes `id` once the first line is whole; undefined until then. */
  async identify(): Promise<string | undefined> {
    if (this.id !== undefined) return this.id;
    const head = Buffer.allocUnsafe(64 * 1024);
    const { bytesRead } = await this.fh.read(head, 0, head.length, 0);
    let nl = head.subarray(0, bytesRead).indexOf(NL);
    if (nl < 0 && bytesRead === head.length) nl = bytesRead; // a first line this long: its first 64 KiB name it
    if (nl < 0) return undefined;
    this.id = `${this.ino}:${createHash('sha256').update(head.subarray(0, nl)).digest('hex').slice(0, 32)}`;
    return this.id;
  }

  /**
   * Reads whole lines from `from` (up to about `maxBytes`, at most `maxRows` rows). A last line without its
   * newline is left for later: a writer may be in the middle of it, and a torn one is terminated by the next
   * writer that opens the file. `source`: the rows' `source` column. `handoff`: rows the audit log of this
   * process handed over for lines it wrote here; where they begin, they are taken instead of reading.
   */
  async read(from: number, maxBytes: number, maxRows: number, source: string, handoff?: Handoff): Promise<Chunk> {
    const handed = this.handed(from, maxRows, maxBytes, handoff);
    if (typeof handed !== 'number') return handed;
    if (this.buf.length < maxBytes) this.buf = Buffer.allocUnsafe(maxBytes);
    let { bytesRead } = await this.fh.read(this.buf, 0, Math.min(maxBytes, handed - from), from);
    // Lines written meanwhile may have been handed over: the read stops where their rows begin.
    const meanwhile = this.handed(from, maxRows, maxBytes, handoff);
    if (typeof meanwhile !== 'number') return meanwhile;
    bytesRead = Math.min(bytesRead, meanwhile - from);
    let end = this.buf.subarray(0, bytesRead).lastIndexOf(NL) + 1;
    let longLine = false;
    while (end === 0 && bytesRead === this.buf.length) {
      // One line longer than the buffer: grow up to MAX_LINE, then give up on it as not an entry.
      if (this.buf.length >= MAX_LINE) {
        longLine = true;
        end = bytesRead;
        break;
      }
      const bigger = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(bigger, 0, 0, bytesRead);
      this.buf = bigger;
      const more = await this.fh.read(this.buf, bytesRead, this.buf.length - bytesRead, from + bytesRead);
      bytesRead += more.bytesRead;
      if (more.bytesRead === 0) break;
      end = this.buf.subarray(0, bytesRead).lastIndexOf(NL) + 1;
    }
    this.scannedFrom = from;
    this.scanned = end === 0 ? from + bytesRead : from;
    const months = new Set<string>();
    let rows = 0;
    const skipped: SkippedLine[] = [];
    // Column text is about a third of a request line: room for the batch without growing, mostly.
    const copy = new CopyWriter(source, Buffer.allocUnsafe(Math.ceil(end * 1.5) + 1024));
    if (longLine) {
      skipped.push({ file: this.path, offset: from, reason: `a line longer than ${MAX_LINE} bytes` });
      return { batch: { data: copy.data, ends: copy.ends }, months, skipped, from, to: from + end };
    }
    let at = 0;
    while (at < end) {
      const nl = this.buf.indexOf(NL, at);
      const lineEnd = nl < 0 || nl >= end ? end : nl;
      if (lineEnd > at) {
        // Invalid UTF-8 (never written by a writer) becomes U+FFFD, so the stored line fails its hash.
        const physical = this.buf.toString('utf8', at, lineEnd);
        const parts = candidates(physical);
        for (const c of parts) {
          const row = toRow(c);
          if (typeof row === 'string') {
            skipped.push({ file: this.path, offset: from + at, reason: row });
            continue;
          }
          rows++;
          if (row.month !== undefined) months.add(row.month);
          // A whole physical line without U+FFFD is valid UTF-8: its bytes are its text.
          if (parts.length === 1 && !needsEscape(c) && !c.includes('\uFFFD')) copy.add(row, this.buf, at, lineEnd);
          else copy.add(row);
        }
      }
      at = lineEnd + 1;
      if (rows >= maxRows) break;
    }
    return { batch: { data: copy.data, ends: copy.ends }, months, skipped, from, to: from + Math.min(at, end) };
  }

  /**
   * The handed rows at `from` (a chunk), else where the next ones begin in this file (Infinity: none), so
   * that reading stops there.
   */
  private handed(from: number, maxRows: number, maxBytes: number, handoff: Handoff | undefined): Chunk | number {
    const next = handoff?.next(this.ino, this.dev, from);
    if (next === undefined) return Number.POSITIVE_INFINITY;
    if (next > from) return next;
    const chunk = handoff?.take(this.ino, this.dev, from, maxRows, maxBytes) as Chunk;
    this.scannedFrom = from;
    this.scanned = from;
    return chunk;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}
