// Rows handed to the shipper by the audit log of the same process as it writes their lines: the log holds
// each entry's fields and its exact bytes then, and its file sink learns where each write landed, so the
// shipper need not read back and parse what was just written. The file stays the spool: whatever was not
// handed over (lines of other processes, lines sealed before the shipper started, a backlog past the bound,
// a write that failed) is read from the file, as always.
import { type Entry, iso } from '../audit/entry.js';
import type { WriteTracker, Written } from '../audit/file-sink.js';
import { CopyWriter } from './encode.js';
import { INDEXED, pgTimestamp, text, toRow } from './row.js';
import type { Chunk } from './spool.js';

/** COPY data of handed rows kept at most (bytes); past it, lines are read from the file. */
const LIMIT = 16 * 1024 * 1024;
/** Rows are written into buffers of this size, each let go of once its rows are shipped. */
const ARENA = 1024 * 1024;
const BACKSLASH = 0x5c;
/** The timestamps whose Date#toISOString toRow keeps as it is (years 1000 to 9999); others go through pgTimestamp. */
const FIRST_MS = Date.UTC(1000, 0, 1);
const END_MS = Date.UTC(10000, 0, 1);

/** An address the entry's checks accepted, without its zone (inet has none). */
function zoneless(a: string | undefined): string | null {
  if (a === undefined) return null;
  const pct = a.indexOf('%');
  return pct < 0 ? a : a.slice(0, pct);
}

/** Who seals the lines: the members every line of the chain repeats. */
export interface HandoffWriter {
  chain: string;
  service: string;
  host: string;
}

/** Rows of lines written one after another into one file. */
interface Run {
  ino: number;
  dev: number;
  /** File offsets: where the first line starts, and where each row's line ends (after its newline). */
  from: number;
  fileEnds: number[];
  /** The rows as COPY data, and where each ends in it. */
  data: Buffer;
  dataEnds: number[];
  months: (string | undefined)[];
  /** Rows shipped. */
  head: number;
}

/**
 * The rows of one writer's lines, made as it seals them by the same {@link CopyWriter} as the rows of lines
 * read from the file, with the columns toRow gives for them (test/store/handoff.test.ts compares both ways,
 * byte for byte), and kept with where the writes landed (the log's file sink is told, as its
 * {@link WriteTracker}). The shipper takes them for a file offset where they begin.
 */
export class Handoff implements WriteTracker {
  private copy: CopyWriter;
  /** Rows of the lines sealed since the last write: where they start in `copy`, their lines' lengths, months. */
  private pendingAt = 0;
  private pendingEnds: number[] = [];
  private pendingLens: number[] = [];
  private pendingMonths: (string | undefined)[] = [];
  /** Lines sealed since the last write (a line that has no row makes that write's rows unusable). */
  private pendingLines = 0;
  private runs: Run[] = [];
  private held = 0;

  /** The chain column, and the host and service columns (the same in every row of the writer), as COPY data. */
  private readonly chainColumn: Buffer;
  private readonly hostColumns: Buffer;
  private month = '';

  constructor(
    private readonly source: string,
    readonly writer: HandoffWriter,
  ) {
    this.copy = new CopyWriter(source, Buffer.allocUnsafe(ARENA));
    const columns = (...values: (string | null)[]) => {
      const w = new CopyWriter(source, Buffer.allocUnsafe(1024));
      for (const v of values) w.column(v);
      return Buffer.from(w.data);
    };
    this.chainColumn = columns(writer.chain);
    this.hostColumns = columns(text(writer.host), text(writer.service));
  }

  /**
   * The row of entry `e`, sealed as `bytes[start..end]` (its line, without newline) with hash `hash`. Never
   * throws: a line whose row cannot be made here is read from the file.
   */
  add(e: Entry, bytes: Buffer, start: number, end: number, hash: string): void {
    this.pendingLines++;
    // (rows waiting for a write count too: a failing disk keeps lines queued, and their rows are dropped)
    if (this.pendingEnds.length !== this.pendingLines - 1 || this.held + this.copy.length - this.pendingAt >= LIMIT) return;
    try {
      if (this.copy.length > ARENA - 3 * (end - start) - 4096) this.nextArena();
      let month: string | undefined;
      if (e.audit === undefined && !bytes.subarray(start, end).includes(BACKSLASH)) {
        const m = this.request(e, bytes, start, end, hash);
        if (m === false) return;
        month = m;
      } else {
        // The log's own entries (start, checkpoints, stop) and lines with JSON escapes, both rare: parsed.
        const row = toRow(bytes.toString('utf8', start, end));
        if (typeof row === 'string') return;
        this.copy.add(row);
        month = row.month;
      }
      this.pendingEnds.push(this.copy.length);
      this.pendingLens.push(end - start + 1);
      this.pendingMonths.push(month);
    } catch {
      // (no row: this write's rows are dropped at commit)
    }
  }

  /**
   * The row of a request entry whose line has no backslash, written from its fields (no Row object, no regular
   * expression), as toRow gives it for the line read back: with no backslash, no string of the line holds a
   * JSON escape (so none a control character, a quote or a backslash, and none needs COPY escaping); the
   * addresses passed isIP() in toEntry, so without their zone they are addresses; and for the years 1000 to
   * 9999 Date#toISOString writes the ISO text toRow keeps as it is (other years go through pgTimestamp).
   * Returns the row's month, or false for no row (a time PostgreSQL cannot hold: the line is read from the
   * file, where it is a raw piece).
   */
  private request(e: Entry, bytes: Buffer, start: number, end: number, hash: string): string | undefined | false {
    const ms = e.timestamp;
    let ts: string;
    let month: string | undefined;
    if (ms >= FIRST_MS && ms < END_MS) {
      ts = iso(ms);
      // (one string for the rows of a month)
      if (this.month === '' || !ts.startsWith(this.month)) this.month = ts.slice(0, 7);
      month = this.month;
    } else {
      // Any other year (rare), as pgTimestamp gives it; one PostgreSQL cannot hold is not a row at all.
      const t = pgTimestamp(iso(ms));
      if (t === undefined || t === 'out-of-range') return false;
      ts = t.ts;
      month = t.month;
    }
    const c = this.copy;
    c.columns(this.chainColumn);
    c.column(e.sequence);
    c.column(ts);
    c.column(text(e.action));
    c.column(text(e.outcome));
    c.column(zoneless(e.clientIp));
    c.column(zoneless(e.peerAddress));
    c.column(text(e.userId, INDEXED));
    c.column(text(e.method));
    c.column(text(e.path, INDEXED));
    c.column(text(e.route));
    c.column(e.status ?? null);
    c.columns(this.hostColumns);
    c.column(hash);
    c.line(bytes, start, end);
    return month;
  }

  /** The rows of the lines sealed since the last write are those of the write `w` (or of nothing known). */
  written(w: Written | undefined): void {
    const lines = this.pendingLines;
    const ends = this.pendingEnds;
    const lens = this.pendingLens;
    const months = this.pendingMonths;
    const at = this.pendingAt;
    this.pendingLines = 0;
    this.pendingEnds = [];
    this.pendingLens = [];
    this.pendingMonths = [];
    this.pendingAt = this.copy.length;
    if (w === undefined || ends.length !== lines || lines !== w.lines || lines === 0) return;
    let to = w.from;
    for (const n of lens) to += n;
    if (to !== w.to) return;
    const all = this.copy.data;
    this.held += all.length - at;
    // A write that follows the last one in the file, and whose rows follow its rows in the same buffer, extends
    // its run: what the shipper takes at one look is then one piece of memory, sent as it is.
    const last = this.runs[this.runs.length - 1];
    const lastEnd = last === undefined ? -1 : (last.fileEnds[last.fileEnds.length - 1] as number);
    const start = last === undefined ? -1 : last.data.byteOffset - all.byteOffset;
    let r: Run;
    if (
      last !== undefined &&
      last.ino === w.ino &&
      last.dev === w.dev &&
      lastEnd === w.from &&
      last.data.buffer === all.buffer &&
      start + last.data.length === at
    ) {
      r = last;
      r.data = all.subarray(start);
    } else {
      r = { ino: w.ino, dev: w.dev, from: w.from, fileEnds: [], data: all.subarray(at), dataEnds: [], months: [], head: 0 };
      this.runs.push(r);
    }
    const base = r.data.byteOffset - all.byteOffset;
    to = w.from;
    for (let k = 0; k < ends.length; k++) {
      to += lens[k] as number;
      r.fileEnds.push(to);
      r.dataEnds.push((ends[k] as number) - base);
      r.months.push(months[k]);
    }
  }

  /** Every run is let go of: the file they name was closed by the writer, and its inode may be reused. */
  closed(): void {
    this.runs = [];
    this.held = 0;
  }

  /**
   * Where handed rows of file (`ino`, `dev`) begin at or after offset `from`, or undefined: rows of lines
   * before `from` (shipped from the file) are let go of first.
   */
  next(ino: number, dev: number, from: number): number | undefined {
    for (let i = 0; i < this.runs.length; i++) {
      const r = this.runs[i] as Run;
      if (r.ino !== ino || r.dev !== dev) continue;
      const start = r.head === 0 ? r.from : (r.fileEnds[r.head - 1] as number);
      if (start >= from) return start;
      // `from` inside this run: at one of its lines (read from the file up to there), or past it.
      while (r.head < r.fileEnds.length && (r.fileEnds[r.head] as number) <= from) r.head++;
      const now = r.head === 0 ? r.from : (r.fileEnds[r.head - 1] as number);
      if (r.head < r.fileEnds.length && now === from) return from;
      this.drop(i--);
    }
    return undefined;
  }

  /**
   * The handed rows of file (`ino`, `dev`) from offset `from`, where {@link next} said they begin, through the
   * runs that follow one another in the file: at most `maxRows` rows and about `maxBytes` of data (at least
   * one row). The rows of one run are not copied.
   */
  take(ino: number, dev: number, from: number, maxRows: number, maxBytes: number): Chunk | undefined {
    if (this.next(ino, dev, from) !== from) return undefined;
    const parts: Buffer[] = [];
    const ends: number[] = [];
    const spans: number[] = [];
    const months = new Set<string>();
    let length = 0;
    let to = from;
    const i = this.runs.findIndex((r) => r.ino === ino && r.dev === dev);
    while (i < this.runs.length && ends.length < maxRows && length < maxBytes) {
      const r = this.runs[i] as Run;
      const first = r.head;
      if (r.ino !== ino || r.dev !== dev || (first === 0 ? r.from : r.fileEnds[first - 1]) !== to) break;
      const base = first === 0 ? 0 : (r.dataEnds[first - 1] as number);
      let last = first;
      while (
        last + 1 < r.dataEnds.length &&
        ends.length + last - first + 1 < maxRows &&
        length + (r.dataEnds[last] as number) - base < maxBytes
      ) {
        last++;
      }
      for (let k = first; k <= last; k++) {
        ends.push(length + (r.dataEnds[k] as number) - base);
        // Each line of a write is its text and a newline.
        const lineStart = k === 0 ? r.from : (r.fileEnds[k - 1] as number);
        spans.push(lineStart, (r.fileEnds[k] as number) - lineStart - 1);
        const m = r.months[k];
        if (m !== undefined) months.add(m);
      }
      parts.push(r.data.subarray(base, r.dataEnds[last]));
      length += (r.dataEnds[last] as number) - base;
      to = r.fileEnds[last] as number;
      r.head = last + 1;
      if (r.head < r.fileEnds.length) break;
      this.drop(i);
    }
    const data = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length);
    return { batch: { data, ends }, spans, months, raw: [], from, to };
  }

  private drop(i: number): void {
    const [r] = this.runs.splice(i, 1);
    if (r) this.held -= r.data.length;
  }

  /** A new buffer for rows: the pending ones move over (the old buffer stays with the runs that use it). */
  private nextArena(): void {
    const copy = new CopyWriter(this.source, Buffer.allocUnsafe(ARENA));
    const at = this.pendingAt;
    const ends = this.pendingEnds;
    let start = at;
    for (let k = 0; k < ends.length; k++) {
      copy.row(this.copy.data, start, ends[k] as number);
      start = ends[k] as number;
      ends[k] = copy.length;
    }
    this.copy = copy;
    this.pendingAt = 0;
  }
}
