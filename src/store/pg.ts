// node-postgres, loaded only when a PostgreSQL store is used: `pg` is an optional peer dependency, so that
// importing the package never requires it.
import { createRequire } from 'node:module';
import { checkOptions, type Known } from '../known-options.js';

import { ErrorCodes } from '../protocol/errors.js';
import { tableNames } from './table.js';

/** The part of a `pg.Pool` (or any compatible pool) the store uses. */
export interface PgPool {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
  /** A client of its own, for a transaction (verification reads through a cursor). */
  connect(): Promise<PgClient>;
  end(): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): unknown;
  removeListener?(event: 'error', listener: (err: Error) => void): unknown;
}

/** One connection of a {@link PgPool}. */
export interface PgClient {
  query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
  /** node-postgres runs a "submittable" (here pg-copy-streams' COPY FROM STDIN) and returns it. */
  query<T extends object>(submittable: T): T;
  release(err?: Error | boolean): void;
  /** Ends the session; with a statement under way, node-postgres cuts the connection (that statement fails). */
  end(): Promise<void>;
  /** A checked-out client emits 'error' when its connection fails (the pool listens only while it is idle). */
  on(event: 'error', listener: (err: Error) => void): unknown;
  removeListener(event: 'error', listener: (err: Error) => void): unknown;
}

/** pg-copy-streams' `from(sql)`: a writable stream of COPY data that a {@link PgClient} runs. */
export type CopyFrom = (sql: string) => NodeJS.WritableStream & { rowCount: number };

/** pg-copy-streams' `to(sql)`: a readable stream of the COPY data (bytes) of `COPY … TO STDOUT`, run by a {@link PgClient}. */
export type CopyTo = (sql: string) => NodeJS.ReadableStream & AsyncIterable<Buffer>;

/** Where the store lives: a connection string, or an existing pool, and the table name. */
export type PostgresOption =
  | string
  | {
      /** `postgres://user:password@host:port/db?sslmode=…` (or libpq's environment variables when absent). */
      connectionString?: string;
      /**
       * An existing `pg.Pool` (or compatible: for shipping and verifying, its clients must run pg-copy-streams'
       * COPY, as node-postgres' do): used as is and not ended by the store.
       */
      pool?: PgPool;
      /** The table created by `pg-init`. Default `"audit_log"`. */
      table?: string;
      /** Extra `pg.Pool` settings when the store makes its own pool (ssl, password function, max, …). */
      poolConfig?: Record<string, unknown>;
    };

// A require that works from the CommonJS build and from the ESM wrappers that re-export it.
const load = createRequire(__filename);

/** `require('pg')`, or an error with code ERR_PROXY_AUDIT_PG_MISSING saying how to install it. */
export function loadPg(): { Pool: new (config: Record<string, unknown>) => PgPool } {
  try {
    return load('pg');
  } catch (cause) {
    throw Object.assign(new Error('the PostgreSQL store needs node-postgres: npm install pg', { cause }), {
      code: ErrorCodes.AUDIT_PG_MISSING,
    });
  }
}

/**
 * `require('pg-copy-streams').from`, or an error with code ERR_PROXY_AUDIT_PG_MISSING saying how to install it.
 * The shipper sends its batches with COPY, which node-postgres itself does not offer.
 */
export function loadCopyFrom(): CopyFrom {
  try {
    return (load('pg-copy-streams') as { from: CopyFrom }).from;
  } catch (cause) {
    throw Object.assign(new Error('shipping to PostgreSQL needs pg-copy-streams: npm install pg pg-copy-streams', { cause }), {
      code: ErrorCodes.AUDIT_PG_MISSING,
    });
  }
}

/**
 * `require('pg-copy-streams').to`, or an error with code ERR_PROXY_AUDIT_PG_MISSING saying how to install it.
 * Verification from the store reads the table with COPY TO STDOUT.
 */
export function loadCopyTo(): CopyTo {
  try {
    return (load('pg-copy-streams') as { to: CopyTo }).to;
  } catch (cause) {
    throw Object.assign(new Error('verifying from PostgreSQL needs pg-copy-streams: npm install pg pg-copy-streams', { cause }), {
      code: ErrorCodes.AUDIT_PG_MISSING,
    });
  }
}

const KNOWN: Known<Exclude<PostgresOption, string>> = { connectionString: true, pool: true, table: true, poolConfig: true };

/**
 * Checks a {@link PostgresOption}'s shape (its keys, their types, the table's name) without connecting, so a
 * mistake is reported under the name of the call the user made.
 */
export function checkPostgres(option: PostgresOption, who: string): void {
  if (typeof option === 'string') {
    if (option === '') throw new TypeError(`${who}: postgres must be a connection string or { connectionString, pool, table }`);
    return;
  }
  if (option === null || typeof option !== 'object') {
    throw new TypeError(`${who}: postgres must be a connection string or { connectionString, pool, table }`);
  }
  checkOptions(option, KNOWN, `${who}: postgres`);
  const { connectionString, pool, table = 'audit_log' } = option;
  if (pool !== undefined && (pool === null || typeof pool !== 'object' || typeof pool.query !== 'function')) {
    throw new TypeError(`${who}: postgres.pool must be a pg.Pool`);
  }
  if (connectionString !== undefined && typeof connectionString !== 'string') {
    throw new TypeError(`${who}: postgres.connectionString must be a string`);
  }
  tableNames(table, who);
}

/** Resolves a {@link PostgresOption} to a pool (made here, or the caller's), whether we own it, and the table. */
export function openPool(option: PostgresOption, who: string): { pool: PgPool; owned: boolean; table: string } {
  checkPostgres(option, who);
  if (typeof option === 'string') return { pool: makePool({ connectionString: option }), owned: true, table: 'audit_log' };
  const { connectionString, pool, table = 'audit_log', poolConfig = {} } = option;
  if (pool) return { pool, owned: false, table };
  return {
    pool: makePool({ ...poolConfig, ...(connectionString === undefined ? {} : { connectionString }) }),
    owned: true,
    table,
  };
}

function makePool(config: Record<string, unknown>): PgPool {
  const { Pool } = loadPg();
  // An idle client whose server went away emits 'error' on the pool; without a listener that would be an
  // uncaught exception in the application. Failures surface on the next query instead.
  // allowExitOnIdle: an idle pool never keeps the application's process alive (the file keeps what is unshipped).
  const pool = new Pool({ max: 2, connectionTimeoutMillis: 10_000, allowExitOnIdle: true, ...config });
  pool.on('error', () => {});
  // node-postgres hands a client over (and stops listening to it) from inside its socket's read; an error
  // message in the same read (the server ending the session right then) would be emitted with no listener
  // before the caller could add one. Every client of our own pool is listened to for its whole life; its
  // failures still reach the query under way.
  (pool as unknown as { on(e: 'connect', l: (c: PgClient) => void): unknown }).on('connect', (client) => {
    client.on('error', () => {});
  });
  return pool;
}
