// Generated request ids: random version-4 UUIDs (RFC 9562), written as bytes straight into the line.
//
// `crypto.randomUUID()` builds each id as a string from ~20 concatenated pieces (about 600 bytes of garbage
// per call); an id that only ever goes into the audit line needs no string at all. The entropy comes from
// the same source, `crypto.randomFillSync`, taken 256 ids at a time.
import { randomFillSync } from 'node:crypto';
import type { LineBuffer } from './line-buffer.js';

const POOL_IDS = 256;
const pool = Buffer.alloc(16 * POOL_IDS);
/** The next unused id's place in the pool: every id takes bytes no other id took. */
let next = POOL_IDS;

/** Two ASCII hex digits per byte value. */
const HEX = new Uint8Array(512);
for (let i = 0; i < 256; i++) {
  const h = i.toString(16).padStart(2, '0');
  HEX[2 * i] = h.charCodeAt(0);
  HEX[2 * i + 1] = h.charCodeAt(1);
}

const DASH = 0x2d;

/** Appends a new random UUID (36 characters, lower-case, no quotes) to `out`; returns where it starts. */
export function writeRandomUuid(out: LineBuffer): number {
  if (next === POOL_IDS) {
    randomFillSync(pool);
    next = 0;
  }
  const r = pool;
  const from = 16 * next++;
  out.room(36);
  const b = out.buf;
  const start = out.pos;
  let p = start;
  for (let i = 0; i < 16; i++) {
    let x = r[from + i] as number;
    if (i === 6)
      x = (x & 0x0f) | 0x40; // version 4
    else if (i === 8) x = (x & 0x3f) | 0x80; // variant 10
    if (i === 4 || i === 6 || i === 8 || i === 10) b[p++] = DASH;
    b[p++] = HEX[2 * x] as number;
    b[p++] = HEX[2 * x + 1] as number;
  }
  out.pos = p;
  return start;
}
