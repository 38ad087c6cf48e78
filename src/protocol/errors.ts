import type { ParseResult } from './types.js';

/**
 * Stable error codes. Tests and users branch on `code`, never on the message text.
 */
export const ErrorCodes = {
  /** v1: the line breaks a syntax rule (spacing, lone CR or LF, missing or extra fields). */
  MALFORMED: 'ERR_PROXY_MALFORMED',
  /** v2: the version nibble is not 2. */
  VERSION: 'ERR_PROXY_VERSION',
  /** v2: the command nibble is neither LOCAL (0) nor PROXY (1). */
  COMMAND: 'ERR_PROXY_COMMAND',
  /** v1: protocol is not TCP4, TCP6 or UNKNOWN; v2: address family is above 3. */
  FAMILY: 'ERR_PROXY_FAMILY',
  /** v2: transport nibble is above 2. */
  TRANSPORT: 'ERR_PROXY_TRANSPORT',
  /** An address is not valid for the announced family. */
  ADDRESS: 'ERR_PROXY_ADDRESS',
  /** A port is not a decimal 0–65535 without sign or leading zero. */
  PORT: 'ERR_PROXY_PORT',
  /** v1: no CRLF within 107 bytes; v2: declared length above the configured cap. */
  TOO_LONG: 'ERR_PROXY_TOO_LONG',
  /** v2: the declared length cannot hold the address block of the announced family. */
  LENGTH: 'ERR_PROXY_LENGTH',
  /** v2: TLVs do not tile the rest of the header, or a known TLV has a malformed value. */
  TLV: 'ERR_PROXY_TLV',
  /** v2: the CRC32C TLV does not match the header. */
  CRC: 'ERR_PROXY_CRC',
  /** Connection: a header is required but the connection did not start with one. */
  MISSING: 'ERR_PROXY_MISSING',
  /** Connection: no complete header arrived within `headerTimeout`. */
  TIMEOUT: 'ERR_PROXY_TIMEOUT',
  /** Connection: the peer is not in `trustedProxies`. */
  UNTRUSTED: 'ERR_PROXY_UNTRUSTED',
  /** Connection: the peer closed or reset the connection before a complete header. */
  INCOMPLETE: 'ERR_PROXY_INCOMPLETE',
  /** Audit log: a sink failed (a write error, a full disk); entries are kept and retried. */
  AUDIT_SINK: 'ERR_PROXY_AUDIT_SINK',
  /** Audit log: `close()` gave up on entries the sink never took (`lost` says how many). */
  AUDIT_LOST: 'ERR_PROXY_AUDIT_LOST',
  /** Audit log: a callback or listener of the app (`user`, `path`, `skip`, `'entry'`) threw or returned a bad value. */
  AUDIT_CALLBACK: 'ERR_PROXY_AUDIT_CALLBACK',
  /** PostgreSQL store: node-postgres (`pg`) or, for shipping and verifying, `pg-copy-streams` (optional peer dependencies) is not installed. */
  AUDIT_PG_MISSING: 'ERR_PROXY_AUDIT_PG_MISSING',
  /** PostgreSQL store: the database cannot be reached or refused a batch; the lines stay in the file and are retried. */
  AUDIT_STORE_UNAVAILABLE: 'ERR_PROXY_AUDIT_STORE_UNAVAILABLE',
  /**
   * PostgreSQL store: PostgreSQL refused this login, database or right (wrong password, no such role or
   * database, permission denied, a pg_hba.conf rule such as TLS only, an untrusted certificate). Its message
   * says what to fix; no retry clears it until then (a shipper still retries, the lines stay in the file).
   */
  AUDIT_STORE_ACCESS: 'ERR_PROXY_AUDIT_STORE_ACCESS',
  /** PostgreSQL store: the table is missing or not the one `pg-init` creates. */
  AUDIT_STORE_SCHEMA: 'ERR_PROXY_AUDIT_STORE_SCHEMA',
  /** Shipping: `flush()` or `close()` timed out before every line was in PostgreSQL (the file still holds them). */
  AUDIT_SHIP_TIMEOUT: 'ERR_PROXY_AUDIT_SHIP_TIMEOUT',
  /** Shipping: the spool file, or a rotated file not yet shipped to its end, cannot be read. */
  AUDIT_SPOOL_MISSING: 'ERR_PROXY_AUDIT_SPOOL_MISSING',
  /**
   * Shipping (a warning): a file's resume point in the store is not backed by the rows there (the file was
   * truncated and written again, or the resume point was moved): it is shipped from its beginning again.
   */
  AUDIT_SPOOL_CHANGED: 'ERR_PROXY_AUDIT_SPOOL_CHANGED',
} as const;

/** One of the `ERR_PROXY_…` codes in {@link ErrorCodes}. */
export type ProxyErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** The TCP peer of a connection: the load balancer itself when a PROXY header is used. */
export interface PeerAddress {
  address: string;
  port: number;
}

/**
 * The error for every rejected header or connection. `code` is stable; `peer` is the TCP peer (set by the
 * connection layer, absent for pure parsing).
 *
 * @example
 * ```ts
 * server.on('proxyError', (err) => console.warn(err.code, err.peer?.address));
 * ```
 */
export class ProxyProtocolError extends Error {
  readonly code: ProxyErrorCode;
  peer?: PeerAddress;

  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown; peer?: PeerAddress }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyProtocolError';
    this.code = code;
    if (options?.peer) this.peer = options.peer;
  }
}

/** The `invalid` outcome of a parse, with a new {@link ProxyProtocolError}. */
export function invalid(code: ProxyErrorCode, message: string): ParseResult {
  return { status: 'invalid', error: new ProxyProtocolError(code, message) };
}
