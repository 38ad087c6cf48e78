// The auditor's query over the PostgreSQL store: answered from the indexes, each answered row's hash
// recomputed. (Whole chains are verified by `verify --postgres`, which reads the table in full.)

import { createHmac, hash } from 'node:crypto';
import { SEVERITY_ORDER, VERDICTS, VerifyCodes, type VerifyFinding, VerifySeverities } from '../audit/verify-codes.js';
import { checkOptions, type Known } from '../known-options.js';
import { type AuditEntry, view } from '../query/entry.js';
import { compileFilter, type QueryFilters } from '../query/filter.js';
import type { AuditQuery, QueryMatch, QueryOptions, QueryResult } from '../query/query.js';
import { openPool, type PostgresOption } from './pg.js';
import { storeQuerySql } from './query-sql.js';
import { tableNames } from './table.js';

/** Where a query reads: a PostgreSQL audit table, and rows per round trip. */
export interface StoreSource {
  /** A connection string or `{ connectionString?, pool?, table? }` (table default `"audit_log"`). */
  postgres: PostgresOption;
  /** Rows fetched per round trip. Default 1000. */
  fetchSize?: number;
}

/** Options of {@link queryStore}: those of a file query, and where the store is. */
export interface StoreQueryOptions extends QueryOptions, StoreSource {}

const SUFFIX_LENGTH = 76;

const KNOWN: Known<StoreQueryOptions> = {
  postgres: true,
  fetchSize: true,
  hashKey: true,
  publicKey: true,
  limit: true,
  now: true,
};

/** Whether the line's own hash recomputes: true, false, or undefined when it cannot be checked (HMAC without key, unknown alg). */
function rowHashOk(line: string, entry: AuditEntry, hashKey: Buffer | undefined): boolean | undefined {
  const audit = entry.audit as { alg?: unknown; hash?: unknown } | undefined;
  if (typeof audit !== 'object' || audit === null || typeof audit.hash !== 'string') return false;
  if (line.length < SUFFIX_LENGTH || !line.endsWith(`,"hash":"${audit.hash}"}}`)) return false;
  const covered = `${line.slice(0, line.length - SUFFIX_LENGTH)}}}`;
  if (audit.alg === 'sha256') return hash('sha256', covered, 'hex') === audit.hash;
  if (audit.alg === 'hmac-sha256')
    return hashKey ? createHmac('sha256', hashKey).update(covered).digest('hex') === audit.hash : undefined;
  return undefined;
}

/**
 * The auditor's query over the PostgreSQL store (tables made by `pg-init`): one parameterised statement
 * answered from its indexes ({@link storeQuerySql}), read through a server-side cursor (memory stays
 * bounded), each answered row's own hash recomputed. Whole chains — gaps, links, checkpoints, cut tails — are
 * verified by `verify --postgres` (`verifyAuditLog({ postgres })`), which reads the whole table: a query
 * answers in milliseconds from the indexes and says so in its result (finding `chains-not-verified`).
 *
 * @example
 * ```ts
 * const q = queryStore({ ip: '203.0.113.7', from: '24h' }, { postgres: process.env.AUDIT_DB ?? 'postgres://localhost/audit' });
 * for await (const m of q) console.log(m.fields.timestamp, m.fields.path, m.verified);
 * ```
 */
export function queryStore(filters: QueryFilters, options: StoreQueryOptions): AuditQuery {
  if (options === null || typeof options !== 'object') throw new TypeError('queryStore: options must be an object');
  checkOptions(options, KNOWN, 'queryStore');
  const { postgres, fetchSize = 1000, hashKey, limit, now = Date.now() } = options;
  if (!Number.isSafeInteger(fetchSize) || fetchSize < 1) throw new TypeError('queryStore: bad fetchSize');
  const filter = compileFilter(filters, now);
  const key = hashKey === undefined ? undefined : Buffer.from(hashKey);
  // (A pool connects on first use: one made here holds nothing until the query is iterated.)
  const { pool, owned, table } = openPool(postgres, 'queryStore');
  const names = tableNames(table, 'queryStore');
  const statement = storeQuerySql(names.table, filters, { limit, now });
  let settle!: (r: QueryResult) => void;
  const result = new Promise<QueryResult>((resolve) => {
    settle = resolve;
  });
  let started = false;

  async function* matches(): AsyncGenerator<QueryMatch> {
    if (started) throw new Error('queryStore: a query can be iterated only once');
    started = true;
    const findings: VerifyFinding[] = [];
    const chains = new Set<string>();
    const counts = { entries: 0, matched: 0, yielded: 0, unverifiedMatches: 0 };
    let complete = false;
    const add = (f: VerifyFinding) => {
      if (findings.length < 100) findings.push(f);
    };
    let total = 0;
    try {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        // One snapshot for the whole answer, read in batches through a cursor: memory stays bounded.
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        await client.query(`DECLARE audit_query NO SCROLL CURSOR FOR ${statement.text}`, statement.values);
        for (;;) {
          const r = await client.query(`FETCH ${fetchSize} FROM audit_query`);
          for (const row of r.rows) {
            const line = row.line as string;
            counts.entries++;
            let entry: AuditEntry;
            try {
              entry = JSON.parse(line) as AuditEntry;
            } catch {
              total++;
              add({
                code: VerifyCodes.NOT_AN_ENTRY,
                severity: 'tampered',
                message: 'a row whose line is not JSON',
                source: table,
              });
              continue;
            }
            const fields = view(entry);
            if (fields.chain !== undefined) chains.add(fields.chain);
            // Every row read is checked, also one its own text then leaves out (a line edited so that it no
            // longer matches what its columns say: verified rows are rows checked).
            const ok = rowHashOk(line, entry, key);
            // The SQL chose the row by its columns; the entry is judged by its own text, as in a file.
            const matched = filter.match(fields);
            if (ok === false || (ok === undefined && matched)) {
              total++;
              add(
                ok === false
                  ? {
                      code: VerifyCodes.HASH_MISMATCH,
                      severity: 'tampered',
                      message: 'hash mismatch: the row was edited',
                      source: table,
                    }
                  : {
                      code: VerifyCodes.HASH_KEY_MISSING,
                      severity: 'error',
                      message: `chain ${fields.chain}: the hashKey is needed to check its rows`,
                      source: table,
                    },
              );
            }
            if (!matched) continue;
            counts.matched++;
            if (ok !== true) counts.unverifiedMatches++;
            counts.yielded++;
            yield { line, entry, fields, source: table, lineNumber: 0, verified: ok === true };
          }
          if (r.rows.length < fetchSize) break;
        }
        await client.query('COMMIT');
        complete = true;
      } catch (err) {
        broken = err as Error;
        throw err;
      } finally {
        // A caller that stopped early leaves the transaction open: the connection is discarded, not reused.
        client.release(complete ? undefined : (broken ?? true));
      }
    } catch (err) {
      total++;
      add({
        code: VerifyCodes.UNREADABLE,
        severity: 'error',
        message: `${table} cannot be read: ${(err as Error).message}`,
        source: table,
      });
    } finally {
      if (owned) await pool.end().catch(() => {});
      settle(storeResult(findings, chains.size, counts, complete, total));
    }
  }
  return { result, filters: filter.description, sources: [table], [Symbol.asyncIterator]: matches };
}

/** A result of the same shape as a file query's, from the rows' own checks. */
function storeResult(
  findings: VerifyFinding[],
  chains: number,
  counts: { entries: number; matched: number; yielded: number; unverifiedMatches: number },
  complete: boolean,
  total: number,
): QueryResult {
  const worst = SEVERITY_ORDER.find((s) => findings.some((f) => f.severity === s)) ?? 'note';
  const { verdict, exitCode } = VERDICTS[worst];
  const first = findings.find((f) => f.severity === worst && worst !== 'note');
  findings.push({
    code: VerifyCodes.CHAINS_NOT_VERIFIED,
    severity: VerifySeverities[VerifyCodes.CHAINS_NOT_VERIFIED],
    message: 'each answered row’s hash was recomputed; the chains in the store are verified by verify --postgres',
  });
  const r: QueryResult = {
    ok: verdict === 'intact',
    verdict,
    exitCode,
    entries: counts.entries,
    chains,
    checkpoints: 0,
    fragments: 0,
    findings,
    findingsTotal: total + 1,
    chainSummaries: [],
    matched: counts.matched,
    yielded: counts.yielded,
    unverifiedMatches: counts.unverifiedMatches,
    complete,
  };
  if (first) {
    r.file = first.source;
    r.reason = first.message;
  }
  return r;
}
