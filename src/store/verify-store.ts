// Verification from the store: the rows of the audit table fed to the same streaming core as files.

import { Verifier, type VerifyOptions, type VerifyResult } from '../audit/verifier.js';
import { VerifyCodes, VerifySeverities } from '../audit/verify-codes.js';
import { checkOptions, type Known } from '../known-options.js';
import { ErrorCodes } from '../protocol/errors.js';
import { CopyRows, wholeRows } from './copy-text.js';
import { loadCopyTo, openPool, type PgClient, type PostgresOption } from './pg.js';
import { storeError } from './pg-errors.js';
import { rawText } from './raw.js';
import { type TableNames, tableNames } from './table.js';

/** The second column of a row: what its third holds (see the COPY below). */
const ENTRY = 0; // the entry's line
const GLUED = 2; // a raw piece (hex) with another piece after it on its line; 1: one without

/**
 * The rows verification reads, in the files' order: id, what the row is ({@link ENTRY}, 1, or {@link GLUED}),
 * and the entry's line or the raw piece's bytes in hex (bytes that need not be UTF-8; hex whatever
 * `bytea_output` is). Rows keep their file (`file_id`) and their byte offset in it; files come oldest first
 * (by their earliest entry's time, then, for the files of one writer's chain written within one millisecond,
 * by its lowest sequence, then by the first row stored of them), as `verify FILE...` is given them, and each
 * file's rows in file order. Not id (insertion) order: a sidecar that was down across rotations, or files
 * shipped newest first, insert a chain's later lines before its earlier ones, which read in that order as
 * gaps and reordering that the files do not have. Rows stored before rows kept their place (no `file_id`)
 * come first, in id order. `inIdOrder`: the query for a store whose id order is already the files' order
 * (see idOrderIsFileOrder), which reads the id indexes merged instead of sorting.
 */
export function rowsSql(names: TableNames, inIdOrder = false): string {
  if (inIdOrder) {
    return `SELECT id, 0, line FROM ${names.table}
  UNION ALL SELECT id, CASE WHEN glued THEN 2 ELSE 1 END, encode(bytes, 'hex') FROM ${names.raw}
  ORDER BY id`;
  }
  return `WITH f AS (${filesSql(names)})
  SELECT r.id, r.kind, r.text FROM (
    SELECT id, 0 AS kind, line AS text, file_id, "offset" FROM ${names.table}
    UNION ALL SELECT id, CASE WHEN glued THEN 2 ELSE 1 END, encode(bytes, 'hex'), file_id, "offset" FROM ${names.raw}
  ) r LEFT JOIN f ON f.file_id = r.file_id
  ORDER BY r.file_id IS NOT NULL, f.first_ts NULLS LAST, f.first_sequence, f.first_id, r."offset", r.id`;
}

/** Every file of the store (rows without one as one group), with what orders the files and its rows' ids. */
function filesSql(names: TableNames): string {
  return `SELECT file_id, min(first_ts) AS first_ts, min(first_sequence) AS first_sequence, min(first_id) AS first_id,
      max(last_id) AS last_id FROM (
      SELECT file_id, min(ts) AS first_ts, min(sequence) AS first_sequence, min(id) AS first_id, max(id) AS last_id
        FROM ${names.table} GROUP BY file_id
      UNION ALL SELECT file_id, NULL, NULL, min(id), max(id) FROM ${names.raw} GROUP BY file_id
    ) x GROUP BY file_id`;
}

/**
 * Whether reading by id gives the files' order: each file's rows (inserted in file order by its shipper)
 * come after every row of the files before it. So it is when files were shipped oldest first, one after the
 * other, as `ship` and the shippers do; then the id indexes are read merged, with no sort of the table.
 */
async function idOrderIsFileOrder(client: PgClient, names: TableNames): Promise<boolean> {
  const r = await client.query(
    `SELECT first_id::text, last_id::text FROM (${filesSql(names)}) f
      ORDER BY file_id IS NOT NULL, first_ts NULLS LAST, first_sequence, first_id`,
  );
  let last = -1n;
  for (const row of r.rows as { first_id: string; last_id: string }[]) {
    if (BigInt(row.first_id) <= last) return false;
    last = BigInt(row.last_id);
  }
  return true;
}

/** Options of {@link verifyStore}: those of {@link VerifyOptions}, and where the store is. */
export interface VerifyStoreOptions extends VerifyOptions {
  /** A connection string or `{ connectionString?, pool?, table? }` (table default `"audit_log"`). */
  postgres: PostgresOption;
}

/**
 * Verifies every chain in the audit table, streaming (one COPY whose data is read as it is verified; memory
 * stays bounded whatever the table's size), with the verdicts and findings of files. It reads the entry rows
 * and the raw pieces (torn fragments, foreign text: every other piece of the files, as their bytes) merged in
 * the files' order (see {@link rowsSql}), whatever order they were shipped in, so a start entry's witness (the
 * previous last line of its file) comes before it, and foreign text is `not-an-entry` here as there. Findings name the table as their source and the row's `id` as their line.
 * The witness window defaults to 100000 rows here (other files' rows are interleaved with a file's own).
 * Needs `pg` and `pg-copy-streams` (optional peer dependencies).
 *
 * @example
 * ```ts
 * const r = await verifyStore({ postgres: process.env.AUDIT_DB, publicKey: readFileSync('audit.pub') });
 * process.exitCode = r.exitCode;
 * ```
 */
const KNOWN: Known<VerifyStoreOptions> = {
  postgres: true,
  hashKey: true,
  publicKey: true,
  maxFindings: true,
  witnessWindow: true,
};

export async function verifyStore(options: VerifyStoreOptions): Promise<VerifyResult> {
  if (options === null || typeof options !== 'object') throw new TypeError('verifyStore: options must be an object');
  checkOptions(options, KNOWN, 'verifyAuditLog');
  const { postgres, witnessWindow = 100_000, ...rest } = options;
  const verifier = new Verifier({ ...rest, witnessWindow });
  const copyTo = loadCopyTo();
  const { pool, owned, table } = openPool(postgres, 'verifyStore');
  const names = tableNames(table, 'verifyStore');
  const source = table;
  const found: string[] = [];
  try {
    const client = await pool.connect();
    // A cut session fails the COPY under way; its 'error' event must not be an uncaught exception.
    const cut = () => {};
    client.on('error', cut);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const exists = await client.query('SELECT to_regclass($1) AS t, to_regclass($2) AS r', [names.table, names.raw]);
      if (exists.rows[0]?.t === null) {
        throw Object.assign(
          new Error(`there is no audit table ${names.table}: run proxy-protocol-audit pg-init, or name the table (--table)`),
          {
            code: ErrorCodes.AUDIT_STORE_SCHEMA,
          },
        );
      }
      if (exists.rows[0]?.r === null) {
        // Verifying the entries alone would call intact what the files' verification calls tampered.
        throw Object.assign(
          new Error(
            `it has no raw table ${names.raw} (made by an earlier pg-init), where the pieces of the files that are not entries are kept: run proxy-protocol-audit pg-init again`,
          ),
          { code: ErrorCodes.AUDIT_STORE_SCHEMA },
        );
      }
      const unguarded = await guardProblems(client, names);
      const inIdOrder = await idOrderIsFileOrder(client, names);
      if (inIdOrder) {
        // In id order, the partitions' and the raw table's id indexes merged (a Merge Append). Without
        // statistics (a table just loaded, not yet analyzed) the planner sorted the whole table instead: the
        // entries' 200,002 rows, 596 ms and 164 MB written to disk against 294 ms (EXPLAIN ANALYZE).
        await client.query('SET LOCAL enable_sort = off');
      } else {
        // Otherwise the files' order is a sort of every row: room for it in memory rather than on disk where
        // the server allows (this transaction only).
        await client.query("SET LOCAL work_mem = '256MB'");
      }
      // The query's cost is over jit_above_cost for any sizeable table, and compiling bought nothing: 200,002
      // rows, EXPLAIN ANALYZE 601-2551 ms with JIT (32-59 ms of it compiling) against 562-639 ms without.
      await client.query('SET LOCAL jit = off');
      // One COPY of both tables rather than cursors: node-postgres made a row object per row, and 10,000 rows
      // in flight kept every scavenge copying their lines (bench/README.md, PostgreSQL store).
      const stream = client.query(copyTo(`COPY (${rowsSql(names, inIdOrder)}) TO STDOUT`));
      const where = { source, line: 0 };
      for await (const rows of wholeRows(stream)) {
        const row = new CopyRows(rows);
        while (row.next()) {
          where.line = row.integer();
          const kind = row.integer();
          const text = row.text();
          // line and bytes are NOT NULL in the schema; a table changed by hand must not pass for a blank line.
          if (text === null)
            throw Object.assign(new Error(`row ${where.line} has no line`), { code: ErrorCodes.AUDIT_STORE_SCHEMA });
          if (kind === ENTRY) verifier.line(text, where);
          else
            verifier.line(
              rawText(Buffer.from(text, 'hex'), kind === GLUED),
              kind === GLUED ? { source: where.source, line: where.line, glued: true } : where,
            );
        }
      }
      await client.query('COMMIT');
      client.removeListener('error', cut);
      client.release();
      found.push(...unguarded);
    } catch (err) {
      client.release(true);
      throw err;
    }
  } catch (err) {
    verifier.unreadable(source, storeError(err, 'verify'));
  } finally {
    if (owned) await pool.end().catch(() => {});
  }
  const result = verifier.end();
  // Notes about the store, not the chains: the verdict stays what the rows give.
  for (const message of found) {
    result.findings.push({
      code: VerifyCodes.STORE_UNGUARDED,
      severity: VerifySeverities[VerifyCodes.STORE_UNGUARDED],
      message,
      source,
    });
    result.findingsTotal++;
  }
  return result;
}

/**
 * What `<table>_check_append_only()` (made by pg-init) finds wrong with the append-only triggers, as
 * messages; nothing for a store from before it (an older pg-init: the next run adds it).
 */
async function guardProblems(client: PgClient, names: TableNames): Promise<string[]> {
  const fn = await client.query('SELECT to_regproc($1) IS NOT NULL AS f', [names.checkAppendOnly]);
  if (fn.rows[0]?.f !== true) return [];
  const r = await client.query(`SELECT relation, trigger_name, problem FROM ${names.checkAppendOnly}(false)`);
  return r.rows.map(
    (row) =>
      `${row.relation}: append-only ${row.trigger_name === null ? 'trigger function' : `trigger ${row.trigger_name}`} ${row.problem}: rows there could be changed without PostgreSQL refusing it; run pg-init, which puts it back`,
  );
}
