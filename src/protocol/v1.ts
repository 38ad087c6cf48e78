// PROXY protocol version 1: one human-readable line.
//   "PROXY" SP ("TCP4" | "TCP6" | "UNKNOWN") SP src SP dst SP sport SP dport CRLF
import { ErrorCodes, invalid } from './errors.js';
import { formatIPv4Number, formatIPv6Groups, parseIPv4, parseIPv6 } from './ip.js';
import { NO_TLVS } from './tlv.js';
import type { ParseResult, ProxyHeader } from './types.js';

/** The v1 signature. Bytes that do not start with it (or a prefix of it) are not a v1 header. */
export const V1_SIGNATURE = new Uint8Array([0x50, 0x52, 0x4f, 0x58, 0x59]); // "PROXY"

// Spec 2.1: "a 108-byte buffer is always enough to store all the line and a trailing zero", i.e. the
// whole line including CRLF is at most 107 bytes.
export const V1_MAX_LENGTH = 107;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;

const groups = new Uint16Array(8);
/** Positions of the line's spaces (a valid TCP line has five), reused across calls. */
const MAX_SPACES = 5;
const spaces = new Int32Array(MAX_SPACES);

/** Parses one decimal port from `b[start, end)`, or returns -1. */
function parsePort(b: Uint8Array, start: number, end: number): number {
  const len = end - start;
  if (len < 1 || len > 5) return -1;
  if (len > 1 && b[start] === 0x30) return -1; // "must not have leading zeros"
  let v = 0;
  for (let i = start; i < end; i++) {
    const d = (b[i] as number) - 0x30;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v > 65535 ? -1 : v;
}

function matches(b: Uint8Array, at: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (b[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/**
 * Parses a v1 header. The caller has checked that the input starts with the full five-byte signature.
 */
export function parseV1(b: Uint8Array): ParseResult {
  // One pass over the line: where it ends (the first CR), where its spaces are, whether it is printable.
  const limit = Math.min(b.length, V1_MAX_LENGTH);
  let cr = -1;
  let printable = true;
  let nSpaces = 0;
  for (let i = 5; i < limit; i++) {
    const c = b[i] as number;
    if (c === SP) {
      if (nSpaces < MAX_SPACES) spaces[nSpaces] = i;
      nSpaces++;
    } else if (c === CR) {
      cr = i;
      break;
    } else if (c === LF) return invalid(ErrorCodes.MALFORMED, 'PROXY v1: LF without CR');
    else if (c < 0x20 || c > 0x7e) printable = false;
  }
  if (cr < 0) {
    if (b.length >= V1_MAX_LENGTH) return invalid(ErrorCodes.TOO_LONG, 'PROXY v1: no CRLF within 107 bytes');
    // Only UNKNOWN may carry arbitrary bytes; a TCP line with a control byte can never become valid.
    if (!printable && !matches(b, 5, ' UNKNOWN'.slice(0, Math.min(8, b.length - 5)))) {
      return invalid(ErrorCodes.MALFORMED, 'PROXY v1: non-printable byte in header');
    }
    if (b.length > 5 && b[5] !== SP) return invalid(ErrorCodes.MALFORMED, 'PROXY v1: no space after PROXY');
    return { status: 'incomplete' };
  }
  if (cr + 1 >= V1_MAX_LENGTH) return invalid(ErrorCodes.TOO_LONG, 'PROXY v1: no CRLF within 107 bytes');
  if (cr + 1 >= b.length) return { status: 'incomplete' };
  if (b[cr + 1] !== LF) return invalid(ErrorCodes.MALFORMED, 'PROXY v1: CR without LF');
  const length = cr + 2;

  if (b[5] !== SP) return invalid(ErrorCodes.MALFORMED, 'PROXY v1: no space after PROXY');
  // Protocol token.
  let tcp6 = false;
  if (matches(b, 6, 'TCP4') && b[10] === SP) {
    // TCP4
  } else if (matches(b, 6, 'TCP6') && b[10] === SP) {
    tcp6 = true;
  } else if (matches(b, 6, 'UNKNOWN') && (cr === 13 || b[13] === SP)) {
    // Spec: with UNKNOWN "the receiver must ignore anything presented before the CRLF".
    return {
      status: 'ok',
      header: { version: 1, command: 'proxy', family: 'unspec', transport: 'unspec', tlvs: NO_TLVS },
      length,
    };
  } else {
    if (cr === 6 || b[6] === SP) return invalid(ErrorCodes.MALFORMED, 'PROXY v1: empty protocol field');
    return invalid(ErrorCodes.FAMILY, 'PROXY v1: protocol is not TCP4, TCP6 or UNKNOWN');
  }
  if (!printable) return invalid(ErrorCodes.MALFORMED, 'PROXY v1: non-printable byte in header');

  // "PROXY" SP proto SP src SP dst SP sport SP dport CRLF: exactly five single spaces (at 5 and 10 so far),
  // every field non-empty.
  const s1 = 11;
  const e1 = spaces[2] as number;
  const e2 = spaces[3] as number;
  const e3 = spaces[4] as number;
  if (nSpaces !== 5 || e1 === s1 || e2 === e1 + 1 || e3 === e2 + 1 || cr === e3 + 1) {
    return invalid(ErrorCodes.MALFORMED, 'PROXY v1: expected exactly "src dst sport dport" separated by single spaces');
  }
  const s2 = e1 + 1;
  const s3 = e2 + 1;
  const s4 = e3 + 1;
  const e4 = cr;

  let source: string;
  let destination: string;
  if (tcp6) {
    if (!parseIPv6(b, s1, e1, groups, false)) return invalid(ErrorCodes.ADDRESS, 'PROXY v1: bad TCP6 source address');
    source = formatIPv6Groups(groups);
    if (!parseIPv6(b, s2, e2, groups, false)) {
      return invalid(ErrorCodes.ADDRESS, 'PROXY v1: bad TCP6 destination address');
    }
    destination = formatIPv6Groups(groups);
  } else {
    const src = parseIPv4(b, s1, e1);
    if (src < 0) return invalid(ErrorCodes.ADDRESS, 'PROXY v1: bad TCP4 source address');
    const dst = parseIPv4(b, s2, e2);
    if (dst < 0) return invalid(ErrorCodes.ADDRESS, 'PROXY v1: bad TCP4 destination address');
    source = formatIPv4Number(src);
    destination = formatIPv4Number(dst);
  }
  const sport = parsePort(b, s3, e3);
  if (sport < 0) return invalid(ErrorCodes.PORT, 'PROXY v1: bad source port');
  const dport = parsePort(b, s4, e4);
  if (dport < 0) return invalid(ErrorCodes.PORT, 'PROXY v1: bad destination port');

  const header: ProxyHeader = {
    version: 1,
    command: 'proxy',
    family: tcp6 ? 'IPv6' : 'IPv4',
    transport: 'stream',
    source: { address: source, port: sport },
    destination: { address: destination, port: dport },
    tlvs: NO_TLVS,
  };
  return { status: 'ok', header, length };
}

/** Encodes a v1 line. Addresses must already be validated by the caller. */
export function encodeV1(header: {
  family: ProxyHeader['family'];
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
}): string {
  if (header.family === 'unspec' || !header.source || !header.destination) return 'PROXY UNKNOWN\r\n';
  const proto = header.family === 'IPv6' ? 'TCP6' : 'TCP4';
  return `PROXY ${proto} ${header.source.address} ${header.destination.address} ${header.source.port} ${header.destination.port}\r\n`;
}
