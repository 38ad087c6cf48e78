export { crc32c } from './crc32c.js';
export { type EncodeOptions, encodeProxyHeader, type ProxyHeaderInit } from './encode.js';
export { ErrorCodes, type PeerAddress, type ProxyErrorCode, ProxyProtocolError } from './errors.js';
export { parseProxyHeader } from './parse.js';
export { type DecodedTlvs, decodeTlvs, SslClientFlags, type SslInfo, TlvType } from './tlv.js';
export type { ParseOptions, ParseResult, ProxyAddress, ProxyHeader, Tlv } from './types.js';
export { V1_MAX_LENGTH, V1_SIGNATURE } from './v1.js';
export { DEFAULT_MAX_HEADER_LENGTH, V2_SIGNATURE } from './v2.js';
