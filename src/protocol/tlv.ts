// TLV (type-length-value) records of PROXY v2: constants, structural validation and typed decoding.
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

/**
 * Checks that `b[start, end)` is exactly a sequence of TLVs. Returns the number of records, or -1.
 */
export function countTlvs(b: Uint8Array, start: number, end: number): number {
  let n = 0;
  let p = start;
  while (p < end) {
    if (end - p < 3) return -1; // a dangling partial TLV
    const len = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
    p += 3 + len;
    if (p > end) return -1; // the value overruns the header
    n++;
  }
  return n;
}

/** Fixed part of the SSL TLV: one byte of client flags and a 32-bit verify result. */
export const SSL_FIXED_LENGTH = 5;

/** Reads the TLVs of `b[start, end)` (already validated by {@link countTlvs}), copying each value. */
export function readTlvs(b: Uint8Array, start: number, end: number): Tlv[] {
  const out: Tlv[] = [];
  let p = start;
  while (p < end) {
    const type = b[p] as number;
    const len = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
    // A copy: Buffer#slice would be a view that keeps the whole input chunk alive.
    out.push({ type, value: new Uint8Array(b.subarray(p + 3, p + 3 + len)) });
    p += 3 + len;
  }
  return out;
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
  tlvs: Tlv[];
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

/**
 * Checks the values of the TLVs whose layout the spec fixes. Returns an error message or undefined.
 */
export function checkTlvValues(b: Uint8Array, start: number, end: number): string | undefined {
  let p = start;
  while (p < end) {
    const type = b[p] as number;
    const len = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
    const v = p + 3;
    switch (type) {
      case TlvType.CRC32C:
        if (len !== 4) return 'CRC32C TLV must be 4 bytes';
        break;
      case TlvType.UNIQUE_ID:
        if (len > MAX_UNIQUE_ID_LENGTH) return 'UNIQUE_ID TLV longer than 128 bytes';
        break;
      case TlvType.SSL:
        if (len < SSL_FIXED_LENGTH || countTlvs(b, v + SSL_FIXED_LENGTH, v + len) < 0) return 'malformed SSL TLV';
        break;
      case TlvType.GCP:
        if (len !== 8) return 'GCP TLV must be 8 bytes';
        break;
      case TlvType.AZURE:
        if (len < 1 || (b[v] === 0x01 && len !== 5)) return 'malformed Azure TLV';
        break;
      case TlvType.AWS:
        if (len < 1) return 'malformed AWS TLV';
        break;
    }
    p = v + len;
  }
  return undefined;
}

function decodeSsl(value: Uint8Array): SslInfo {
  const client = value[0] as number;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const sub = readTlvs(value, SSL_FIXED_LENGTH, value.length);
  const info: SslInfo = {
    client,
    ssl: (client & SslClientFlags.SSL) !== 0,
    certInConnection: (client & SslClientFlags.CERT_CONN) !== 0,
    certInSession: (client & SslClientFlags.CERT_SESS) !== 0,
    verify: view.getUint32(1),
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
export function decodeTlvs(header: Pick<ProxyHeader, 'tlvs'> | Tlv[]): DecodedTlvs {
  const tlvs = Array.isArray(header) ? header : header.tlvs;
  const out: DecodedTlvs = {};
  for (const { type, value } of tlvs) {
    const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
    switch (type) {
      case TlvType.ALPN:
        out.alpn ??= ascii.decode(value);
        break;
      case TlvType.AUTHORITY:
        out.authority ??= utf8.decode(value);
        break;
      case TlvType.CRC32C:
        if (value.length === 4) out.crc32c ??= view.getUint32(0);
        break;
      case TlvType.NOOP:
        out.noop = true;
        break;
      case TlvType.UNIQUE_ID:
        out.uniqueId ??= value;
        break;
      case TlvType.SSL:
        if (value.length >= SSL_FIXED_LENGTH && countTlvs(value, SSL_FIXED_LENGTH, value.length) >= 0) {
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
        if (value[0] === 0x01 && value.length === 5) out.azurePrivateLinkId ??= view.getUint32(1, true);
        break;
      case TlvType.GCP:
        if (value.length === 8) out.gcpPscConnectionId ??= view.getBigUint64(0);
        break;
    }
  }
  return out;
}
