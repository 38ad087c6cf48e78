// The PostgreSQL schema of the audit store, created by `pg-init` (idempotent: every statement can run again).
import { ErrorCodes } from '../protocol/errors.js';
import { openPool, type PostgresOption } from './pg.js';
import { type TableNames, tableNames } from './table.js';

/** Options of {@link pgInit}. */
export interface PgInitOptions {
  /** Where: a connection string or `{ connectionString?, pool?, table? }` (table default `"audit_log"`). */
  postgres: PostgresOption;
  /**
   * The role the application (its shipper) connects as. It is granted INSERT and SELECT on the table and
   * what shipping needs besides (the resume points, new monthly partitions), and nothing that changes a row.
   * Default: none (grant it yourself).
   */
  appRole?: string;
  /** Monthly partitions to create ahead of the current month. Default 2 (later ones are made on demand). */
  monthsAhead?: number;
}

const ROLE = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

/**
 * The SQL `pg-init` runs, for reading or for a migration tool. `schema` is where the SECURITY DEFINER
 * functions look for the table (they must not trust the caller's search_path).
 */
export function schemaSql(n: TableNames, schema: string, appRole?: string): string {
  const s = `"${schema}"`;
  const base = n.base;
  const t = `${s}."${base}"`;
  const def = `${s}."${base}_default"`;
  const raw = `${s}."${base}_raw"`;
  // The triggers that refuse UPDATE and DELETE of a table's rows (a partitioned table's reach its partitions)
  // and TRUNCATE of the table (which each partition needs of its own).
  const refuse = (table: string, rows: boolean) => {
    const update = `DROP TRIGGER IF EXISTS "${base}_append_only" ON ${table};
CREATE TRIGGER "${base}_append_only" BEFORE UPDATE OR DELETE ON ${table}
  FOR EACH ROW EXECUTE FUNCTION ${s}."${base}_append_only"();
`;
    return `${rows ? update : ''}DROP TRIGGER IF EXISTS "${base}_no_truncate" ON ${table};
CREATE TRIGGER "${base}_no_truncate" BEFORE TRUNCATE ON ${table}
  FOR EACH STATEMENT EXECUTE FUNCTION ${s}."${base}_append_only"();`;
  };
  const grants = appRole
    ? `
GRANT USAGE ON SCHEMA ${s} TO "${appRole}";
GRANT SELECT, INSERT ON ${t}, ${raw} TO "${appRole}";
REVOKE UPDATE, DELETE, TRUNCATE ON ${t}, ${raw} FROM "${appRole}";
GRANT USAGE ON SEQUENCE ${s}."${base}_id_seq" TO "${appRole}";
GRANT SELECT, INSERT, UPDATE ON ${s}."${base}_cursor" TO "${appRole}";
GRANT EXECUTE ON FUNCTION ${s}."${base}_add_partitions"(text[]) TO "${appRole}";`
    : '';
  return `
SELECT pg_advisory_xact_lock(hashtext('proxy-protocol-audit ${t}'));
CREATE SEQUENCE IF NOT EXISTS ${s}."${base}_id_seq" AS bigint;
CREATE TABLE IF NOT EXISTS ${t} (
  id bigint NOT NULL DEFAULT nextval('${s}."${base}_id_seq"'),
  chain text NOT NULL,
  sequence bigint NOT NULL,
  ts timestamptz NOT NULL,
  action text,
  outcome text,
  client_ip inet,
  peer_ip inet,
  user_id text,
  method text,
  path text,
  route text,
  status integer,
  host text,
  service text,
  hash text,
  source text,
  shipped_at timestamptz NOT NULL DEFAULT now(),
  line text NOT NULL,
  file_id text,
  "offset" bigint,
  CONSTRAINT "${base}_entry" UNIQUE (chain, sequence, ts)
) PARTITION BY RANGE (ts);
-- Where each entry's line was read (the file as inode and first line, and the byte offset): a resend (the same
-- place) is told from a second occurrence of a key (another place), and a resume point is checked against it.
-- Rows of earlier versions have none (NULL).
ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS file_id text, ADD COLUMN IF NOT EXISTS "offset" bigint;
ALTER SEQUENCE ${s}."${base}_id_seq" OWNED BY ${t}.id;
COMMENT ON TABLE ${t} IS 'proxy-protocol-audit entries: one row per entry of the writers'' files; line is the entry byte for byte (its hash covers it without the hash member). Every other piece of the files is in ${base}_raw. Append-only; retention drops whole monthly partitions.';
CREATE TABLE IF NOT EXISTS ${def} PARTITION OF ${t} DEFAULT;
CREATE INDEX IF NOT EXISTS "${base}_client_ip" ON ${t} (client_ip, ts);
CREATE INDEX IF NOT EXISTS "${base}_user_id" ON ${t} (user_id, ts);
CREATE INDEX IF NOT EXISTS "${base}_path" ON ${t} (path text_pattern_ops, ts);
-- BRIN for time: rows arrive roughly in time order, and a BRIN index costs next to nothing to keep (200,000
-- rows of bench/store.mjs: 5.1 s with B-trees on ts and id, 3.4 s with BRIN on both). id keeps a B-tree:
-- verification reads the table in id order, and without one PostgreSQL would sort the whole table first.
CREATE INDEX IF NOT EXISTS "${base}_ts" ON ${t} USING brin (ts);
CREATE INDEX IF NOT EXISTS "${base}_id" ON ${t} (id);

CREATE TABLE IF NOT EXISTS ${s}."${base}_cursor" (
  source text NOT NULL,
  file_id text NOT NULL,
  path text NOT NULL,
  "offset" bigint NOT NULL,
  done boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source, file_id)
);
-- Every piece of the files that is not an entry row (torn fragments, foreign text, entries the table cannot
-- hold), as its exact bytes: verification reads both tables merged by id, which the shipper gives rows and
-- pieces in file order. A piece is the same piece when its file (inode and first line), offset and bytes
-- are: a resend leaves it as it is. Not partitioned (its unique key holds no time), and not removed by
-- retention: its rows are few, and they are the evidence of damage.
CREATE TABLE IF NOT EXISTS ${raw} (
  id bigint NOT NULL DEFAULT nextval('${s}."${base}_id_seq"') PRIMARY KEY,
  file_id text NOT NULL,
  "offset" bigint NOT NULL,
  length bigint NOT NULL,
  digest text NOT NULL,
  bytes bytea NOT NULL,
  glued boolean NOT NULL DEFAULT false,
  reason text NOT NULL,
  detail text,
  path text NOT NULL,
  source text NOT NULL,
  shipped_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT "${base}_raw_piece" UNIQUE (file_id, "offset", digest)
);
COMMENT ON TABLE ${raw} IS 'proxy-protocol-audit: every piece of the writers'' files that is not a row of ${base} (torn fragments, foreign text, entries the table cannot hold), bytes exactly as in the file at "offset" of file_id (inode:first line); length is its length there (more than the bytes only for a line over 16 MiB, kept as the 16 MiB verification reads); glued: another piece follows on the same line. Append-only.';

-- The app role may update the resume points (its shipper moves them), so shippers do not take them on trust:
-- a resume point is used only where the store holds the line before it at its place (src/store/shipper.ts).
COMMENT ON TABLE ${s}."${base}_cursor" IS 'proxy-protocol-audit shippers: how far each spool file (source host:path, inode and first line) is in ${t}.';

CREATE OR REPLACE FUNCTION ${s}."${base}_append_only"() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  RAISE EXCEPTION 'the audit log % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege', HINT = 'retention drops whole partitions: ${base}_drop_partitions(before)';
END $f$;
${refuse(t, true)}
${refuse(def, false)}
${refuse(raw, true)}

-- Monthly partitions (UTC months) named ${base}_YYYYMM, made when a shipper first sends a line of that month.
-- A month whose rows already sit in the default partition is left there (only lines with timestamps outside
-- years 1000-9999, or that are no time, go there by design).
CREATE OR REPLACE FUNCTION ${s}."${base}_add_partitions"(months text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET "TimeZone" = 'UTC' AS $f$
DECLARE
  m text;
  part text;
  lo timestamptz;
BEGIN
  FOREACH m IN ARRAY months LOOP
    CONTINUE WHEN m IS NULL OR m !~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])$';
    part := '${base}_' || replace(m, '-', '');
    CONTINUE WHEN to_regclass(format('%I.%I', '${schema}', part)) IS NOT NULL;
    PERFORM pg_advisory_xact_lock(hashtext('proxy-protocol-audit partitions ${t}'));
    CONTINUE WHEN to_regclass(format('%I.%I', '${schema}', part)) IS NOT NULL;
    lo := (m || '-01 00:00:00+00')::timestamptz;
    CONTINUE WHEN EXISTS (SELECT 1 FROM ${def} WHERE ts >= lo AND ts < lo + interval '1 month');
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF ${t} FOR VALUES FROM (%L) TO (%L)', '${schema}', part, lo, lo + interval '1 month');
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION ${s}."${base}_append_only"()',
      '${base}_no_truncate', '${schema}', part);
  END LOOP;
END $f$;
REVOKE ALL ON FUNCTION ${s}."${base}_add_partitions"(text[]) FROM PUBLIC;

-- Retention: drops every monthly partition that ends on or before \`before\` (for six years:
-- SELECT ${base}_drop_partitions(now() - interval '6 years')). Whole partitions only: no row is ever deleted.
CREATE OR REPLACE FUNCTION ${s}."${base}_drop_partitions"(before timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET "TimeZone" = 'UTC' AS $f$
DECLARE
  part text;
  m text;
BEGIN
  FOR part IN
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = '${t}'::regclass AND c.relname ~ ('^${base}_[0-9]{6}$') ORDER BY c.relname
  LOOP
    m := right(part, 6);
    IF (left(m, 4) || '-' || right(m, 2) || '-01 00:00:00+00')::timestamptz + interval '1 month' <= before THEN
      EXECUTE format('DROP TABLE %I.%I', '${schema}', part);
      RETURN NEXT part;
    END IF;
  END LOOP;
END $f$;
REVOKE ALL ON FUNCTION ${s}."${base}_drop_partitions"(timestamptz) FROM PUBLIC;
${grants}
`;
}

/** What {@link pgInit} did. */
export interface PgInitResult {
  /** The table, schema-qualified. */
  table: string;
  /** The monthly partitions that exist now. */
  partitions: string[];
}

/**
 * Creates (or completes) the audit table: monthly partitions on `ts`, the auditor's indexes, append-only
 * triggers, the raw table (the pieces of the files that are not entries), the shippers' resume points, and
 * the grants of `appRole`. Safe to run again at any time (and concurrently: it takes an advisory lock); run
 * on a table an earlier version made, it adds what is missing.
 *
 * @example
 * ```ts
 * await pgInit({ postgres: 'postgres://owner@db/ehr', appRole: 'ehr_app' });
 * ```
 */
export async function pgInit(options: PgInitOptions): Promise<PgInitResult> {
  const { postgres, appRole, monthsAhead = 2 } = options ?? ({} as PgInitOptions);
  if (appRole !== undefined && (typeof appRole !== 'string' || !ROLE.test(appRole))) throw new TypeError('pgInit: bad appRole');
  if (!Number.isInteger(monthsAhead) || monthsAhead < 0 || monthsAhead > 120) throw new TypeError('pgInit: bad monthsAhead');
  const { pool, owned, table } = openPool(postgres, 'pgInit');
  const names = tableNames(table, 'pgInit');
  try {
    const r = await pool.query('SELECT current_schema() AS s');
    const schema = names.schema ?? (r.rows[0]?.s as string | null);
    if (!schema || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(schema))
      throw Object.assign(
        new Error(
          'pgInit: no schema to create the table in (empty search_path, or a name that needs quoting: give table as schema.name)',
        ),
        { code: ErrorCodes.AUDIT_STORE_SCHEMA },
      );
    const months: string[] = [];
    const now = new Date();
    for (let i = 0; i <= monthsAhead; i++) {
      const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1));
      months.push(d.toISOString().slice(0, 7));
    }
    // One simple-protocol query: PostgreSQL runs its statements as one transaction, so a failure leaves nothing half made.
    await pool.query(
      `${schemaSql(names, schema, appRole)}\nSELECT "${schema}"."${names.base}_add_partitions"(ARRAY[${months.map((m) => `'${m}'`).join(',')}]);`,
    );
    const p = await pool.query(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1`,
      [`"${schema}"."${names.base}"`],
    );
    return { table: `${schema}.${names.base}`, partitions: p.rows.map((row) => row.name as string) };
  } finally {
    if (owned) await pool.end();
  }
}
