import type { ProxyProtocolError } from './errors.js';

/** An address and port as carried by a PROXY header. UNIX sockets use the path and port 0. */
export interface ProxyAddress {
  address: string;
  port: number;
}

/** One raw Type-Length-Value record of a v2 header. `value` is a copy, independent of the input. */
export interface Tlv {
  type: number;
  value: Uint8Array;
}

/** A parsed PROXY protocol header. */
export interface ProxyHeader {
  version: 1 | 2;
  command: 'proxy' | 'local';
  family: 'IPv4' | 'IPv6' | 'unix' | 'unspec';
  transport: 'stream' | 'dgram' | 'unspec';
  /** The original client. Absent for `local`, `unspec` and v1 `UNKNOWN`. */
  source?: ProxyAddress;
  /** The address the client connected to. Absent exactly when `source` is. */
  destination?: ProxyAddress;
  /** Every TLV in wire order (v2 only; always empty for v1). */
  tlvs: readonly Tlv[];
}

/** What {@link parseProxyHeader} found at the start of a byte sequence. */
export type ParseResult =
  | { status: 'ok'; header: ProxyHeader; length: number }
  | { status: 'incomplete' }
  | { status: 'none' }
  | { status: 'invalid'; error: ProxyProtocolError };

/** Options of {@link parseProxyHeader}. */
export interface ParseOptions {
  /**
   * The largest whole v2 header (16 fixed bytes plus the declared length) that is accepted. A header
   * that declares more is invalid as soon as its length field is read. Default 4096.
   */
  maxHeaderLength?: number;
}
