// encodeProxyHeader: checks what it is given, then writes it with the v1 or v2 encoder.
import { checkOptions, type Known } from '../known-options.js';
import { addressToBytes, formatIPv6 } from './ip.js';
import { NO_TLVS } from './tlv.js';
import type { ProxyAddress, ProxyHeader, Tlv } from './types.js';
import { encodeV1 } from './v1.js';
import { encodeV2 } from './v2.js';

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
  tlvs?: readonly Tlv[];
}

/** Options of {@link encodeProxyHeader}. */
export interface EncodeOptions {
  /** v2 only: append a CRC32C TLV computed over the whole header. Default false. */
  crc32c?: boolean;
}

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

const COMMANDS: readonly ProxyHeader['command'][] = ['proxy', 'local'];
const FAMILY_NAMES: readonly ProxyHeader['family'][] = ['IPv4', 'IPv6', 'unix', 'unspec'];
const TRANSPORT_NAMES: readonly ProxyHeader['transport'][] = ['stream', 'dgram', 'unspec'];

function oneOf(value: unknown, names: readonly string[], what: string): void {
  if (!names.includes(value as string)) {
    throw new TypeError(
      `encodeProxyHeader: ${what} must be ${names.map((n) => `'${n}'`).join(', ')}, not ${JSON.stringify(value)}`,
    );
  }
}

function checkPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new TypeError(`encodeProxyHeader: bad ${what} port ${p}`);
}

/**
 * Encodes a PROXY header as v1 text or v2 binary. Throws a `TypeError` for an unencodable header (a
 * version, command, family or transport the protocol does not have, an address that is not of its family,
 * a port outside 0–65535, a TLV type outside 0–255, TLVs on v1).
 *
 * @example
 * ```ts
 * socket.write(encodeProxyHeader({ version: 2, source: { address: '203.0.113.7', port: 51000 },
 *   destination: { address: '10.0.0.5', port: 443 } }, { crc32c: true }));
 * ```
 */
export function encodeProxyHeader(init: ProxyHeaderInit, options: EncodeOptions = {}): Uint8Array {
  checkOptions(options, { crc32c: true } satisfies Known<EncodeOptions>, 'encodeProxyHeader');
  if (init === null || typeof init !== 'object') throw new TypeError('encodeProxyHeader: expected a header');
  if (init.version !== 1 && init.version !== 2) {
    throw new TypeError(`encodeProxyHeader: version must be 1 or 2, not ${JSON.stringify(init.version)}`);
  }
  const command = init.command ?? 'proxy';
  const src = init.source;
  const dst = init.destination;
  let family = init.family;
  oneOf(command, COMMANDS, 'command');
  if (family !== undefined) oneOf(family, FAMILY_NAMES, 'family');
  if (init.transport !== undefined) oneOf(init.transport, TRANSPORT_NAMES, 'transport');
  if (init.tlvs !== undefined && !Array.isArray(init.tlvs)) throw new TypeError('encodeProxyHeader: tlvs must be an array');
  for (const t of init.tlvs ?? NO_TLVS) {
    if (t === null || typeof t !== 'object' || !Number.isInteger(t.type) || t.type < 0 || t.type > 0xff) {
      throw new TypeError(`encodeProxyHeader: a TLV type is a byte (0-255), not ${String(t?.type)}`);
    }
    if (!(t.value instanceof Uint8Array))
      throw new TypeError(`encodeProxyHeader: the value of TLV ${t.type} must be a Uint8Array`);
  }
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
    if (init.transport === 'dgram') throw new TypeError('encodeProxyHeader: v1 carries TCP only (no dgram)');
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

  let addresses: Parameters<typeof encodeV2>[0]['addresses'];
  if (withAddresses && src && dst) {
    let source: Uint8Array;
    let destination: Uint8Array;
    if (family === 'unix') {
      const enc = new TextEncoder();
      source = enc.encode(src.address);
      destination = enc.encode(dst.address);
      if (source.length > 108 || destination.length > 108)
        throw new TypeError('encodeProxyHeader: UNIX path longer than 108 bytes');
    } else {
      const fam = family as 'IPv4' | 'IPv6';
      source = bytesFor(src, fam, 'source');
      destination = bytesFor(dst, fam, 'destination');
    }
    addresses = { source, destination, sourcePort: src.port, destinationPort: dst.port };
  }
  return encodeV2({
    command,
    family,
    transport: init.transport ?? 'stream',
    addresses,
    tlvs: init.tlvs ?? NO_TLVS,
    crc32c: options.crc32c === true,
  });
}

function addressFromBytes(raw: Uint8Array): string {
  const g = new Uint16Array(8);
  for (let i = 0; i < 8; i++) g[i] = ((raw[2 * i] as number) << 8) | (raw[2 * i + 1] as number);
  return formatIPv6(g, false);
}
