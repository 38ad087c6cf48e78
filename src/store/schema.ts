// The PostgreSQL schema of the audit store, created by `pg-init` (idempotent: every statement can run again).
import { checkOptions, type Known } from '../known-options.js';
import { ErrorCodes } from '../protocol/errors.js';
import { openPool, type PostgresOption } from './pg.js';
import { storeError } from './pg-errors.js';
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
 * The body of the trigger function that refuses UPDATE, DELETE and TRUNCATE. pg-init compares the stored
 * body with it byte for byte (see {@link checkSql}): a change here would have the next pg-init of every
 * existing store report the function as altered.
 */
function appendOnlyBody(base: string): string {
  return `
BEGIN
  RAISE EXCEPTION 'the audit log % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege', HINT = 'retention drops whole partitions: ${base}_drop_partitions(before)';
END `;
}

/**
 * The function `<base>_check_append_only(repair boolean DEFAULT false)`: one row (relation, trigger_name,
 * problem) for each table, partition or trigger function of the store whose append-only guard is not as
 * pg-init makes it — `missing`, `altered` (another definition or function) or `disabled` (also: enabled for
 * replicas only) — and, with `repair`, puts it back (the owner's right). The row trigger on the partitioned
 * table is cloned by PostgreSQL to every partition, present and future, and a clone cannot be dropped alone;
 * but it can be disabled on one partition, and TRUNCATE triggers are each partition's own (a partition made
 * by hand has none). Health checks may call it without `repair`.
 */
function checkSql(s: string, base: string): string {
  const t = `${s}."${base}"`;
  const raw = `${s}."${base}_raw"`;
  const fn = `${s}."${base}_append_only"()`;
  const body = appendOnlyBody(base);
  const create = `CREATE OR REPLACE FUNCTION ${fn} RETURNS trigger LANGUAGE plpgsql AS $f$${body}$f$`;
  // tgtype bits (PostgreSQL's pg_trigger.h): ROW 1, BEFORE 2, DELETE 8, UPDATE 16, TRUNCATE 32.
  return `CREATE OR REPLACE FUNCTION ${s}."${base}_check_append_only"(repair boolean DEFAULT false)
RETURNS TABLE(relation text, trigger_name text, problem text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $c$
DECLARE
  fn oid := to_regprocedure('${fn}');
  rel regclass;
  w record;
  tg record;
BEGIN
  IF to_regclass('${t}') IS NULL THEN
    RETURN;
  END IF;
  IF fn IS NULL OR (SELECT prosrc FROM pg_proc WHERE oid = fn) IS DISTINCT FROM $b$${body}$b$ THEN
    relation := '${fn}';
    trigger_name := NULL;
    problem := CASE WHEN fn IS NULL THEN 'missing' ELSE 'altered' END;
    IF repair THEN
      EXECUTE $d$${create}$d$;
      fn := to_regprocedure('${fn}');
    END IF;
    RETURN NEXT;
  END IF;
  FOR rel IN
    SELECT r FROM (
      SELECT '${t}'::regclass AS r, 0 AS o
      UNION ALL SELECT relid, 1 FROM pg_partition_tree('${t}') WHERE level > 0
      UNION ALL SELECT to_regclass('${raw}'), 2
    ) x WHERE r IS NOT NULL ORDER BY o, r::text
  LOOP
    FOR w IN
      SELECT * FROM (VALUES
        ('${base}_append_only', 27::int2, 'BEFORE UPDATE OR DELETE', 'FOR EACH ROW'),
        ('${base}_no_truncate', 34::int2, 'BEFORE TRUNCATE', 'FOR EACH STATEMENT')
      ) AS v(name, type, events, level)
    LOOP
      SELECT t.tgtype, t.tgenabled, t.tgfoid, t.tgqual IS NOT NULL AS qual, t.tgnargs, t.tgparentid
        INTO tg FROM pg_trigger t WHERE t.tgrelid = rel AND t.tgname = w.name;
      IF NOT FOUND THEN
        problem := 'missing';
      ELSIF tg.tgtype <> w.type OR tg.tgfoid IS DISTINCT FROM fn OR tg.qual OR tg.tgnargs <> 0 THEN
        problem := 'altered';
      ELSIF tg.tgenabled NOT IN ('O', 'A') THEN
        problem := 'disabled';
      ELSE
        CONTINUE;
      END IF;
      relation := rel::text;
      trigger_name := w.name;
      IF repair THEN
        IF problem = 'disabled' THEN
          EXECUTE format('ALTER TABLE %s ENABLE TRIGGER %I', rel, w.name);
        ELSE
          -- (a partition's clone is never altered alone: the partitioned table, repaired first, re-clones it)
          IF problem = 'altered' THEN
            EXECUTE format('DROP TRIGGER %I ON %s', w.name, rel);
          END IF;
          IF rel = '${t}'::regclass AND w.type = 27 THEN
            -- A partition's trigger of that name made by hand would stop the clone (and is not the guard).
            FOR tg IN SELECT relid FROM pg_partition_tree('${t}') WHERE level > 0 LOOP
              EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', w.name, tg.relid);
            END LOOP;
          END IF;
          EXECUTE format('CREATE TRIGGER %I %s ON %s %s EXECUTE FUNCTION ${fn}', w.name, w.events, rel, w.level);
        END IF;
      END IF;
      RETURN NEXT;
    END LOOP;
  END LOOP;
END $c$;`;
}

/**
 * The SQL `pg-init` runs, for reading or for a migration tool. `schema` is where the SECURITY DEFINER
 * functions look for the table (they must not trust the caller's search_path). Its first `SELECT … AS
 * repaired` lists the append-only triggers it found dropped, disabled or changed and put back.
 */
export function schemaSql(n: TableNames, schema: string, appRole?: string): string {
  const s = `"${schema}"`;
  const base = n.base;
  const t = `${s}."${base}"`;
  const def = `${s}."${base}_default"`;
  const raw = `${s}."${base}_raw"`;
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
-- The append-only guard of what exists already, put back wherever it was dropped, disabled or changed: what
-- this finds is pg-init's report. (What this run creates gets its guard from the second call, further down.)
${checkSql(s, base)}
SELECT relation, trigger_name, problem AS repaired FROM ${s}."${base}_check_append_only"(true);
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

-- The append-only triggers (and their function) of the tables made just now.
SELECT count(*) AS created FROM ${s}."${base}_check_append_only"(true);

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
  /**
   * What it found changed in the append-only guard of a table that existed, and put back: one line each,
   * `relation: trigger problem` (`missing`, `altered`, `disabled`), e.g.
   * `public.audit_log_202612: audit_log_no_truncate missing`. Empty when nothing was wrong.
   */
  repaired: string[];
}

/** One result per statement of a multi-statement query (node-postgres gives an array then). */
type Results = { rows: Record<string, unknown>[] } | { rows: Record<string, unknown>[] }[];

/**
 * Creates (or completes) the audit table: monthly partitions on `ts`, the auditor's indexes, append-only
 * triggers, the raw table (the pieces of the files that are not entries), the shippers' resume points, and
 * the grants of `appRole`. Safe to run again at any time (and concurrently: it takes an advisory lock); run
 * on a table an earlier version made, it adds what is missing, and it puts back an append-only trigger that
 * was dropped, disabled or changed on the table, any partition or the raw table (`repaired` says which).
 * Rejects with ERR_PROXY_AUDIT_STORE_ACCESS when PostgreSQL refuses the login or a right (wrong password,
 * no such role or database, permission denied, TLS required) and ERR_PROXY_AUDIT_STORE_UNAVAILABLE when it
 * cannot be reached; the message says what to do, `cause` is node-postgres' error.
 *
 * @example
 * ```ts
 * const r = await pgInit({ postgres: 'postgres://owner@db/ehr', appRole: 'ehr_app' });
 * for (const line of r.repaired) console.warn('append-only guard put back:', line);
 * ```
 */
export async function pgInit(options: PgInitOptions): Promise<PgInitResult> {
  checkOptions(options, { postgres: true, appRole: true, monthsAhead: true } satisfies Known<PgInitOptions>, 'pgInit');
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
    const results = (await pool.query(
      `${schemaSql(names, schema, appRole)}\nSELECT "${schema}"."${names.base}_add_partitions"(ARRAY[${months.map((m) => `'${m}'`).join(',')}]);`,
    )) as unknown as Results;
    const all = Array.isArray(results) ? results : [results];
    const found = all.find((x) => x.rows.some((row) => 'repaired' in row))?.rows ?? [];
    const p = await pool.query(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1`,
      [`"${schema}"."${names.base}"`],
    );
    return {
      table: `${schema}.${names.base}`,
      partitions: p.rows.map((row) => row.name as string),
      repaired: found.map(
        (row) => `${row.relation}: ${row.trigger_name === null ? 'function' : row.trigger_name} ${row.repaired}`,
      ),
    };
  } catch (err) {
    throw storeError(err, 'pg-init');
  } finally {
    if (owned) await pool.end().catch(() => {});
  }
}
