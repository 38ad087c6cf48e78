// Verification from the store: the rows of the audit table fed to the same streaming core as files.
import { type LineSource, Verifier, type VerifyOptions, type VerifyResult } from '../audit/verifier.js';
import { openPool, type PgClient, type PostgresOption } from './pg.js';
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
      const exists = await client.query('SELECT to_regclass($1) AS r', [names.raw]);
      if (exists.rows[0]?.r === null) {
        // Verifying the entries alone would call intact what the files' verification calls tampered.
        throw new Error(
          `it has no raw table ${names.raw} (made by an earlier pg-init), where the pieces of the files that are not entries are kept: run proxy-protocol-audit pg-init again`,
        );
      }
      // Two cursors in id order, merged here: the entries' rows are read as before, the raw pieces (rare)
      // from their own index. One UNION ALL cursor (a Merge Append, no sort) with the pieces' columns beside
      // every row verified 200,002 request rows at 0.87-0.98x of the entries' cursor alone, these two
      // cursors at 1.13-1.18x (three warm rounds each, head to head: bench/README.md, PostgreSQL store).
      await client.query(`DECLARE audit_rows NO SCROLL CURSOR FOR SELECT id, line FROM ${names.table} ORDER BY id`);
      await client.query(`DECLARE audit_raw NO SCROLL CURSOR FOR SELECT id, bytes, glued FROM ${names.raw} ORDER BY id`);
      const where = { source, line: 0 };
      const raw = new RawPieces(client, fetchSize);
      await raw.advance();
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
          const id = Number(row.id);
          if (raw.nextId < id) await raw.feed(verifier, where, id);
          where.line = id;
          verifier.line(row.line as string, where);
        }
      }
      await raw.feed(verifier, where, Number.POSITIVE_INFINITY);
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

/** The raw pieces (cursor `audit_raw`) in id order, fetched a batch at a time. */
class RawPieces {
  /** The id of the next piece; Infinity after the last. */
  nextId = 0;
  private rows: Record<string, unknown>[] = [];
  private at = 0;
  private done = false;

  constructor(
    private readonly client: PgClient,
    private readonly fetchSize: number,
  ) {}

  /** Moves to the next piece (fetching the next batch when this one is used up). */
  async advance(): Promise<void> {
    if (this.at === this.rows.length && !this.done) {
      this.rows = (await this.client.query(`FETCH ${this.fetchSize} FROM audit_raw`)).rows;
      this.at = 0;
      this.done = this.rows.length < this.fetchSize;
    }
    this.nextId = this.at < this.rows.length ? Number(this.rows[this.at]?.id) : Number.POSITIVE_INFINITY;
  }

  /** Verifies the pieces whose id is below `before`, as the lines they are in the file. */
  async feed(verifier: Verifier, where: LineSource, before: number): Promise<void> {
    while (this.nextId < before) {
      const p = this.rows[this.at++] as Record<string, unknown>;
      where.line = this.nextId;
      verifier.line(rawText(p.bytes as Buffer, p.glued === true), where);
      await this.advance();
    }
  }
}
