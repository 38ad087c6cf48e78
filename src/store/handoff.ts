// Rows handed to the shipper by the audit log of the same process as it writes their lines: the log holds
// each entry's fields and its exact bytes then, and its file sink learns where each write landed, so the
// shipper need not read back and parse what was just written. The file stays the spool: whatever was not
// handed over (lines of other processes, lines sealed before the shipper started, a backlog past the bound,
// a write that failed) is read from the file, as always.
import { type Entry, iso } from '../audit/entry.js';
import type { WriteTracker, Written } from '../audit/file-sink.js';
import { CopyWriter } from './encode.js';
import { type Row, rowOf, toRow } from './row.js';
import type { Chunk } from './spool.js';

/** COPY data of handed rows kept at most (bytes); past it, lines are read from the file. */
const LIMIT = 16 * 1024 * 1024;
/** Rows are written into buffers of this size, each let go of once its rows are shipped. */
const ARENA = 1024 * 1024;
const BACKSLASH = 0x5c;

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
 * The rows of one writer's lines, made as it seals them by the same {@link rowOf} and {@link CopyWriter} as
 * the rows of lines read from the file (test/store/handoff.test.ts compares both ways, byte for byte), and
 * kept with where the writes landed (the log's file sink tells it, as its {@link WriteTracker}). The shipper
 * takes them for a file offset where they begin.
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
  /**
   * The files (`dev:ino`) the writer's writes landed in, until the shipper lets go of them (see
   * {@link Handoff.shipped}): one per rotation while the shipper is behind, however long.
   */
  private files = new Set<string>();
  private lastIno = -1;
  private lastDev = -1;

  constructor(
    private readonly source: string,
    readonly writer: HandoffWriter,
  ) {
    this.copy = new CopyWriter(source, Buffer.allocUnsafe(ARENA));
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
      const row = this.row(e, bytes, start, end, hash);
      if (typeof row === 'string') return; // not a row: a raw piece, read from the file
      // (`line` left empty: the line needs no COPY escaping, and is copied as sealed, as src/store/spool.ts
      // copies such a line read from the file)
      if (row.line === '') this.copy.add(row, bytes, start, end);
      else this.copy.add(row);
      this.pendingEnds.push(this.copy.length);
      this.pendingLens.push(end - start + 1);
      this.pendingMonths.push(row.month);
    } catch {
      // (no row: this write's rows are dropped when it is told)
    }
  }

  /** The row of a sealed entry: a request's from its fields, the log's own entries (rare) parsed. */
  private row(e: Entry, bytes: Buffer, start: number, end: number, hash: string): Row | string {
    if (e.audit !== undefined) return toRow(bytes.toString('utf8', start, end));
    const escaped = bytes.subarray(start, end).includes(BACKSLASH);
    const w = this.writer;
    // What JSON.parse of the line gives for these members is what the log serialised them from.
    return rowOf(
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
      // A line that needs COPY escaping is encoded from its text; any other is copied from `bytes`.
      escaped ? bytes.toString('utf8', start, end) : '',
      hash,
    );
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
    if (w !== undefined && (w.ino !== this.lastIno || w.dev !== this.lastDev)) {
      this.lastIno = w.ino;
      this.lastDev = w.dev;
      this.files.add(`${w.dev}:${w.ino}`);
    }
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

  /**
   * The files (`dev:ino`) the writer wrote to and the shipper has not let go of: it finds by them a file
   * that was renamed before it ever looked at it, and knows when one is gone.
   */
  writtenTo(): ReadonlySet<string> {
    return this.files;
  }

  /** The shipper shipped file `key` (`dev:ino`) to its end, or found it gone: it is forgotten. */
  shipped(key: string): void {
    this.files.delete(key);
    if (key === `${this.lastDev}:${this.lastIno}`) this.lastIno = -1; // (written again: remembered again)
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
