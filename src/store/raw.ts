// The pieces of a spool file that are not entry rows — torn fragments, foreign text, entries the table cannot
// hold — stored as their exact bytes beside the entries, so that verification from the store reads every
// piece verification of the file reads, in the same order.
import { createHash } from 'node:crypto';

/**
 * Why a piece of an audit file is stored as it is (the raw table's `reason` column, and {@link RawLine}'s
 * `reason`). Verification never reads it: it reads the bytes, as it reads the file.
 *
 * @example
 * ```ts
 * shipper.on('raw', (l) => {
 *   if (l.reason !== RawReasons.TORN_FRAGMENT) alert(`${l.file}: byte ${l.offset} is ${l.reason}`);
 * });
 * ```
 */
export const RawReasons = {
  /** Starts with `{"@timestamp":"` and is not JSON (a write cut short), is a piece of that marker, or is zero bytes a power loss left. */
  TORN_FRAGMENT: 'torn-fragment',
  /** Any other text that is not an entry: foreign text, JSON without an entry's hash. */
  NOT_AN_ENTRY: 'not-an-entry',
  /** JSON with an entry's hash but without a chain and sequence the table can key on. */
  NO_CHAIN: 'no-chain',
  /** An entry whose `@timestamp` PostgreSQL's timestamptz cannot hold (before 4714-11-24 BC, after 294276 AD). */
  TIMESTAMP_RANGE: 'timestamp-out-of-range',
  /**
   * An entry whose `@timestamp` is no instant: not an ISO 8601 date and time with `Z` or an offset, or a day
   * or time that does not exist (`2026-02-29T…`). The table keys and partitions rows on it.
   */
  TIMESTAMP_INVALID: 'timestamp-invalid',
  /** An entry PostgreSQL refused as a row (`detail` has its message, e.g. a value a constraint of the table refuses). */
  REFUSED: 'refused',
  /**
   * An entry whose chain, sequence and timestamp the table holds already from another place: a second copy of
   * a line further on in the same file, or another line with the same key (a forged variant). A resend — the
   * same bytes at the same offset of the same file — is never one: it stores nothing.
   */
  DUPLICATE_KEY: 'duplicate-key',
  /**
   * An entry whose chain, sequence and timestamp the table holds already in a row with the same line or from
   * the same place, but other columns than the line gives (its client address, user, path, …): a row not
   * written by a shipper, which the queries by those columns would not find as this entry. Verification from
   * the store then reads the line twice.
   */
  COLUMNS_DIFFER: 'columns-differ',
} as const;

/** One of {@link RawReasons}. */
export type RawReason = (typeof RawReasons)[keyof typeof RawReasons];

/** A piece of an audit file stored as it is (the shipper's `'raw'` event). */
export interface RawLine {
  /** The file it was read from. */
  file: string;
  /** Byte offset of the piece in the file. */
  offset: number;
  /** Its length in the file, in bytes. */
  length: number;
  reason: RawReason;
  /** PostgreSQL's message, for `refused`. */
  detail?: string;
}

/** A {@link RawLine} as read, with what the table keeps of it. */
export interface RawPiece extends RawLine {
  /**
   * Its bytes, exactly as in the file (a copy). A physical line longer than the verifier reads
   * (MAX_LINE_BYTES) is kept as the part of it the verifier reads; `length` says how long it was.
   */
  bytes: Buffer;
  /** Another piece follows it on the same physical line (a torn fragment with a whole line glued after it). */
  glued: boolean;
  /** How many entry rows of its batch come before it in the file: its place among them. */
  before: number;
}

/** A piece read at `offset` of `file` from `bytes` (copied: the read buffer is reused). */
export function rawPiece(
  file: string,
  offset: number,
  bytes: Buffer,
  fields: { length?: number; reason: RawReason; detail?: string; glued?: boolean; before: number },
): RawPiece {
  const { length = bytes.length, reason, detail, glued = false, before } = fields;
  const piece: RawPiece = { file, offset, length, reason, bytes: Buffer.from(bytes), glued, before };
  if (detail !== undefined) piece.detail = detail;
  return piece;
}

/** The event's view of a piece (no bytes). */
export function rawLine(p: RawPiece): RawLine {
  const l: RawLine = { file: p.file, offset: p.offset, length: p.length, reason: p.reason };
  if (p.detail !== undefined) l.detail = p.detail;
  return l;
}

/**
 * The statement that stores raw pieces: ids given (so that they sit in file order among the entries of
 * their batch), and a piece the table holds already — the same file, offset and bytes — left as it is, so
 * that a resend never stores it twice. Parameters: {@link rawValues}.
 */
export function rawInsertSql(rawTable: string): string {
  return `INSERT INTO ${rawTable} AS r (id, file_id, "offset", length, digest, bytes, glued, reason, detail, path, source)
  SELECT u.id, u.file_id, u."offset", u.length, u.digest, u.bytes, u.glued, u.reason, u.detail, u.path, $11::text
  FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bytea[], $7::boolean[], $8::text[], $9::text[], $10::text[])
    AS u (id, file_id, "offset", length, digest, bytes, glued, reason, detail, path)
  ON CONFLICT (file_id, "offset", digest) DO NOTHING`;
}

/** The parameters of {@link rawInsertSql} for `pieces` of the file `fileId`, with their `ids`. */
export function rawValues(pieces: readonly RawPiece[], ids: readonly string[], fileId: string, source: string): unknown[] {
  return [
    ids,
    pieces.map(() => fileId),
    pieces.map((p) => p.offset),
    pieces.map((p) => p.length),
    pieces.map((p) => createHash('sha256').update(p.bytes).digest('hex')),
    pieces.map((p) => p.bytes),
    pieces.map((p) => p.glued),
    pieces.map((p) => p.reason),
    pieces.map((p) => p.detail ?? null),
    pieces.map((p) => p.file),
    source,
  ];
}

/**
 * The text the verifier reads for a stored piece: its bytes as UTF-8 (as the file reader decodes them). The
 * verifier drops one `\r` at the end of what it is given, as at the end of a physical line; a glued piece
 * that ends in `\r` keeps it in the file, so it is given one more.
 */
export function rawText(bytes: Buffer, glued: boolean): string {
  const text = bytes.toString('utf8');
  return glued && text.endsWith('\r') ? `${text}\r` : text;
}
