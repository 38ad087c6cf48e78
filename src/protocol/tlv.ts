// TLV (type-length-value) records of PROXY v2: constants, splitting with validation, and typed decoding.
import { u16, u32 } from './bytes.js';
import type { ProxyHeader, Tlv } from './types.js';

/** Registered TLV types (spec 2.2) and the cloud vendors' types in common use. */
export const TlvType = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  SSL_VERSION: 0x21,
  SSL_CN: 0x22,
  SSL_CIPHER: 0x23,
  SSL_SIG_ALG: 0x24,
  SSL_KEY_ALG: 0x25,
  SSL_GROUP: 0x26,
  SSL_SIG_SCHEME: 0x27,
  SSL_CLIENT_CERT: 0x28,
  NETNS: 0x30,
  /** Google Cloud Private Service Connect: 8-byte big-endian connection ID. */
  GCP: 0xe0,
  /** AWS: subtype 0x01 carries the VPC endpoint ID. */
  AWS: 0xea,
  /** Azure: subtype 0x01 carries the Private Link ID, little-endian uint32. */
  AZURE: 0xee,
} as const;

/** Client flags of the SSL TLV. */
export const SslClientFlags = { SSL: 0x01, CERT_CONN: 0x02, CERT_SESS: 0x04 } as const;

// Spec 2.2.5: "The value ... must be 128 bytes or less".
export const MAX_UNIQUE_ID_LENGTH = 128;

/** Shared by every header without TLVs (every v1 header, most v2 ones): no allocation per connection. */
export const NO_TLVS: readonly Tlv[] = Object.freeze([]);

/** Fixed part of the SSL TLV: one byte of client flags and a 32-bit verify result. */
export const SSL_FIXED_LENGTH = 5;

/** Whether `b[start, end)` is exactly a sequence of TLVs (each value inside the range). */
export function tiles(b: Uint8Array, start: number, end: number): boolean {
  let p = start;
  while (p < end) {
    if (end - p < 3) return false; // a dangling partial TLV
    p += 3 + u16(b, p + 1);
  }
  return p === end;
}

/** What {@link splitTlvs} found: the records (values copied), and where the CRC32C value is, or -1. */
export interface SplitTlvs {
  tlvs: readonly Tlv[];
  crcAt: number;
}

/**
 * Splits `b[start, end)` into TLVs in one pass (as go-proxyproto's SplitTLVs does), checking that they tile
 * the range and that the values whose layout the spec fixes are well formed. Returns the records, or an error
 * message.
 */
export function splitTlvs(b: Uint8Array, start: number, end: number): SplitTlvs | string {
  const tlvs: Tlv[] = [];
  let crcAt = -1;
  let p = start;
  while (p < end) {
    if (end - p < 3) return 'TLVs do not tile the header';
    const type = b[p] as number;
    const len = u16(b, p + 1);
    const v = p + 3;
    if (v + len > end) return 'TLVs do not tile the header';
    const bad = checkValue(b, type, v, len);
    if (bad !== undefined) return bad;
    if (type === TlvType.CRC32C) {
      if (crcAt >= 0) return 'more than one CRC32C TLV';
      crcAt = v;
    }
    // A copy: Buffer#slice would be a view that keeps the whole input chunk alive.
    tlvs.push({ type, value: new Uint8Array(b.subarray(v, v + len)) });
    p = v + len;
  }
  return { tlvs, crcAt };
}

/** Checks the value of a TLV whose layout the spec fixes; an error message, or undefined. */
function checkValue(b: Uint8Array, type: number, v: number, len: number): string | undefined {
  switch (type) {
    case TlvType.CRC32C:
      return len === 4 ? undefined : 'CRC32C TLV must be 4 bytes';
    case TlvType.UNIQUE_ID:
      return len <= MAX_UNIQUE_ID_LENGTH ? undefined : 'UNIQUE_ID TLV longer than 128 bytes';
    case TlvType.SSL:
      return len >= SSL_FIXED_LENGTH && tiles(b, v + SSL_FIXED_LENGTH, v + len) ? undefined : 'malformed SSL TLV';
    case TlvType.GCP:
      return len === 8 ? undefined : 'GCP TLV must be 8 bytes';
    case TlvType.AZURE:
      return len >= 1 && (b[v] !== 0x01 || len === 5) ? undefined : 'malformed Azure TLV';
    case TlvType.AWS:
      return len >= 1 ? undefined : 'malformed AWS TLV';
    default:
      return undefined;
  }
}

/** The SSL TLV, decoded. */
export interface SslInfo {
  /** Raw client flags (see {@link SslClientFlags}). */
  client: number;
  /** The client connected over TLS. */
  ssl: boolean;
  /** The client presented a certificate on this connection. */
  certInConnection: boolean;
  /** The client presented a certificate at least once on this TLS session. */
  certInSession: boolean;
  /** 0 when the client certificate was verified (or none was required). */
  verify: number;
  version?: string;
  cn?: string;
  cipher?: string;
  sigAlg?: string;
  keyAlg?: string;
  group?: string;
  sigScheme?: string;
  /** DER of the client certificate. */
  clientCert?: Uint8Array;
  /** Sub-TLVs in wire order, including unknown ones. */
  tlvs: readonly Tlv[];
}

/** Every TLV the library knows, decoded. Unknown types stay in `header.tlvs`. */
export interface DecodedTlvs {
  alpn?: string;
  authority?: string;
  crc32c?: number;
  /** True when at least one NOOP (padding) TLV is present. */
  noop?: boolean;
  uniqueId?: Uint8Array;
  ssl?: SslInfo;
  netns?: string;
  awsVpceId?: string;
  azurePrivateLinkId?: number;
  gcpPscConnectionId?: bigint;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });
const ascii = new TextDecoder('latin1');

function decodeSsl(value: Uint8Array): SslInfo {
  const client = value[0] as number;
  const split = splitTlvs(value, SSL_FIXED_LENGTH, value.length);
  const sub = typeof split === 'string' ? NO_TLVS : split.tlvs;
  const info: SslInfo = {
    client,
    ssl: (client & SslClientFlags.SSL) !== 0,
    certInConnection: (client & SslClientFlags.CERT_CONN) !== 0,
    certInSession: (client & SslClientFlags.CERT_SESS) !== 0,
    verify: u32(value, 1),
    tlvs: sub,
  };
  for (const t of sub) {
    switch (t.type) {
      case TlvType.SSL_VERSION:
        info.version = ascii.decode(t.value);
        break;
      case TlvType.SSL_CN:
        info.cn = utf8.decode(t.value);
        break;
      case TlvType.SSL_CIPHER:
        info.cipher = ascii.decode(t.value);
        break;
      case TlvType.SSL_SIG_ALG:
        info.sigAlg = ascii.decode(t.value);
        break;
      case TlvType.SSL_KEY_ALG:
        info.keyAlg = ascii.decode(t.value);
        break;
      case TlvType.SSL_GROUP:
        info.group = ascii.decode(t.value);
        break;
      case TlvType.SSL_SIG_SCHEME:
        info.sigScheme = ascii.decode(t.value);
        break;
      case TlvType.SSL_CLIENT_CERT:
        info.clientCert = t.value;
        break;
    }
  }
  return info;
}

/**
 * Decodes the known TLVs of a header into typed fields. The first record of each type wins.
 *
 * @example
 * ```ts
 * const info = getProxyInfo(req.socket);
 * const { awsVpceId, ssl } = decodeTlvs(info?.header ?? { tlvs: [] });
 * ```
 */
export function decodeTlvs(header: Pick<ProxyHeader, 'tlvs'> | readonly Tlv[]): DecodedTlvs {
  const tlvs = isTlvList(header) ? header : header.tlvs;
  const out: DecodedTlvs = {};
  for (const { type, value } of tlvs) {
    switch (type) {
      case TlvType.ALPN:
        out.alpn ??= ascii.decode(value);
        break;
      case TlvType.AUTHORITY:
        out.authority ??= utf8.decode(value);
        break;
      case TlvType.CRC32C:
        if (value.length === 4) out.crc32c ??= u32(value, 0);
        break;
      case TlvType.NOOP:
        out.noop = true;
        break;
      case TlvType.UNIQUE_ID:
        out.uniqueId ??= value;
        break;
      case TlvType.SSL:
        if (value.length >= SSL_FIXED_LENGTH && tiles(value, SSL_FIXED_LENGTH, value.length)) {
          out.ssl ??= decodeSsl(value);
        }
        break;
      case TlvType.NETNS:
        out.netns ??= ascii.decode(value);
        break;
      case TlvType.AWS:
        if (value[0] === 0x01) out.awsVpceId ??= ascii.decode(value.subarray(1));
        break;
      case TlvType.AZURE:
        // Azure's one little-endian field.
        if (value[0] === 0x01 && value.length === 5) {
          out.azurePrivateLinkId ??= new DataView(value.buffer, value.byteOffset, 5).getUint32(1, true);
        }
        break;
      case TlvType.GCP:
        if (value.length === 8) out.gcpPscConnectionId ??= new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0);
        break;
    }
  }
  return out;
}

function isTlvList(x: Pick<ProxyHeader, 'tlvs'> | readonly Tlv[]): x is readonly Tlv[] {
  return Array.isArray(x);
}
