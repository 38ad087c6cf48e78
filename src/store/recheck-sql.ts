// The statements a shipper re-checks a batch with, after a unique violation told it that the store holds
// some of its rows already (a resend, a copy of the file, another shipper of it): which rows are held, and
// which held rows differ from the ones their lines make.
import { createHash } from 'node:crypto';
import { COLUMNS } from './row.js';

/** The columns a held row must share with a row of the same key to be that row: the batch's first ones. */
const COMPARED: readonly (readonly [column: string, type: string])[] = [
  ...COLUMNS.map(([, c, type]) => [c, type] as const),
  ['line', 'text'],
];

/**
 * Each given row is looked up by the table's unique key (chain, sequence, ts) through its index, one
 * partition each (`LATERAL … LIMIT 1`, pruned at run time by `ts`). As a plain join of a batch's 5,000 keys,
 * PostgreSQL 15 chose a merge join over a sort of the whole table (every partition read, and sorted on disk),
 * so that a re-check took longer the larger the table: 50,000 entries shipped again after their resume point
 * was lost took 9.8x–10.1x the time of shipping them the first time, on a table of only those rows; 1.47x–1.54x
 * with these statements (bench/recheck.mjs, bench/README.md 2026-12-03 (evening)).
 */
function byKey(table: string, cols: string, seq: string, ts: string): string {
  return `JOIN LATERAL (SELECT ${cols} FROM ${table} t WHERE t.chain = u.chain AND t.sequence = ${seq} AND t.ts = ${ts} LIMIT 1) t ON true`;
}

/**
 * `held`: the rows of a batch (1-based; parameters: chains, sequences, timestamps, offsets, the file's id)
 * whose key the table holds already, whether the held row came from the same place (that file at the row's
 * offset), else where from and its line. `differing`: the rows (1-based, of those given; parameters:
 * {@link differingValues}) the table holds under their key with other values, each value read by its
 * column's type as COPY would read it.
 */
export function recheckSql(table: string): { held: string; differing: string } {
  const held = `SELECT u.i, coalesce(t.file_id = $5 AND t."offset" = u."offset", false) AS here, t.file_id,
    CASE WHEN t.file_id = $5 AND t."offset" = u."offset" THEN NULL ELSE t.line END AS line
  FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::bigint[]) WITH ORDINALITY AS u (chain, sequence, ts, "offset", i)
  ${byKey(table, 't.file_id, t."offset", t.line', 'u.sequence', 'u.ts')}`;
  const given = COMPARED.map((_, k) => `$${k + 1}::text[]`).join(', ');
  const names = COMPARED.map(([c]) => `"${c}"`).join(', ');
  // The line by its SHA-256 (given in hex): sent whole (the client encodes each as an array element, and
  // PostgreSQL parses it again), the lines made most of this statement's time: 3.8 s for the 50,000 entries
  // above against 0.9–1.4 s by digest.
  const typed = (p: 't' | 'u') =>
    COMPARED.map(([c, type]) => {
      if (c === 'line') return p === 'u' ? `decode(u."line", 'hex')` : `sha256(convert_to(t."line", 'UTF8'))`;
      return p === 'u' ? `u."${c}"::${type}` : `t."${c}"`;
    }).join(', ');
  const differing = `SELECT u.i FROM unnest(${given}) WITH ORDINALITY AS u (${names}, i)
  ${byKey(table, COMPARED.map(([c]) => `t."${c}"`).join(', '), 'u.sequence::bigint', 'u.ts::timestamptz')}
  WHERE (${typed('t')}) IS DISTINCT FROM (${typed('u')})`;
  return { held, differing };
}

/** The parameters of `differing` for rows given as their COPY fields (see copyFields): one array per column. */
export function differingValues(rows: readonly (readonly (string | null)[])[]): (string | null)[][] {
  const values: (string | null)[][] = COMPARED.map(() => []);
  const last = COMPARED.length - 1;
  for (const fields of rows) {
    for (let c = 0; c < last; c++) (values[c] as (string | null)[]).push(fields[c] ?? null);
    const line = fields[last];
    (values[last] as (string | null)[]).push(line == null ? null : createHash('sha256').update(line, 'utf8').digest('hex'));
  }
  return values;
}
