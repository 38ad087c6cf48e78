// The names of the objects `pg-init` creates for one audit table, quoted for SQL.

/** `[schema.]name`: letters, digits and underscores, so that every derived name stays a plain identifier. */
const NAME = /^(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]{0,39})$/;

export interface TableNames {
  /** The schema given, or undefined (then the connection's search_path decides). */
  schema: string | undefined;
  /** The table's own name, unquoted. */
  base: string;
  /** The table, quoted, qualified when a schema was given. */
  table: string;
  /** The resume points of the shippers. */
  cursor: string;
  /** The pieces of the files that are not entry rows, as their exact bytes (see raw.ts). */
  raw: string;
  /** Creates missing monthly partitions (SECURITY DEFINER: the app role needs no CREATE right). */
  addPartitions: string;
  /** Drops partitions older than a date (retention; the owner's only). */
  dropPartitions: string;
  /** The trigger function that refuses UPDATE, DELETE and TRUNCATE. */
  appendOnly: string;
  /** Lists (and with `true`, puts back) what is wrong with the append-only triggers (see schema.ts). */
  checkAppendOnly: string;
  /** The sequence of `id`. */
  idSeq: string;
}

const q = (s: string) => `"${s}"`;

/** Validates a table name (TypeError) and derives the names of its companions. */
export function tableNames(table: string, who: string): TableNames {
  const m = typeof table === 'string' ? NAME.exec(table) : null;
  if (!m) throw new TypeError(`${who}: table must be [schema.]name of letters, digits and _ (up to 40 characters)`);
  const schema = m[1];
  const base = m[2] as string;
  const qual = (n: string) => (schema ? `${q(schema)}.${q(n)}` : q(n));
  return {
    schema,
    base,
    table: qual(base),
    cursor: qual(`${base}_cursor`),
    raw: qual(`${base}_raw`),
    addPartitions: qual(`${base}_add_partitions`),
    dropPartitions: qual(`${base}_drop_partitions`),
    appendOnly: qual(`${base}_append_only`),
    checkAppendOnly: qual(`${base}_check_append_only`),
    idSeq: qual(`${base}_id_seq`),
  };
}
