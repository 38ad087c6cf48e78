import { crc32c } from './crc32c.js';
import { addressToBytes, formatIPv6 } from './ip.js';
import { TlvType } from './tlv.js';
import type { ProxyAddress, ProxyHeader, Tlv } from './types.js';
import { encodeV1 } from './v1.js';
import { V2_FIXED_LENGTH, V2_SIGNATURE } from './v2.js';

/** What {@link encodeProxyHeader} needs; everything but `version` has a sensible default. */
export interface ProxyHeaderInit {
  version: 1 | 2;
  /** Default `'proxy'`. v1 has no LOCAL: a v1 LOCAL is written as `UNKNOWN`. */
  command?: ProxyHeader['command'];
  /** Default: derived from `source.address` (IPv4 or IPv6), `'unspec'` without a source. */
  family?: ProxyHeader['family'];
  /** Default `'stream'`. */
  transport?: ProxyHeader['transport'];
  source?: ProxyAddress;
  destination?: ProxyAddress;
  /** v2 only. */
  tlvs?: Tlv[];
}

/** Options of {@link encodeProxyHeader}. */
export interface EncodeOptions {
  /** v2 only: append a CRC32C TLV computed over the whole header. Default false. */
  crc32c?: boolean;
}

const FAMILY_CODE = { unspec: 0, IPv4: 1, IPv6: 2, unix: 3 } as const;
const TRANSPORT_CODE = { unspec: 0, stream: 1, dgram: 2 } as const;
const ADDRESS_LENGTH = { unspec: 0, IPv4: 12, IPv6: 36, unix: 216 } as const;

function bytesFor(a: ProxyAddress, family: 'IPv4' | 'IPv6', what: string): Uint8Array {
  const raw = addressToBytes(a.address);
  if (!raw) throw new TypeError(`encodeProxyHeader: ${what} address ${JSON.stringify(a.address)} is not an IP address`);
  if (family === 'IPv4' && raw.length !== 4) throw new TypeError(`encodeProxyHeader: ${what} address is not IPv4`);
  if (family === 'IPv6' && raw.length === 4) {
    const mapped = new Uint8Array(16);
    mapped[10] = 0xff;
    mapped[11] = 0xff;
    mapped.set(raw, 12);
    return mapped;
  }
  return raw;
}

function checkPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new TypeError(`encodeProxyHeader: bad ${what} port ${p}`);
}

/**
 * Encodes a PROXY header as v1 text or v2 binary. Throws a `TypeError` for an unencodable header (an
 * address that is not of its family, a port outside 0–65535, TLVs on v1).
 *
 * @example
 * ```ts
 * socket.write(encodeProxyHeader({ version: 2, source: { address: '203.0.113.7', port: 51000 },
 *   destination: { address: '10.0.0.5', port: 443 } }, { crc32c: true }));
 * ```
 */
export function encodeProxyHeader(init: ProxyHeaderInit, options: EncodeOptions = {}): Uint8Array {
  const command = init.command ?? 'proxy';
  const src = init.source;
  const dst = init.destination;
  let family = init.family;
  if (!family) {
    if (!src) family = 'unspec';
    else family = addressToBytes(src.address)?.length === 4 ? 'IPv4' : 'IPv6';
  }
  const withAddresses = command === 'proxy' && family !== 'unspec';
  if (withAddresses && (!src || !dst)) {
    throw new TypeError('encodeProxyHeader: source and destination are required for a PROXY command');
  }
  if (withAddresses && src && dst) {
    checkPort(src.port, 'source');
    checkPort(dst.port, 'destination');
  }

  if (init.version === 1) {
    if (init.tlvs?.length) throw new TypeError('encodeProxyHeader: v1 has no TLVs');
    if (!withAddresses || !src || !dst) return new TextEncoder().encode(encodeV1({ family: 'unspec' }));
    if (family === 'unix') throw new TypeError('encodeProxyHeader: v1 cannot carry UNIX addresses');
    const v6 = family === 'IPv6';
    // v1 TCP6 must not carry dotted IPv4, so IPv6 is written in hex-only canonical form.
    const text = (a: ProxyAddress, what: string) => {
      const raw = bytesFor(a, v6 ? 'IPv6' : 'IPv4', what);
      return v6 ? addressFromBytes(raw) : `${raw[0]}.${raw[1]}.${raw[2]}.${raw[3]}`;
    };
    const line = encodeV1({
      family,
      source: { address: text(src, 'source'), port: src.port },
      destination: { address: text(dst, 'destination'), port: dst.port },
    });
    return new TextEncoder().encode(line);
  }

  const addrLen = withAddresses ? ADDRESS_LENGTH[family] : 0;
  const tlvs = init.tlvs ?? [];
  let tlvLen = 0;
  for (const t of tlvs) {
    if (t.value.length > 0xffff) throw new TypeError('encodeProxyHeader: TLV value longer than 65535 bytes');
    tlvLen += 3 + t.value.length;
  }
  if (options.crc32c) tlvLen += 7;
  const declared = addrLen + tlvLen;
  if (declared > 0xffff) throw new TypeError('encodeProxyHeader: header longer than 65535 bytes');
  const out = new Uint8Array(V2_FIXED_LENGTH + declared);
  out.set(V2_SIGNATURE, 0);
  out[12] = 0x20 | (command === 'local' ? 0 : 1);
  out[13] = (FAMILY_CODE[family] << 4) | TRANSPORT_CODE[init.transport ?? 'stream'];
  out[14] = declared >>> 8;
  out[15] = declared & 0xff;
  let p = V2_FIXED_LENGTH;
  if (withAddresses && src && dst) {
    if (family === 'unix') {
      const enc = new TextEncoder();
      const s = enc.encode(src.address);
      const d = enc.encode(dst.address);
      if (s.length > 108 || d.length > 108) throw new TypeError('encodeProxyHeader: UNIX path longer than 108 bytes');
      out.set(s, p);
      out.set(d, p + 108);
    } else {
      const fam = family as 'IPv4' | 'IPv6';
      const s = bytesFor(src, fam, 'source');
      const d = bytesFor(dst, fam, 'destination');
      out.set(s, p);
      out.set(d, p + s.length);
      const q = p + 2 * s.length;
      out[q] = src.port >>> 8;
      out[q + 1] = src.port & 0xff;
      out[q + 2] = dst.port >>> 8;
      out[q + 3] = dst.port & 0xff;
    }
    p += addrLen;
  }
  for (const t of tlvs) {
    out[p] = t.type;
    out[p + 1] = t.value.length >>> 8;
    out[p + 2] = t.value.length & 0xff;
    out.set(t.value, p + 3);
    p += 3 + t.value.length;
  }
  if (options.crc32c) {
    out[p] = TlvType.CRC32C;
    out[p + 1] = 0;
    out[p + 2] = 4;
    const crc = crc32c(out, 0, out.length); // the checksum field is still zero here
    out[p + 3] = crc >>> 24;
    out[p + 4] = (crc >>> 16) & 0xff;
    out[p + 5] = (crc >>> 8) & 0xff;
    out[p + 6] = crc & 0xff;
  }
  return out;
}

function addressFromBytes(raw: Uint8Array): string {
  const g = new Uint16Array(8);
  for (let i = 0; i < 8; i++) g[i] = ((raw[2 * i] as number) << 8) | (raw[2 * i + 1] as number);
  return formatIPv6(g, false);
}
