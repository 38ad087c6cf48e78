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

/** Formats four bytes at `offset` as a dotted quad. */
export function formatIPv4Bytes(b: Uint8Array, offset: number): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** Formats an unsigned 32-bit number as a dotted quad. */
export function formatIPv4Number(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/**
 * Parses an IPv6 address from `b[start, end)` into `out` (eight 16-bit groups). At most one `::`, one to
 * four hex digits per group, no zone ID. A trailing dotted IPv4 part is accepted only with `allowDotted`
 * (PROXY v1 TCP6 forbids it). Returns false when the text is not such an address.
 */
export function parseIPv6(b: Uint8Array, start: number, end: number, out: Uint16Array, allowDotted: boolean): boolean {
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
      const h = hexValue(b[i] as number);
      if (h < 0) break;
      value = (value << 4) | h;
      i++;
    }
    const len = i - groupStart;
    if (i < end && b[i] === DOT) {
      // Embedded IPv4 (e.g. ::ffff:192.0.2.1): must be last and take two groups.
      if (!allowDotted || n > 6) return false;
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

/**
 * Formats eight 16-bit groups per RFC 5952: lower case, no leading zeros, the longest run (first on a tie)
 * of two or more zero groups as `::`; IPv4-mapped addresses end in a dotted quad (section 5).
 */
export function formatIPv6(g: Uint16Array | number[], dottedMapped = true): string {
  if (dottedMapped && g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    const hi = g[6] as number;
    const lo = g[7] as number;
    return `::ffff:${hi >>> 8}.${hi & 255}.${lo >>> 8}.${lo & 255}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  let runStart = -1;
  for (let i = 0; i < 8; i++) {
    if (g[i] === 0) {
      if (runStart < 0) runStart = i;
      const len = i - runStart + 1;
      if (len > bestLen) {
        bestLen = len;
        bestStart = runStart;
      }
    } else {
      runStart = -1;
    }
  }
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      s += '::';
      i += bestLen - 1;
      continue;
    }
    if (s !== '' && s.charCodeAt(s.length - 1) !== COLON) s += ':';
    s += (g[i] as number).toString(16);
  }
  return s;
}

const scratch = new Uint16Array(8);

/** Formats sixteen bytes at `offset` as canonical IPv6 text. */
export function formatIPv6Bytes(b: Uint8Array, offset: number): string {
  for (let i = 0; i < 8; i++) scratch[i] = ((b[offset + 2 * i] as number) << 8) | (b[offset + 2 * i + 1] as number);
  return formatIPv6(scratch);
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
  if (!parseIPv6(b, 0, b.length, g, true)) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = (g[i] as number) >>> 8;
    out[2 * i + 1] = (g[i] as number) & 255;
  }
  return out;
}
