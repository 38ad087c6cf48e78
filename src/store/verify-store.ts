// Verification from the store: the rows of the audit table fed to the same streaming core as files.
import { Verifier, type VerifyOptions, type VerifyResult } from '../audit/verifier.js';
import { openPool, type PostgresOption } from './pg.js';
import { rawText } from './raw.js';
import { tableNames } from './table.js';

/** Options of {@link verifyStore}: those of {@link VerifyOptions}, and where the store is. */
export interface VerifyStoreOptions extends VerifyOptions {
  /** A connection string or `{ connectionString?, pool?, table? }` (table default `"audit_log"`). */
  postgres: PostgresOption;
  /** Rows fetched per round trip. Default 5000. */
  fetchSize?: number;
}

/**
 * Verifies every chain in the audit table, streaming (a server-side cursor; memory stays bounded whatever
 * the table's size), with the verdicts and findings of files. It reads the entry rows and the raw pieces
 * (torn fragments, foreign text: every other piece of the files, as their bytes) merged in the order they
 * were inserted (`id`), which is each file's order: the shipper inserts a file's lines in file order, so a
 * start entry's witness (the previous last line of its file) comes before it, and foreign text is
 * `not-an-entry` here as there. Findings name the table as their source and the row's `id` as their line.
 * The witness window defaults to 100000 rows here (other files' rows are interleaved with a file's own).
 *
 * @example
 * ```ts
 * const r = await verifyStore({ postgres: process.env.AUDIT_DB, publicKey: readFileSync('audit.pub') });
 * process.exitCode = r.exitCode;
 * ```
 */
export async function verifyStore(options: VerifyStoreOptions): Promise<VerifyResult> {
  if (options === null || typeof options !== 'object') throw new TypeError('verifyStore: options must be an object');
  const { postgres, fetchSize = 5000, witnessWindow = 100_000, ...rest } = options;
  if (!Number.isSafeInteger(fetchSize) || fetchSize < 1) throw new TypeError('verifyStore: bad fetchSize');
  const verifier = new Verifier({ ...rest, witnessWindow });
  const { pool, owned, table } = openPool(postgres, 'verifyStore');
  const names = tableNames(table, 'verifyStore');
  const source = table;
  try {
    const client = await pool.connect();
    // A cut session fails the FETCH under way; its 'error' event must not be an uncaught exception.
    const cut = () => {};
    client.on('error', cut);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const raw = await client.query('SELECT to_regclass($1) AS r', [names.raw]);
      if (raw.rows[0]?.r === null) {
        // Verifying the entries alone would call intact what the files' verification calls tampered.
        throw new Error(
          `it has no raw table ${names.raw} (made by an earlier pg-init), where the pieces of the files that are not entries are kept: run proxy-protocol-audit pg-init again`,
        );
      }
      // Both id indexes read in order and merged (a Merge Append: no sort of the table).
      await client.query(
        `DECLARE audit_rows NO SCROLL CURSOR FOR SELECT id, line, bytes, glued FROM (
  SELECT id, line, NULL::bytea AS bytes, false AS glued FROM ${names.table}
  UNION ALL SELECT id, NULL, bytes, glued FROM ${names.raw}) AS u ORDER BY id`,
      );
      const where = { source, line: 0 };
      // The next rows are fetched while these are verified (PostgreSQL and this process work at once).
      type Rows = { rows: Record<string, unknown>[] };
      const fetch = (): Promise<Rows> => client.query(`FETCH ${fetchSize} FROM audit_rows`);
      let next: Promise<Rows> | undefined = fetch();
      while (next) {
        const r: Rows = await next;
        next = r.rows.length < fetchSize ? undefined : fetch();
        // A failed read ahead is seen when it is awaited; until then it must not count as unhandled.
        next?.catch(() => {});
        for (const row of r.rows) {
          where.line = Number(row.id);
          verifier.line(row.bytes === null ? (row.line as string) : rawText(row.bytes as Buffer, row.glued === true), where);
        }
      }
      await client.query('COMMIT');
      client.removeListener('error', cut);
      client.release();
    } catch (err) {
      client.release(true);
      throw err;
    }
  } catch (err) {
    verifier.unreadable(source, err as Error);
  } finally {
    if (owned) await pool.end().catch(() => {});
  }
  return verifier.end();
}
