// The auditor's filters as one parameterised SQL statement over the audit table, written so that PostgreSQL
// answers from the indexes pg-init creates: (client_ip, ts), (user_id, ts), (path text_pattern_ops, ts), and
// BRIN on ts.
import { compileFilter, type QueryFilters } from '../query/filter.js';
import { PRESETS } from '../trust.js';

/** A statement and its parameters, for `pool.query(text, values)`. */
export interface SqlStatement {
  text: string;
  values: unknown[];
}

/** Options of {@link storeQuerySql}. */
export interface StoreQuerySqlOptions {
  /** At most this many rows. Default: no limit. */
  limit?: number;
  /** "Now" for relative times. Default `Date.now()`. */
  now?: number;
}

/** `LIKE` treats `%`, `_` and its escape `\` specially: a prefix is matched literally. */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * The SQL for `filters` over `table` (a quoted, possibly schema-qualified name, as `tableNames` gives it):
 * `SELECT line … ORDER BY ts, chain, sequence`. Every value is a parameter; the filters are checked as
 * {@link compileFilter} checks them (a `TypeError` for a bad one). Addresses and CIDRs become `client_ip =` /
 * `client_ip <<=` (inet containment, which PostgreSQL turns into a range scan of the B-tree), a path prefix a
 * `LIKE 'prefix%'` (the text_pattern_ops index), times `ts >=` / `ts <`.
 *
 * @example
 * ```ts
 * const { text, values } = storeQuerySql('"audit_log"', { ip: '203.0.113.7', from: '7d' });
 * const { rows } = await pool.query(text, values);
 * ```
 */
export function storeQuerySql(table: string, filters: QueryFilters = {}, options: StoreQuerySqlOptions = {}): SqlStatement {
  const { limit, now = Date.now() } = options;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0))
    throw new TypeError('limit must be a non-negative integer');
  // The same validation and normalisation as a query over files (relative times made absolute).
  const f = compileFilter(filters, now).description;
  const values: unknown[] = [];
  const param = (v: unknown, type: string) => {
    values.push(v);
    return `$${values.length}::${type}`;
  };
  const where: string[] = [];
  const any = (column: string, vs: string[] | undefined, type = 'text') => {
    if (vs) where.push(`${column} = ANY(${param(vs, `${type}[]`)})`);
  };
  const addresses = (column: string, vs: string[] | undefined, not = false) => {
    if (!vs) return;
    const ranges = vs.flatMap((v) => (Object.hasOwn(PRESETS, v) ? (PRESETS[v] as readonly string[]) : [v]));
    // One comparison each, OR-ed: each is an index range scan (a bitmap OR), which `= ANY` of CIDRs is not.
    const terms = ranges.map((r) => (r.includes('/') ? `${column} <<= ${param(r, 'inet')}` : `${column} = ${param(r, 'inet')}`));
    const either = terms.length === 1 ? (terms[0] as string) : `(${terms.join(' OR ')})`;
    // NOT over a NULL is NULL: a row without a client address matches neither `ip` nor `notIp`, as in files.
    where.push(not ? `NOT ${terms.length === 1 ? `(${either})` : either}` : either);
  };
  addresses('client_ip', f.ip);
  addresses('client_ip', f.notIp, true);
  addresses('peer_ip', f.peer);
  any('user_id', f.user);
  if (f.path) {
    // Whole segments, as underPath: the path itself, or below it (`p/…`).
    const terms = f.path.map((p) =>
      p.endsWith('/')
        ? `path LIKE ${param(likePrefix(p), 'text')}`
        : `(path = ${param(p, 'text')} OR path LIKE ${param(likePrefix(`${p}/`), 'text')})`,
    );
    where.push(terms.length === 1 ? (terms[0] as string) : `(${terms.join(' OR ')})`);
  }
  any('route', f.route);
  any('action', f.action);
  any('outcome', f.outcome);
  if (f.status) {
    const exact = f.status.filter((s) => /^\d{3}$/.test(s)).map(Number);
    const terms = exact.length > 0 ? [`status = ANY(${param(exact, 'integer[]')})`] : [];
    for (const s of f.status.filter((p) => !/^\d{3}$/.test(p))) {
      const lo = Number(s.toLowerCase().replace(/x/g, '0'));
      const hi = Number(s.toLowerCase().replace(/x/g, '9'));
      // 4xx and 40x are ranges; a pattern with a digit after an x (4x3) is not, and is matched as text.
      if (/^\d+x*$/i.test(s)) terms.push(`status BETWEEN ${param(lo, 'integer')} AND ${param(hi, 'integer')}`);
      else terms.push(`status::text LIKE ${param(s.toLowerCase().replace(/x/g, '_'), 'text')}`);
    }
    where.push(terms.length === 1 ? (terms[0] as string) : `(${terms.join(' OR ')})`);
  }
  if (f.from) where.push(`ts >= ${param(f.from[0], 'timestamptz')}`);
  if (f.to) where.push(`ts < ${param(f.to[0], 'timestamptz')}`);
  let text = `SELECT line FROM ${table}`;
  if (where.length > 0) text += ` WHERE ${where.join(' AND ')}`;
  text += ' ORDER BY ts, chain, sequence';
  if (limit !== undefined) text += ` LIMIT ${param(limit, 'bigint')}`;
  return { text, values };
}
