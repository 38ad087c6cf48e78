import { Buffer } from 'node:buffer';

// Address text <-> bytes, strict enough for PROXY v1 and canonical on output (RFC 5952).
// Pure functions over byte ranges: no allocation beyond the result string.

const DOT = 0x2e;
const COLON = 0x3a;

/**
 * Parses a strict dotted-quad IPv4 address from `b[start, end)`: four decimal octets 0–255 without leading
 * zeros. Returns the address as an unsigned 32-bit number, or -1.
 */
export function parseIPv4(b: Uint8Array, start: number, end: number): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i < end; i++) {
    const c = b[i] as number;
    if (c >= 0x30 && c <= 0x39) {
      // A leading zero is only allowed when the octet is exactly "0".
      if (digits === 1 && octet === 0) return -1;
      octet = octet * 10 + (c - 0x30);
      if (octet > 255) return -1;
      digits++;
    } else if (c === DOT) {
      if (digits === 0 || parts === 3) return -1;
      value = value * 256 + octet;
      parts++;
      octet = 0;
      digits = 0;
    } else {
      return -1;
    }
  }
  if (digits === 0 || parts !== 3) return -1;
  return value * 256 + octet;
}

// Lookup tables: formatting an address is string concatenation only, with no number-to-string work.
const DEC: string[] = Array.from({ length: 256 }, (_, i) => String(i));

/** "0." … "255.": three concatenations per address instead of six. */
const DEC_DOT: string[] = DEC.map((d) => `${d}.`);

// A direct-mapped cache of recently formatted IPv4 addresses. Behind a balancer the destination (the VIP) is
// the same on every connection and clients reconnect, so most lookups hit; a miss costs one compare. Without
// it a repeated header parsed at 0.39x-0.48x the speed (v2) and 0.57x-0.73x (v1), a pool of distinct clients
// at 0.89x-0.99x; the address taken from the v1 line's own bytes instead (one latin1 string, then substrings)
// parsed at 0.45x-0.55x (fixed) and 0.66x-0.75x (pool) (bench/README.md, 2026-12-01 codec section).
const CACHE_BITS = 10;
const cacheKeys = new Int32Array(1 << CACHE_BITS).fill(-1);
const cacheValues: string[] = new Array(1 << CACHE_BITS).fill('');

/** Formats an unsigned 32-bit number as a dotted quad. */
export function formatIPv4Number(n: number): string {
  const slot = Math.imul(n, 0x9e3779b1) >>> (32 - CACHE_BITS);
  // 0.0.0.0 would equal the "empty" marker as a signed key only if -1; n | 0 maps 255.255.255.255 to -1,
  // so the value check below keeps that one address correct.
  if (cacheKeys[slot] === (n | 0) && cacheValues[slot] !== '') return cacheValues[slot] as string;
  const s =
    (DEC_DOT[n >>> 24] as string) +
    (DEC_DOT[(n >>> 16) & 255] as string) +
    (DEC_DOT[(n >>> 8) & 255] as string) +
    (DEC[n & 255] as string);
  cacheKeys[slot] = n | 0;
  cacheValues[slot] = s;
  return s;
}

/** Formats four bytes at `offset` as a dotted quad. */
export function formatIPv4Bytes(b: Uint8Array, offset: number): string {
  return formatIPv4Number(
    (((b[offset] as number) << 24) |
      ((b[offset + 1] as number) << 16) |
      ((b[offset + 2] as number) << 8) |
      (b[offset + 3] as number)) >>>
      0,
  );
}

// Hex digit values by byte, -1 for anything else.
const HEX_VALUE = /* @__PURE__ */ (() => {
  const t = new Int8Array(256).fill(-1);
  for (let i = 0; i < 10; i++) t[0x30 + i] = i;
  for (let i = 0; i < 6; i++) {
    t[0x41 + i] = 10 + i;
    t[0x61 + i] = 10 + i;
  }
  return t;
})();

/**
 * Parses an IPv6 address from `b[start, end)` into `out` (eight 16-bit groups). At most one `::`, one to
 * four hex digits per group, no zone ID, and a trailing dotted IPv4 part (RFC 4291 section 2.2, form 3; strict
 * octets, as {@link parseIPv4}). Returns false when the text is not such an address.
 */
export function parseIPv6(b: Uint8Array, start: number, end: number, out: Uint16Array): boolean {
  let n = 0; // groups written
  let gap = -1; // index in `out` where "::" stands
  let i = start;
  if (end - start < 2) return false;
  if (b[i] === COLON) {
    if (b[i + 1] !== COLON) return false;
    gap = 0;
    i += 2;
    if (i === end) {
      out.fill(0);
      return true;
    }
  }
  while (i < end) {
    if (n === 8) return false;
    const groupStart = i;
    let value = 0;
    while (i < end && i - groupStart < 5) {
      const h = HEX_VALUE[b[i] as number] as number;
      if (h < 0) break;
      value = (value << 4) | h;
      i++;
    }
    const len = i - groupStart;
    if (i < end && b[i] === DOT) {
      // Embedded IPv4 (e.g. ::ffff:192.0.2.1): must be last and take two groups.
      if (n > 6) return false;
      let dotEnd = groupStart;
      while (dotEnd < end && b[dotEnd] !== COLON) dotEnd++;
      if (dotEnd !== end) return false;
      const v4 = parseIPv4(b, groupStart, end);
      if (v4 < 0) return false;
      out[n++] = v4 >>> 16;
      out[n++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (len === 0 || len > 4) return false;
    out[n++] = value;
    if (i === end) break;
    if (b[i] !== COLON) return false;
    i++;
    if (i < end && b[i] === COLON) {
      if (gap >= 0) return false;
      gap = n;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // a single trailing colon
    }
  }
  if (gap < 0) return n === 8;
  if (n >= 8) return false; // "::" must stand for at least one group
  const move = n - gap;
  for (let k = 1; k <= move; k++) out[8 - k] = out[n - k] as number;
  for (let k = gap; k < 8 - move; k++) out[k] = 0;
  return true;
}

const HEX_CHAR = new Uint8Array([48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102]);
// The longest IPv6 text is 45 characters (with a dotted tail); characters are written here, then turned into
// one flat string by a single latin1 slice: far fewer allocations than concatenating groups.
const chars = Buffer.allocUnsafe(64);

function putGroup(n: number, v: number): number {
  let i = n;
  if (v >= 0x1000) chars[i++] = HEX_CHAR[v >>> 12] as number;
  if (v >= 0x100) chars[i++] = HEX_CHAR[(v >>> 8) & 15] as number;
  if (v >= 0x10) chars[i++] = HEX_CHAR[(v >>> 4) & 15] as number;
  chars[i++] = HEX_CHAR[v & 15] as number;
  return i;
}

/**
 * Formats eight 16-bit groups per RFC 5952: lower case, no leading zeros, the longest run (first on a tie)
 * of two or more zero groups as `::`; IPv4-mapped addresses end in a dotted quad (section 5).
 */
export function formatIPv6(g: Uint16Array | number[], dottedMapped = true): string {
  if (dottedMapped && g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    const hi = g[6] as number;
    const lo = g[7] as number;
    return `::ffff:${DEC_DOT[hi >>> 8]}${DEC_DOT[hi & 255]}${DEC_DOT[lo >>> 8]}${DEC[lo & 255]}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  let runStart = -1;
  for (let i = 0; i < 8; i++) {
    if (g[i] === 0) {
      if (runStart < 0) runStart = i;
      if (i - runStart + 1 > bestLen) {
        bestLen = i - runStart + 1;
        bestStart = runStart;
      }
    } else {
      runStart = -1;
    }
  }
  let n = 0;
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      chars[n++] = COLON;
      if (i === 0) chars[n++] = COLON;
      i += bestLen - 1;
      continue;
    }
    n = putGroup(n, g[i] as number);
    if (i < 7) chars[n++] = COLON;
  }
  return chars.toString('latin1', 0, n);
}

// Direct-mapped cache of formatted IPv6 addresses, keyed by their bytes (see the IPv4 cache). Without it a
// pool of distinct clients to one VIP parsed at 0.77x-0.81x the speed (v2) and 0.76x-0.95x (v1 TCP6)
// (bench/README.md, 2026-12-01 codec section).
const V6_SLOTS = 256;
const v6Keys = new Uint16Array(V6_SLOTS * 8);
const v6Values: string[] = new Array(V6_SLOTS).fill('');
const scratch = new Uint16Array(8);

/** Formats sixteen bytes at `offset` as canonical IPv6 text. */
export function formatIPv6Bytes(b: Uint8Array, offset: number): string {
  let h = 0;
  for (let i = 0; i < 8; i++) {
    const v = ((b[offset + 2 * i] as number) << 8) | (b[offset + 2 * i + 1] as number);
    scratch[i] = v;
    h = Math.imul(h ^ v, 0x9e3779b1);
  }
  return cachedV6(h);
}

/** Formats `scratch`, through the cache; `h` is its hash. */
function cachedV6(h: number): string {
  const slot = h >>> 24;
  const k = slot * 8;
  const hit = v6Values[slot] as string;
  if (
    hit !== '' &&
    v6Keys[k] === scratch[0] &&
    v6Keys[k + 1] === scratch[1] &&
    v6Keys[k + 2] === scratch[2] &&
    v6Keys[k + 3] === scratch[3] &&
    v6Keys[k + 4] === scratch[4] &&
    v6Keys[k + 5] === scratch[5] &&
    v6Keys[k + 6] === scratch[6] &&
    v6Keys[k + 7] === scratch[7]
  ) {
    return hit;
  }
  const s = formatIPv6(scratch);
  v6Keys.set(scratch, k);
  v6Values[slot] = s;
  return s;
}

/** Formats eight parsed groups (e.g. from {@link parseIPv6}) as canonical IPv6 text, through the cache. */
export function formatIPv6Groups(g: Uint16Array): string {
  let h = 0;
  for (let i = 0; i < 8; i++) {
    const v = g[i] as number;
    scratch[i] = v;
    h = Math.imul(h ^ v, 0x9e3779b1);
  }
  return cachedV6(h);
}

const encoder = new TextEncoder();

/**
 * Parses an address string of any common form (dotted quad, IPv6 with or without embedded IPv4) into
 * its bytes, 4 or 16 of them; undefined when it is not an IP address. Used by the encoder.
 */
export function addressToBytes(text: string): Uint8Array | undefined {
  const b = encoder.encode(text);
  const v4 = parseIPv4(b, 0, b.length);
  if (v4 >= 0) return new Uint8Array([v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255]);
  const g = new Uint16Array(8);
  if (!parseIPv6(b, 0, b.length, g)) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = (g[i] as number) >>> 8;
    out[2 * i + 1] = (g[i] as number) & 255;
  }
  return out;
}
