// PROXY protocol version 1: one human-readable line.
//   "PROXY" SP ("TCP4" | "TCP6" | "UNKNOWN") SP src SP dst SP sport SP dport CRLF
import { ErrorCodes, invalid } from './errors.js';
import { formatIPv4Number, formatIPv6Groups, parseIPv6 } from './ip.js';
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
const DOT = 0x2e;

const groups = new Uint16Array(8);
/** Positions of the line's spaces (a valid TCP line has five), reused across calls. */
const MAX_SPACES = 5;
const spaces = new Int32Array(MAX_SPACES);

/** The value of the decimal digit at `b[i]` when `i < end`, or -1. */
function digitAt(b: Uint8Array, i: number, end: number): number {
  const d = i < end ? (b[i] as number) - 0x30 : -1;
  return d >= 0 && d <= 9 ? d : -1;
}

/** Index of the first space in `b[from, end)`, or `end`. */
function spaceAt(b: Uint8Array, from: number, end: number): number {
  let i = from;
  while (i < end && b[i] !== SP) i++;
  return i;
}

function matches(b: Uint8Array, at: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (b[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/**
 * Parses a v1 header. The caller has checked that the input starts with the full five-byte signature.
 */
export function parseV1(b: Uint8Array): ParseResult {
  // A whole, valid TCP line (what nearly every connection carries) is read in one pass; anything else goes
  // through parseV1Line, which decides in the spec's order. parseV1Line alone parsed TCP4 headers at 0.52x-0.63x
  // the speed and TCP6 at 0.74x-0.77x in three runs (bench/README.md, 2026-12-01 codec section).
  const tcp = b[5] === SP && matches(b, 6, 'TCP') && b[10] === SP ? b[9] : 0;
  if (tcp === 0x34 || tcp === 0x36) {
    const r = readTcpFields(b, tcp === 0x36);
    if (typeof r !== 'number') return r;
  }
  return parseV1Line(b);
}

/**
 * Parses a v1 header the long way: where the line ends, then its protocol, then that it is made of single
 * spaces and printable bytes, and only then its fields — so that every input gets the same answer as from
 * {@link parseV1}, whose one-pass reading is only a shortcut for lines this accepts.
 */
export function parseV1Line(b: Uint8Array): ParseResult {
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
  // The fields lie between those spaces now, so reading them left to right finds the first bad one.
  const r = readTcpFields(b, tcp6);
  if (typeof r !== 'number') return r;
  const family = tcp6 ? 'TCP6' : 'TCP4';
  switch (r) {
    case 1:
      return invalid(ErrorCodes.ADDRESS, `PROXY v1: bad ${family} source address`);
    case 2:
      return invalid(ErrorCodes.ADDRESS, `PROXY v1: bad ${family} destination address`);
    case 3:
      return invalid(ErrorCodes.PORT, 'PROXY v1: bad source port');
    default:
      return invalid(ErrorCodes.PORT, 'PROXY v1: bad destination port');
  }
}

/**
 * Reads "src SP dst SP sport SP dport CRLF" from byte 11 of a TCP4 or TCP6 line, checking each field as it
 * goes: dotted quads of decimal octets 0–255 without leading zeros, IPv6 text (a dotted IPv4 tail included, see
 * below), and ports 0–65535 (spec: "must not have leading zeros"). The spec describes IPv6 addresses as groups of
 * hex digits only, but senders print them with the C library's `inet_ntop`, which writes IPv4-mapped addresses
 * as `::ffff:192.0.2.1` (nginx and HAProxy on a dual-stack listener, for example); refusing those would cut off
 * every IPv4 client of such a balancer. The tail follows the TCP4 rules, and the address comes out in RFC 5952
 * form, as any other. Returns the header, or the number of the first field
 * that does not read (1 source address, 2 destination address, 3 source port, 4 destination port), also when
 * the bytes end first.
 */
function readTcpFields(b: Uint8Array, tcp6: boolean): ParseResult | number {
  const n = b.length;
  let i = 11;
  let source: string;
  let destination: string;
  if (tcp6) {
    const e1 = spaceAt(b, i, n);
    if (!parseIPv6(b, i, e1, groups)) return 1;
    source = formatIPv6Groups(groups);
    const e2 = spaceAt(b, e1 + 1, n);
    if (!parseIPv6(b, e1 + 1, e2, groups)) return 2;
    destination = formatIPv6Groups(groups);
    i = e2 + 1;
  } else {
    // The rules of parseIPv4, inline: finding each field's end, then calling parseIPv4, parsed TCP4 headers at
    // 0.82x-0.92x the speed (pool) and 0.80x-0.93x (one fixed header) in three runs (bench/README.md,
    // 2026-12-01 codec section).
    let src = 0;
    let dst = 0;
    for (let field = 1; field <= 2; field++) {
      let address = 0;
      for (let part = 0; part < 4; part++) {
        let octet = digitAt(b, i++, n);
        if (octet < 0) return field;
        if (octet !== 0) {
          for (let k = 0; k < 2; k++) {
            const d = digitAt(b, i, n);
            if (d < 0) break;
            octet = octet * 10 + d;
            i++;
          }
          if (octet > 255) return field;
        }
        address = address * 256 + octet;
        // Dots between the octets, a space after the last.
        if (i >= n || b[i] !== (part < 3 ? DOT : SP)) return field;
        i++;
      }
      if (field === 1) src = address;
      else dst = address;
    }
    source = formatIPv4Number(src);
    destination = formatIPv4Number(dst);
  }
  let sport = 0;
  let dport = 0;
  for (let field = 3; field <= 4; field++) {
    let port = digitAt(b, i++, n);
    if (port < 0) return field;
    if (port !== 0) {
      for (let k = 0; k < 4; k++) {
        const d = digitAt(b, i, n);
        if (d < 0) break;
        port = port * 10 + d;
        i++;
      }
      if (port > 65535) return field;
    }
    // A space after the source port, CRLF after the destination port.
    if (i >= n || b[i] !== (field === 3 ? SP : CR)) return field;
    i++;
    if (field === 3) sport = port;
    else dport = port;
  }
  if (i >= n || b[i] !== LF) return 4;
  const header: ProxyHeader = {
    version: 1,
    command: 'proxy',
    family: tcp6 ? 'IPv6' : 'IPv4',
    transport: 'stream',
    source: { address: source, port: sport },
    destination: { address: destination, port: dport },
    tlvs: NO_TLVS,
  };
  return { status: 'ok', header, length: i + 1 };
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
