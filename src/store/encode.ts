// A batch as the data of `COPY … FROM STDIN` (PostgreSQL's text format): one row per line, columns separated
// by tabs, NULL as \N, and a backslash, tab, newline or carriage return inside a value written as \\, \t, \n
// or \r (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format").
import type { Row } from './row.js';
import { COLUMNS } from './row.js';

const SPECIALS = /[\\\t\n\r]/g;
const TAB = 0x09;
const BACKSLASH = 0x5c;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * One value in COPY's text format. Four includes() rather than one test of /[\\\t\n\r]/: 5000 rows of
 * bench/store.mjs's file, best of 15 in one process, 2.12-2.73 us per row against 2.55-3.09.
 */
function field(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'number') return String(v);
  return v.includes('\\') || v.includes('\t') || v.includes('\n') || v.includes('\r')
    ? v.replace(SPECIALS, (c) => ESCAPES[c] as string)
    : v;
}

/** Whether a value must be escaped in COPY's text format. */
export function needsEscape(v: string): boolean {
  return v.includes('\\') || v.includes('\t') || v.includes('\n') || v.includes('\r');
}

/**
 * The COPY data of a batch, made as its lines are read: the columns of {@link COLUMNS}, then `line` and
 * `source`, one row per line. A line that needs no escaping is copied as the bytes read from the file (it
 * is not encoded again), and no text of the whole batch is ever built. The shipper over 160,000 entries of
 * bench/store.mjs's lines with a pool that discards the data, CPU per entry: 13.2-13.3 us with the batch as
 * one string for Buffer.from, 10.8-11.8 us with this; 6.8-7.0 us once a batch also kept no rows (and so no
 * line strings) alive while it was sent, which spared most of the garbage collector's copying.
 */
export class CopyWriter {
  private buf: Buffer;
  private pos = 0;
  /** Where each row's data ends, in row order (row i is `data[ends[i-1] ?? 0 .. ends[i]]`). */
  readonly ends: number[] = [];
  private readonly tail: Buffer;

  /** `buffer`: where to write (a bigger one replaces it when it is too small). */
  constructor(source: string, buffer: Buffer) {
    this.tail = Buffer.from(`\t${field(source)}\n`);
    this.buf = buffer;
  }

  /** Appends a row; `bytes[start..end]`: its line as read, when it is valid UTF-8 that needs no escaping. */
  add(r: Row, bytes?: Buffer, start = 0, end = 0): void {
    // The columns of COLUMNS, in its order (test/store/row.test.ts reads them back by COLUMNS).
    this.value(r.chain);
    this.value(r.sequence);
    this.value(r.ts);
    this.value(r.action);
    this.value(r.outcome);
    this.value(r.clientIp);
    this.value(r.peerIp);
    this.value(r.userId);
    this.value(r.method);
    this.value(r.path);
    this.value(r.route);
    this.value(r.status);
    this.value(r.host);
    this.value(r.service);
    this.value(r.hash);
    if (bytes === undefined) {
      const line = field(r.line);
      this.reserve(3 * line.length + this.tail.length);
      this.pos += this.buf.write(line, this.pos);
    } else {
      this.reserve(end - start + this.tail.length);
      this.pos += bytes.copy(this.buf, this.pos, start, end);
    }
    this.pos += this.tail.copy(this.buf, this.pos);
    this.ends.push(this.pos);
  }

  /**
   * One column and the tab after it. Printable ASCII without a backslash (addresses, methods, paths,
   * ids, timestamps, hashes: nearly every value) is written byte by byte; anything else by {@link field}.
   * Against the row's columns joined into one string and written at once: {@link add} of 5002 request rows
   * of bench/store.mjs's layout, two builds interleaved in one process, best of 26 passes, 1.60-1.70 us per
   * row against 2.08-2.14 (three runs, 2026-12-01).
   */
  private value(v: string | number | null): void {
    if (v === null) {
      this.reserve(3);
      this.buf[this.pos++] = BACKSLASH;
      this.buf[this.pos++] = 0x4e; // N
      this.buf[this.pos++] = TAB;
      return;
    }
    const s = typeof v === 'number' ? String(v) : v;
    // At most 3 bytes of UTF-8 per UTF-16 unit (escapes: 2), and the tab.
    this.reserve(3 * s.length + 1);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === BACKSLASH) {
        this.pos += b.write(field(s), this.pos);
        b[this.pos++] = TAB;
        return;
      }
      b[p++] = c;
    }
    b[p++] = TAB;
    this.pos = p;
  }

  /** Appends one row made by another writer of the same source: its data, `bytes[start..end]`. */
  row(bytes: Buffer, start: number, end: number): void {
    this.reserve(end - start);
    this.pos += bytes.copy(this.buf, this.pos, start, end);
    this.ends.push(this.pos);
  }

  /** The data so far. */
  get data(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** Bytes of data so far. */
  get length(): number {
    return this.pos;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }
}

/** Rows as COPY data: `ends[i]` is where row i ends in `data`. */
export interface CopyBatch {
  data: Buffer;
  ends: readonly number[];
}

/** Some rows of a batch (indexes in row order); with `ids`, each row's id as a first column before the others. */
export function copyRows(batch: CopyBatch, rows: readonly number[], ids?: readonly string[]): CopyBatch {
  const parts: Buffer[] = [];
  const ends: number[] = [];
  let end = 0;
  for (const [k, i] of rows.entries()) {
    if (ids) {
      const id = Buffer.from(`${ids[k]}\t`);
      parts.push(id);
      end += id.length;
    }
    const row = batch.data.subarray(i === 0 ? 0 : (batch.ends[i - 1] as number), batch.ends[i]);
    parts.push(row);
    end += row.length;
    ends.push(end);
  }
  return { data: Buffer.concat(parts), ends };
}

const UNESCAPES: Record<string, string> = { '\\\\': '\\', '\\t': '\t', '\\n': '\n', '\\r': '\r' };
/** One value of a row as its text again (the inverse of field() for a value that is not NULL). */
const unescaped = (v: string) => v.replace(/\\[\\tnr]/g, (e) => UNESCAPES[e] as string);

/**
 * The first three columns of every row (chain, sequence, ts: the table's unique key), read back from the
 * data, so that a batch need not keep its rows (and their lines) alive while it is sent.
 */
export function copyKeys(batch: CopyBatch): { chains: string[]; sequences: string[]; ts: string[] } {
  const chains: string[] = [];
  const sequences: string[] = [];
  const ts: string[] = [];
  let start = 0;
  for (const end of batch.ends) {
    const [chain, sequence, t] = batch.data.toString('utf8', start, end).split('\t', 3).map(unescaped);
    chains.push(chain as string);
    sequences.push(sequence as string);
    ts.push(t as string);
    start = end;
  }
  return { chains, sequences, ts };
}

/**
 * Every column of row `i` as its text (`null` for NULL), read back from the data: what PostgreSQL's input
 * functions are given for each column when the row is copied.
 */
export function copyFields(batch: CopyBatch, i: number): (string | null)[] {
  return batch.data
    .toString('utf8', i === 0 ? 0 : (batch.ends[i - 1] as number), (batch.ends[i] as number) - 1)
    .split('\t')
    .map((v) => (v === '\\N' ? null : unescaped(v)));
}
