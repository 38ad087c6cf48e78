// Reading the audit file as the shipper's spool: whole lines from a byte offset, never the unfinished tail.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { MAX_LINE_BYTES } from '../audit/line-reader.js';
import { type CopyBatch, CopyWriter, needsEscape } from './encode.js';
import type { Handoff } from './handoff.js';
import { type RawPiece, rawPiece } from './raw.js';
import { MARKER, toRow } from './row.js';

/** Lines read from one spool file: the rows, and the offset just past the last whole line they came from. */
export interface Chunk {
  /** The entries as COPY data. */
  batch: CopyBatch;
  /** Where each entry row's text is in the file: row i at byte `spans[2i]`, `spans[2i + 1]` bytes long. */
  spans: number[];
  /** The months (`YYYY-MM`) of their timestamps. */
  months: Set<string>;
  /** The pieces that are not entry rows, in file order, each with its place among the rows. */
  raw: RawPiece[];
  from: number;
  to: number;
}

const NL = 0x0a;
const CR = 0x0d;
const MARKER_BYTES = Buffer.from(MARKER);
/** Bytes read per step while passing over the rest of a line longer than MAX_LINE_BYTES. */
const SCAN = 1024 * 1024;
/**
 * Lines parsed between two turns of the event loop. The shipper parses the next batch while PostgreSQL inserts
 * the current one; parsed in one go (about 40 ms for 5,000 lines) it kept the socket from being fed meanwhile,
 * and PostgreSQL waited. Yielding every 256 lines, 200,000 entries shipped at 1.11x the rate (median of 6
 * rounds, 0.997x–1.217x; 23,912–36,226/s against 22,954–32,988/s), PostgreSQL's CPU per row 23.7 µs against
 * 29.3 µs (medians) (bench/store.mjs with BEFORE=, 2026-12-02).
 */
const YIELD_LINES = 256;

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
  /**
   * The last bytes before `offset` as they were read when shipped: a file truncated in place and written
   * again past `offset` holds other bytes there (the shipper compares them at each look).
   */
  tail: Buffer | undefined;
  /**
   * Found to begin with another line than it was identified by, between the read of a batch and its resume
   * point's bytes (a cut in place then, which those bytes cannot show): the next look treats it as cut.
   */
  cut = false;
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
    this.id = await this.readId();
    return this.id;
  }

  /**
   * Whether the file still begins with the line it was identified by: false once it was truncated (and
   * written again: a new first line), as `copytruncate` does.
   */
  async sameStart(): Promise<boolean> {
    return this.id !== undefined && (await this.readId()) === this.id;
  }

  private async readId(): Promise<string | undefined> {
    const head = Buffer.allocUnsafe(64 * 1024);
    const { bytesRead } = await this.fh.read(head, 0, head.length, 0);
    let nl = head.subarray(0, bytesRead).indexOf(NL);
    if (nl < 0 && bytesRead === head.length) nl = bytesRead; // a first line this long: its first 64 KiB name it
    if (nl < 0) return undefined;
    return `${this.ino}:${createHash('sha256').update(head.subarray(0, nl)).digest('hex').slice(0, 32)}`;
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
    // (The buffer may be larger than asked for, grown by a long line earlier: what counts is what was asked.)
    let asked = Math.min(maxBytes, handed - from);
    let { bytesRead } = await this.fh.read(this.buf, 0, asked, from);
    // Lines written meanwhile may have been handed over: the read stops where their rows begin.
    const meanwhile = this.handed(from, maxRows, maxBytes, handoff);
    if (typeof meanwhile !== 'number') return meanwhile;
    bytesRead = Math.min(bytesRead, meanwhile - from);
    // (Handed rows begin after a newline: a read never needs to go into them.)
    const limit = Math.min(handed, meanwhile) - from;
    let end = this.buf.subarray(0, bytesRead).lastIndexOf(NL) + 1;
    let longLine = false;
    while (end === 0 && bytesRead === asked && asked < limit) {
      // One line longer than what was read: read on, up to MAX_LINE_BYTES, the most of a line the verifier reads.
      if (asked >= MAX_LINE_BYTES) {
        longLine = true;
        break;
      }
      asked = Math.min(asked * 2, MAX_LINE_BYTES, limit);
      if (this.buf.length < asked) {
        const bigger = Buffer.allocUnsafe(asked);
        this.buf.copy(bigger, 0, 0, bytesRead);
        this.buf = bigger;
      }
      const more = await this.fh.read(this.buf, bytesRead, asked - bytesRead, from + bytesRead);
      bytesRead += more.bytesRead;
      if (more.bytesRead === 0) break;
      end = this.buf.subarray(0, bytesRead).lastIndexOf(NL) + 1;
    }
    this.scannedFrom = from;
    // Column text is about a third of a request line: room for the batch without growing, mostly.
    const c = new ChunkBuilder(this.path, this.buf, from, source, Math.ceil(end * 1.5) + 1024);
    if (longLine) {
      // The verifier reads such a line as its first MAX_LINE_BYTES (line-reader.ts): so does the store, and
      // the rest of the line is passed over.
      const nl = await this.newlineFrom(from + bytesRead);
      this.scanned = nl.found ? from : nl.at;
      if (!nl.found) return c.chunk(from);
      c.line(0, bytesRead, nl.at - from);
      return c.chunk(nl.at + 1);
    }
    this.scanned = end === 0 ? from + bytesRead : from;
    let at = 0;
    let n = 0;
    while (at < end) {
      const nl = this.buf.indexOf(NL, at);
      const lineEnd = nl < 0 || nl >= end ? end : nl;
      c.line(at, lineEnd - at, lineEnd - at);
      at = lineEnd + 1;
      if (c.copy.ends.length >= maxRows) break;
      if (++n % YIELD_LINES === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return c.chunk(from + Math.min(at, end));
  }

  /** The first newline at or after `pos` (`found`), or where the file ends. */
  private async newlineFrom(pos: number): Promise<{ at: number; found: boolean }> {
    const scan = Buffer.allocUnsafe(SCAN);
    for (;;) {
      const { bytesRead } = await this.fh.read(scan, 0, SCAN, pos);
      if (bytesRead === 0) return { at: pos, found: false };
      const i = scan.subarray(0, bytesRead).indexOf(NL);
      if (i >= 0) return { at: pos + i, found: true };
      pos += bytesRead;
    }
  }

  /** `length` bytes at `offset` of the file (a line shipped as a row that PostgreSQL then refused). */
  async bytesAt(offset: number, length: number): Promise<Buffer> {
    const b = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(b, done, length - done, offset + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return b.subarray(0, done);
  }

  /**
   * Where the last line before `offset` that is not blank starts, `offset` being the start of a line; -1 when
   * only blank lines come before it; undefined when `offset` follows no newline, or that line is longer than
   * `limit` bytes.
   */
  async lineBefore(offset: number, limit: number): Promise<number | undefined> {
    if (offset === 0) return -1;
    if ((await this.bytesAt(offset - 1, 1))[0] !== NL) return undefined;
    const b = Buffer.allocUnsafe(64 * 1024);
    const blank = async (start: number, end: number) =>
      end === start || (end - start === 1 && (await this.bytesAt(start, 1))[0] === CR);
    let end = offset - 1; // the newline that ends the line looked at
    let pos = end; // read backwards from here
    for (;;) {
      if (end - pos > limit) return undefined;
      if (pos === 0) return (await blank(0, end)) ? -1 : 0;
      const from = Math.max(0, pos - b.length);
      const { bytesRead } = await this.fh.read(b, 0, pos - from, from);
      if (bytesRead < pos - from) return undefined; // shorter now
      const i = b.subarray(0, bytesRead).lastIndexOf(NL);
      if (i < 0) {
        pos = from;
        continue;
      }
      const start = from + i + 1;
      if (!(await blank(start, end))) return start;
      end = from + i;
      pos = end;
    }
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

/**
 * The rows and raw pieces of one read. Every physical line is read as the verifier reads it
 * (src/audit/verifier.ts): without one trailing `\r`, split before each `{"@timestamp":"`; each entry becomes
 * a row, and any other piece but a blank line is kept as its exact bytes, in file order among the rows.
 */
class ChunkBuilder {
  readonly copy: CopyWriter;
  private readonly spans: number[] = [];
  private readonly months = new Set<string>();
  private readonly raw: RawPiece[] = [];
  /** The line being read: where it ends in the buffer (its `\r` included), and its bytes not read. */
  private lineEnd = 0;
  private cut = 0;

  constructor(
    private readonly path: string,
    private readonly buf: Buffer,
    private readonly from: number,
    source: string,
    size: number,
  ) {
    this.copy = new CopyWriter(source, Buffer.allocUnsafe(size));
  }

  /** A physical line at `buf[start]`, `kept` bytes of it read, `length` bytes long in the file (no newline). */
  line(start: number, kept: number, length: number): void {
    const end = start + kept;
    this.lineEnd = end;
    this.cut = length - kept;
    const textEnd = end > start && this.buf[end - 1] === CR ? end - 1 : end;
    if (textEnd === start) return; // blank
    // Invalid UTF-8 (never written by a writer) becomes U+FFFD, so a stored entry fails its hash.
    const text = this.buf.toString('utf8', start, textEnd);
    if (text.indexOf(MARKER, 1) < 0) {
      this.piece(text, start, textEnd, false);
      return;
    }
    // A torn fragment with other writers' lines glued after it: split before every marker, in bytes (the
    // marker is ASCII, which UTF-8 never uses inside a character: the pieces decode as the verifier's do).
    for (let s = start; s < textEnd; ) {
      let m = this.buf.indexOf(MARKER_BYTES, s + 1);
      // (The buffer holds more than this line: a marker must lie within it, also at the cut of a long line.)
      if (m < 0 || m + MARKER_BYTES.length > textEnd) m = textEnd;
      this.piece(this.buf.toString('utf8', s, m), s, m, m < textEnd);
      s = m;
    }
  }

  /** One piece `text` of the line, `buf[start..end]` (`glued`: another piece follows it on the line). */
  private piece(text: string, start: number, end: number, glued: boolean): void {
    const row = toRow(text);
    if (typeof row === 'string') {
      // Its exact bytes: a last piece with the line's \r, and the length of what was not read.
      const rawEnd = glued ? end : this.lineEnd;
      this.raw.push(
        rawPiece(this.path, this.from + start, this.buf.subarray(start, rawEnd), {
          length: rawEnd - start + (glued ? 0 : this.cut),
          reason: row,
          glued,
          before: this.copy.ends.length,
        }),
      );
      return;
    }
    if (row.month !== undefined) this.months.add(row.month);
    this.spans.push(this.from + start, end - start);
    // Text without U+FFFD is valid UTF-8: its bytes are its text, copied as read.
    if (!needsEscape(text) && !text.includes('\uFFFD')) this.copy.add(row, this.buf, start, end);
    else this.copy.add(row);
  }

  chunk(to: number): Chunk {
    const { copy, spans, months, raw, from } = this;
    return { batch: { data: copy.data, ends: copy.ends }, spans, months, raw, from, to };
  }
}
