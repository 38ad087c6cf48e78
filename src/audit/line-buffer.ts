// A growable byte buffer that audit lines are serialised into, piece by piece.
//
// An entry used to be built as a JavaScript string from ~60 concatenated pieces, flattened, then encoded to
// UTF-8 twice (once to hash it, once to write it), and joined with the rest of its batch: ~4 KB of garbage per
// entry, which measured about a sixth of the whole request's allocation in an Express app. Written as bytes,
// an entry allocates nothing: the hash reads the bytes in place and the file gets the same bytes.

/** Bytes of a string that is known to be ASCII (constant JSON pieces). */
export function ascii(s: string): Uint8Array {
  return Buffer.from(s, 'latin1');
}

const INITIAL = 64 * 1024;

export class LineBuffer {
  buf: Buffer = Buffer.allocUnsafe(INITIAL);
  /** Bytes in use, from 0. */
  pos = 0;

  /** Makes room for `n` more bytes. */
  room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Constant bytes. */
  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.room(n);
    if (n > 24) {
      // Long pieces (the members every line repeats) are copied by the engine; ~8% of a line's cost alone.
      this.buf.set(bytes, this.pos);
      this.pos += n;
      return;
    }
    // Short ones (keys) in a loop: shorter than the call costs.
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) b[p++] = bytes[i] as number;
    this.pos = p;
  }

  /** One byte. */
  byte(c: number): void {
    this.room(1);
    this.buf[this.pos++] = c;
  }

  /** A string known to hold only printable ASCII that JSON needs not escape (hex digests, ISO timestamps). */
  ascii(s: string): void {
    const n = s.length;
    this.room(n);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  /** Any string, as UTF-8 (members already serialised as JSON). */
  utf8(s: string): void {
    this.room(Buffer.byteLength(s));
    this.pos += this.buf.write(s, this.pos);
  }

  /**
   * A string as a quoted JSON string. Most values (methods, ids, paths, user agents) are printable ASCII
   * without `"` or `\`, copied as they are; anything else is escaped by JSON.stringify and encoded as UTF-8.
   */
  str(s: string): void {
    const n = s.length;
    this.room(n + 2);
    const b = this.buf;
    const start = this.pos;
    let p = start;
    b[p++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
        const json = JSON.stringify(s);
        this.pos = start;
        this.room(Buffer.byteLength(json));
        this.pos = start + this.buf.write(json, start);
        return;
      }
      b[p++] = c;
    }
    b[p++] = 0x22;
    this.pos = p;
  }

  /** A number as JSON: non-negative safe integers digit by digit (no string), anything else through String. */
  num(x: number): void {
    if (!(x >= 0 && x <= Number.MAX_SAFE_INTEGER && Math.floor(x) === x)) {
      this.ascii(Number.isFinite(x) ? String(x) : 'null');
      return;
    }
    this.room(16);
    const b = this.buf;
    if (x < 10) {
      b[this.pos++] = 0x30 + x;
      return;
    }
    let digits = 1;
    for (let t = x; t >= 10; t = Math.floor(t / 10)) digits++;
    let p = this.pos + digits;
    this.pos = p;
    let t = x;
    while (t >= 10) {
      const q = Math.floor(t / 10);
      b[--p] = 0x30 + (t - q * 10);
      t = q;
    }
    b[--p] = 0x30 + t;
  }

  /** The bytes from `start` to `end` as a string. */
  text(start: number, end = this.pos): string {
    return this.buf.toString('utf8', start, end);
  }

  /** Forgets every byte; a buffer grown large (a long sink outage) is let go. */
  clear(): void {
    this.pos = 0;
    if (this.buf.length > 16 * INITIAL) this.buf = Buffer.allocUnsafe(INITIAL);
  }
}
