// PROXY protocol version 2: a 16-byte binary prefix, an address block and TLVs.
import { crc32c } from './crc32c.js';
import { ErrorCodes, type ProxyErrorCode, ProxyProtocolError } from './errors.js';
import { formatIPv4Bytes, formatIPv6Bytes } from './ip.js';
import { checkTlvValues, countTlvs, readTlvs, TlvType } from './tlv.js';
import type { ParseResult, ProxyAddress, ProxyHeader, Tlv } from './types.js';

/** The 12-byte v2 signature: \r\n\r\n\0\r\nQUIT\n. */
export const V2_SIGNATURE = new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Signature, version/command, family/transport, 16-bit length. */
export const V2_FIXED_LENGTH = 16;
/** Default cap on a whole v2 header; the 16-bit length field could announce 65,551 bytes. */
export const DEFAULT_MAX_HEADER_LENGTH = 4096;

// Spec 2.2: address block sizes for INET, INET6 and UNIX.
const ADDRESS_LENGTH = [0, 12, 36, 216] as const;
const FAMILIES = ['unspec', 'IPv4', 'IPv6', 'unix'] as const;
const TRANSPORTS = ['unspec', 'stream', 'dgram'] as const;
const UNIX_PATH = 108;
/** Shared by every header without TLVs (most of them): one allocation less per connection. */
const NO_TLVS: Tlv[] = Object.freeze([]) as unknown as Tlv[];

function invalid(code: ProxyErrorCode, message: string): ParseResult {
  return { status: 'invalid', error: new ProxyProtocolError(code, `PROXY v2: ${message}`) };
}

function unixPath(b: Uint8Array, start: number): string {
  let end = start;
  const limit = start + UNIX_PATH;
  while (end < limit && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(start, end));
}

/** Validates TLVs in `b[start, end)`, including a CRC32C over the whole header `b[0, end)`. */
function checkTlvs(b: Uint8Array, start: number, end: number): ParseResult | undefined {
  if (countTlvs(b, start, end) < 0) return invalid(ErrorCodes.TLV, 'TLVs do not tile the header');
  const bad = checkTlvValues(b, start, end);
  if (bad) return invalid(ErrorCodes.TLV, bad);
  let p = start;
  let crcAt = -1;
  while (p < end) {
    const len = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
    if (b[p] === TlvType.CRC32C) {
      if (crcAt >= 0) return invalid(ErrorCodes.TLV, 'more than one CRC32C TLV');
      crcAt = p + 3;
    }
    p += 3 + len;
  }
  if (crcAt >= 0) {
    // Spec 2.2.3: computed over the whole header "while the checksum field is filled with zero".
    const expected =
      (((b[crcAt] as number) << 24) |
        ((b[crcAt + 1] as number) << 16) |
        ((b[crcAt + 2] as number) << 8) |
        (b[crcAt + 3] as number)) >>>
      0;
    if (crc32c(b, 0, end, crcAt) !== expected) return invalid(ErrorCodes.CRC, 'CRC32C mismatch');
  }
  return undefined;
}

/**
 * Parses a v2 header. The caller has checked that the input starts with the full 12-byte signature.
 */
export function parseV2(b: Uint8Array, maxHeaderLength: number): ParseResult {
  if (b.length < V2_FIXED_LENGTH) {
    // Decide what the bytes we have already allow.
    if (b.length > 12) {
      const vc = b[12] as number;
      if (vc >> 4 !== 2) return invalid(ErrorCodes.VERSION, `unsupported version ${vc >> 4}`);
      if ((vc & 0xf) > 1) return invalid(ErrorCodes.COMMAND, `unknown command ${vc & 0xf}`);
    }
    if (b.length > 13) {
      const ft = b[13] as number;
      if (ft >> 4 > 3) return invalid(ErrorCodes.FAMILY, `unknown address family ${ft >> 4}`);
      if ((ft & 0xf) > 2) return invalid(ErrorCodes.TRANSPORT, `unknown transport ${ft & 0xf}`);
    }
    return { status: 'incomplete' };
  }
  const vc = b[12] as number;
  const ft = b[13] as number;
  const declared = ((b[14] as number) << 8) | (b[15] as number);
  if (vc === 0x21 && ft === 0x11 && declared === 12 && b.length >= 28 && maxHeaderLength >= 28) {
    // The header nearly every connection carries (PROXY, TCP over IPv4, no TLVs): built straight away.
    return {
      status: 'ok',
      header: {
        version: 2,
        command: 'proxy',
        family: 'IPv4',
        transport: 'stream',
        source: { address: formatIPv4Bytes(b, 16), port: ((b[24] as number) << 8) | (b[25] as number) },
        destination: { address: formatIPv4Bytes(b, 20), port: ((b[26] as number) << 8) | (b[27] as number) },
        tlvs: NO_TLVS,
      },
      length: 28,
    };
  }
  if (vc >> 4 !== 2) return invalid(ErrorCodes.VERSION, `unsupported version ${vc >> 4}`);
  const cmd = vc & 0xf;
  if (cmd > 1) return invalid(ErrorCodes.COMMAND, `unknown command ${cmd}`);
  const fam = ft >> 4;
  if (fam > 3) return invalid(ErrorCodes.FAMILY, `unknown address family ${fam}`);
  const tr = ft & 0xf;
  if (tr > 2) return invalid(ErrorCodes.TRANSPORT, `unknown transport ${tr}`);
  const length = V2_FIXED_LENGTH + declared;
  if (length > maxHeaderLength) {
    return invalid(ErrorCodes.TOO_LONG, `header of ${length} bytes exceeds the ${maxHeaderLength}-byte limit`);
  }
  const addrLen = ADDRESS_LENGTH[fam as 0 | 1 | 2 | 3];
  const local = cmd === 0;
  if (!local && declared < addrLen) {
    return invalid(ErrorCodes.LENGTH, `length ${declared} cannot hold a ${FAMILIES[fam]} address block`);
  }
  if (b.length < length) return { status: 'incomplete' };

  let tlvStart = V2_FIXED_LENGTH + addrLen;
  if (local && addrLen > 0) {
    // Spec: for LOCAL "the receiver ... must discard the protocol block including the family". AWS NLB
    // health checks announce INET but put TLVs right after the fixed part with no address block, so
    // prefer that layout when it tiles, and fall back to skipping the announced address block.
    if (countTlvs(b, V2_FIXED_LENGTH, length) >= 0) tlvStart = V2_FIXED_LENGTH;
    else if (declared < addrLen) return invalid(ErrorCodes.TLV, 'TLVs do not tile the header');
  }
  let tlvs = NO_TLVS;
  if (tlvStart < length) {
    const bad = checkTlvs(b, tlvStart, length);
    if (bad) return bad;
    tlvs = readTlvs(b, tlvStart, length);
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
    source = { address: formatIPv4Bytes(b, a), port: ((b[a + 8] as number) << 8) | (b[a + 9] as number) };
    destination = { address: formatIPv4Bytes(b, a + 4), port: ((b[a + 10] as number) << 8) | (b[a + 11] as number) };
  } else if (fam === 2) {
    source = { address: formatIPv6Bytes(b, a), port: ((b[a + 32] as number) << 8) | (b[a + 33] as number) };
    destination = { address: formatIPv6Bytes(b, a + 16), port: ((b[a + 34] as number) << 8) | (b[a + 35] as number) };
  } else {
    source = { address: unixPath(b, a), port: 0 };
    destination = { address: unixPath(b, a + UNIX_PATH), port: 0 };
  }
  // Same property order as the fast path above: one object shape for every header with addresses.
  const header: ProxyHeader = { version: 2, command: 'proxy', family, transport, source, destination, tlvs };
  return { status: 'ok', header, length };
}
