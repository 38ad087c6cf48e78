// PostgreSQL's COPY text format, read: a stream of `COPY … TO STDOUT` cut into whole rows, and one field's
// text. Pure (bytes in, values out); the COPY itself runs in verify-store.ts.

const NEWLINE = 0x0a;
const TAB = 0x09;
const BACKSLASH = 0x5c;

/**
 * The bytes of a COPY text stream (any chunking) as buffers of whole rows, each row ending in its newline:
 * a row cut by a chunk's end is held (copied) and given whole, on its own, before the rest of the next chunk.
 * One chunk is pulled at a time, when the consumer asks for the next buffer, so a slow consumer holds the
 * stream back (memory stays one chunk and one row). Throws if the stream ends inside a row. (In protocol
 * 3.0 the server ends the data with a CopyDone message, not a `\.` line.)
 */
export async function* wholeRows(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let held: Buffer[] = [];
  for await (const chunk of chunks) {
    if (chunk.length === 0) continue;
    const last = chunk.lastIndexOf(NEWLINE);
    if (last < 0) {
      held.push(Buffer.from(chunk));
      continue;
    }
    let from = 0;
    if (held.length > 0) {
      from = chunk.indexOf(NEWLINE) + 1;
      held.push(chunk.subarray(0, from));
      const row = Buffer.concat(held);
      held = [];
      yield row;
    }
    if (from <= last) yield chunk.subarray(from, last + 1);
    if (last + 1 < chunk.length) held.push(Buffer.from(chunk.subarray(last + 1)));
  }
  if (held.length > 0) throw new Error('the COPY data ended inside a row');
}

/**
 * A buffer of whole rows in COPY text format (as {@link wholeRows} gives them), read row by row and, in each
 * row, field by field (tab-separated).
 */
export class CopyRows {
  /** Where the current row's next field starts, and where the row ends (its newline). */
  private at = 0;
  private end = -1;
  /** The first backslash at or after `at` (or -1): a field holds one only if it is before the field's end. */
  private backslash: number;

  constructor(private readonly rows: Buffer) {
    this.backslash = rows.indexOf(BACKSLASH);
  }

  /** Moves to the next row; false after the last. */
  next(): boolean {
    this.at = this.end + 1;
    if (this.at >= this.rows.length) return false;
    this.end = this.rows.indexOf(NEWLINE, this.at);
    if (this.end < 0) throw new Error('CopyRows: a row without its newline');
    return true;
  }

  /** The next field as a non-negative integer (a `bigint` as PostgreSQL writes it; exact up to 2^53). */
  integer(): number {
    const { rows, end } = this;
    let v = 0;
    let i = this.at;
    for (let c = rows[i] as number; i < end && c !== TAB; c = rows[++i] as number) v = v * 10 + (c - 0x30);
    this.at = i + 1;
    return v;
  }

  /**
   * The next field's text (UTF-8), or null for NULL (`\N`).
   *
   * "Backslash characters (\) can be used in the COPY data to quote data characters that might otherwise be
   * taken as row or column delimiters" (COPY, "Text Format"). PostgreSQL writes `\\` for a backslash, `\b \f
   * \n \r \t \v` for those control characters (the delimiter, a tab, among them) and `\N` for NULL; reading
   * also takes `\` and one to three octal digits, `\x` and one or two hex digits (a byte each), and a
   * backslash before any other character for that character. All of these are decoded. A backslash cannot be
   * part of a multi-byte UTF-8 character (those bytes are all 0x80 or above), so bytes are unescaped before
   * decoding.
   */
  text(): string | null {
    const { rows, end } = this;
    const start = this.at;
    const tab = rows.indexOf(TAB, start);
    const stop = tab >= 0 && tab < end ? tab : end;
    this.at = stop + 1;
    // One search for a backslash per buffer, not one per field (a search from the field's start would read on
    // to the next backslash, and a view of the field's bytes costs an object): the row loop alone, 200,002
    // rows, 509 against 921 ns per row; making the lines' strings alone, 432 (bench/copy-text.mjs, medians).
    if (this.backslash >= 0 && this.backslash < start) this.backslash = rows.indexOf(BACKSLASH, start);
    if (this.backslash < 0 || this.backslash >= stop) return rows.toString('utf8', start, stop);
    return unescaped(rows, start, stop, this.backslash);
  }
}

/** What a backslash before the byte `e` stands for: a control character for b f n r t v, else `e` itself. */
function escaped(e: number): number {
  switch (e) {
    case 0x62: // b
      return 0x08;
    case 0x66: // f
      return 0x0c;
    case 0x6e: // n
      return 0x0a;
    case 0x72: // r
      return 0x0d;
    case 0x74: // t
      return 0x09;
    case 0x76: // v
      return 0x0b;
    default:
      return e;
  }
}

const octal = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x37;
function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** The text of the field from `start` to `end` of `row`, whose first backslash is at `first` (see CopyRows.text). */
function unescaped(row: Buffer, start: number, end: number, first: number): string | null {
  if (first === start && end - start === 2 && row[start + 1] === 0x4e) return null; // \N
  const out = Buffer.allocUnsafe(end - start);
  let n = row.copy(out, 0, start, first);
  for (let i = first; i < end; ) {
    const c = row[i] as number;
    if (c !== BACKSLASH) {
      out[n++] = c;
      i++;
      continue;
    }
    const e = i + 1 < end ? row[i + 1] : undefined;
    if (e === undefined) {
      // A lone backslash at the end: PostgreSQL never writes one; kept as it is.
      out[n++] = c;
      i++;
    } else if (octal(e)) {
      let v = 0;
      let j = i + 1;
      for (; j < end && j < i + 4 && octal(row[j]); j++) v = v * 8 + ((row[j] as number) - 0x30);
      out[n++] = v & 0xff;
      i = j;
    } else if (e === 0x78 && hexValue(i + 2 < end ? row[i + 2] : undefined) >= 0) {
      let v = 0;
      let j = i + 2;
      for (; j < end && j < i + 4 && hexValue(row[j]) >= 0; j++) v = v * 16 + hexValue(row[j]);
      out[n++] = v;
      i = j;
    } else {
      out[n++] = escaped(e);
      i += 2;
    }
  }
  return out.toString('utf8', 0, n);
}
