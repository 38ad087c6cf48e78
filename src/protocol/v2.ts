// PROXY protocol version 2: a 16-byte binary prefix, an address block and TLVs. Parser and encoder.
import { putU16, u16, u32 } from './bytes.js';
import { crc32c } from './crc32c.js';
import { ErrorCodes, invalid } from './errors.js';
import { formatIPv4Bytes, formatIPv6Bytes } from './ip.js';
import { NO_TLVS, splitTlvs, TlvType, tiles } from './tlv.js';
import type { ParseResult, ProxyAddress, ProxyHeader, Tlv } from './types.js';

/** The 12-byte v2 signature: \r\n\r\n\0\r\nQUIT\n. */
export const V2_SIGNATURE = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Signature, version/command, family/transport, 16-bit length. */
export const V2_FIXED_LENGTH = 16;
/** Default cap on a whole v2 header; the 16-bit length field could announce 65,551 bytes. */
export const DEFAULT_MAX_HEADER_LENGTH = 4096;

// Spec 2.2: the high nibble of byte 13 is the family, the low one the transport; index = wire value. The
// address block sizes are those of INET, INET6 and UNIX.
const FAMILIES = ['unspec', 'IPv4', 'IPv6', 'unix'] as const;
const TRANSPORTS = ['unspec', 'stream', 'dgram'] as const;
const ADDRESS_LENGTH = [0, 12, 36, 216] as const;
const UNIX_PATH = 108;

function unixPath(b: Uint8Array, start: number): string {
  let end = start;
  const limit = start + UNIX_PATH;
  while (end < limit && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(start, end));
}

/** Splits and validates the TLVs in `b[start, end)`, including a CRC32C over the whole header `b[0, end)`. */
function readTlvs(b: Uint8Array, start: number, end: number): readonly Tlv[] | ParseResult {
  const split = splitTlvs(b, start, end);
  if (typeof split === 'string') return invalid(ErrorCodes.TLV, `PROXY v2: ${split}`);
  const at = split.crcAt;
  // Spec 2.2.3: computed over the whole header "while the checksum field is filled with zero".
  if (at >= 0 && crc32c(b, 0, end, at) !== u32(b, at)) return invalid(ErrorCodes.CRC, 'PROXY v2: CRC32C mismatch');
  return split.tlvs;
}

/**
 * Parses a v2 header. The caller has checked that the input starts with the full 12-byte signature.
 */
export function parseV2(b: Uint8Array, maxHeaderLength: number): ParseResult {
  if (b.length < V2_FIXED_LENGTH) {
    // Decide what the bytes we have already allow.
    if (b.length > 12) {
      const vc = b[12] as number;
      if (vc >> 4 !== 2) return invalid(ErrorCodes.VERSION, `PROXY v2: unsupported version ${vc >> 4}`);
      if ((vc & 0xf) > 1) return invalid(ErrorCodes.COMMAND, `PROXY v2: unknown command ${vc & 0xf}`);
    }
    if (b.length > 13) {
      const ft = b[13] as number;
      if (ft >> 4 > 3) return invalid(ErrorCodes.FAMILY, `PROXY v2: unknown address family ${ft >> 4}`);
      if ((ft & 0xf) > 2) return invalid(ErrorCodes.TRANSPORT, `PROXY v2: unknown transport ${ft & 0xf}`);
    }
    return { status: 'incomplete' };
  }
  const vc = b[12] as number;
  const ft = b[13] as number;
  const declared = u16(b, 14);
  if (vc === 0x21 && ft === 0x11 && declared === 12 && b.length >= 28 && maxHeaderLength >= 28) {
    // The header nearly every connection carries (PROXY, TCP over IPv4, no TLVs), built straight away: without
    // this branch v2 IPv4 headers parsed at 0.92x–0.95x the speed (two head-to-head runs, bench/codec.mjs pool).
    return {
      status: 'ok',
      header: {
        version: 2,
        command: 'proxy',
        family: 'IPv4',
        transport: 'stream',
        source: { address: formatIPv4Bytes(b, 16), port: u16(b, 24) },
        destination: { address: formatIPv4Bytes(b, 20), port: u16(b, 26) },
        tlvs: NO_TLVS,
      },
      length: 28,
    };
  }
  if (vc >> 4 !== 2) return invalid(ErrorCodes.VERSION, `PROXY v2: unsupported version ${vc >> 4}`);
  const cmd = vc & 0xf;
  if (cmd > 1) return invalid(ErrorCodes.COMMAND, `PROXY v2: unknown command ${cmd}`);
  const fam = ft >> 4;
  if (fam > 3) return invalid(ErrorCodes.FAMILY, `PROXY v2: unknown address family ${fam}`);
  const tr = ft & 0xf;
  if (tr > 2) return invalid(ErrorCodes.TRANSPORT, `PROXY v2: unknown transport ${tr}`);
  const length = V2_FIXED_LENGTH + declared;
  if (length > maxHeaderLength) {
    return invalid(ErrorCodes.TOO_LONG, `PROXY v2: header of ${length} bytes exceeds the ${maxHeaderLength}-byte limit`);
  }
  const addrLen = ADDRESS_LENGTH[fam as 0 | 1 | 2 | 3];
  const local = cmd === 0;
  if (!local && declared < addrLen) {
    return invalid(ErrorCodes.LENGTH, `PROXY v2: length ${declared} cannot hold a ${FAMILIES[fam]} address block`);
  }
  if (b.length < length) return { status: 'incomplete' };

  let tlvStart = V2_FIXED_LENGTH + addrLen;
  if (local && addrLen > 0) {
    // Spec: for LOCAL "the receiver ... must discard the protocol block including the family". AWS NLB
    // health checks announce INET but put TLVs right after the fixed part with no address block, so
    // prefer that layout when it tiles, and fall back to skipping the announced address block.
    if (tiles(b, V2_FIXED_LENGTH, length)) tlvStart = V2_FIXED_LENGTH;
    else if (declared < addrLen) return invalid(ErrorCodes.TLV, 'PROXY v2: TLVs do not tile the header');
  }
  let tlvs = NO_TLVS;
  if (tlvStart < length) {
    const read = readTlvs(b, tlvStart, length);
    if (!Array.isArray(read)) return read as ParseResult;
    tlvs = read;
  }

  const family = FAMILIES[fam] as ProxyHeader['family'];
  const transport = TRANSPORTS[tr] as ProxyHeader['transport'];
  if (local || fam === 0) {
    return { status: 'ok', header: { version: 2, command: local ? 'local' : 'proxy', family, transport, tlvs }, length };
  }
  const a = V2_FIXED_LENGTH;
  let source: ProxyAddress;
  let destination: ProxyAddress;
  if (fam === 1) {
    source = { address: formatIPv4Bytes(b, a), port: u16(b, a + 8) };
    destination = { address: formatIPv4Bytes(b, a + 4), port: u16(b, a + 10) };
  } else if (fam === 2) {
    source = { address: formatIPv6Bytes(b, a), port: u16(b, a + 32) };
    destination = { address: formatIPv6Bytes(b, a + 16), port: u16(b, a + 34) };
  } else {
    source = { address: unixPath(b, a), port: 0 };
    destination = { address: unixPath(b, a + UNIX_PATH), port: 0 };
  }
  // Same property order as the fast path above: one object shape for every header with addresses.
  const header: ProxyHeader = { version: 2, command: 'proxy', family, transport, source, destination, tlvs };
  return { status: 'ok', header, length };
}

/** A v2 header to encode, already checked by encodeProxyHeader: addresses as bytes of the family. */
export interface V2Fields {
  command: ProxyHeader['command'];
  family: ProxyHeader['family'];
  transport: ProxyHeader['transport'];
  /** Source and destination address bytes (4 or 16 each, or UNIX paths), or none. */
  addresses: { source: Uint8Array; destination: Uint8Array; sourcePort: number; destinationPort: number } | undefined;
  tlvs: readonly Tlv[];
  crc32c: boolean;
}

/** Encodes a v2 header. Throws a `TypeError` when it cannot fit the 16-bit length field. */
export function encodeV2(h: V2Fields): Uint8Array {
  const fam = FAMILIES.indexOf(h.family);
  const addrLen = h.addresses ? ADDRESS_LENGTH[fam as 0 | 1 | 2 | 3] : 0;
  let tlvLen = 0;
  for (const t of h.tlvs) {
    if (t.value.length > 0xffff) throw new TypeError('encodeProxyHeader: TLV value longer than 65535 bytes');
    tlvLen += 3 + t.value.length;
  }
  if (h.crc32c) tlvLen += 7;
  const declared = addrLen + tlvLen;
  if (declared > 0xffff) throw new TypeError('encodeProxyHeader: header longer than 65535 bytes');
  const out = new Uint8Array(V2_FIXED_LENGTH + declared);
  out.set(V2_SIGNATURE, 0);
  out[12] = 0x20 | (h.command === 'local' ? 0 : 1);
  out[13] = (fam << 4) | TRANSPORTS.indexOf(h.transport);
  putU16(out, 14, declared);
  let p = V2_FIXED_LENGTH;
  const a = h.addresses;
  if (a) {
    if (h.family === 'unix') {
      out.set(a.source, p);
      out.set(a.destination, p + UNIX_PATH);
    } else {
      const n = a.source.length;
      out.set(a.source, p);
      out.set(a.destination, p + n);
      putU16(out, p + 2 * n, a.sourcePort);
      putU16(out, p + 2 * n + 2, a.destinationPort);
    }
    p += addrLen;
  }
  for (const t of h.tlvs) {
    out[p] = t.type;
    putU16(out, p + 1, t.value.length);
    out.set(t.value, p + 3);
    p += 3 + t.value.length;
  }
  if (h.crc32c) {
    out[p] = TlvType.CRC32C;
    putU16(out, p + 1, 4);
    const crc = crc32c(out, 0, out.length); // the checksum field is still zero here
    putU16(out, p + 3, crc >>> 16);
    putU16(out, p + 5, crc & 0xffff);
  }
  return out;
}
