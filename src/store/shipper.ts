// Shipping an audit file to PostgreSQL: the file is the durable spool, the table is the collected evidence.

import { createHash, randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { promises as fsp, statSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { finished } from 'node:stream/promises';
import { MAX_LINE_BYTES } from '../audit/line-reader.js';
import { checkOptions, type Known } from '../known-options.js';
import { ErrorCodes } from '../protocol/errors.js';
import { type CopyBatch, copyFields, copyKeys, copyRows } from './encode.js';
import { Handoff, type HandoffWriter } from './handoff.js';
import { type CopyFrom, loadCopyFrom, openPool, type PgClient, type PgPool, type PostgresOption } from './pg.js';
import { storeError } from './pg-errors.js';
import { type RawPiece, RawReasons, rawInsertSql, rawLine, rawPiece, rawValues } from './raw.js';
import { differingValues, recheckSql } from './recheck-sql.js';
import { COLUMNS } from './row.js';
import { type Chunk, SpoolFile } from './spool.js';
import { type TableNames, tableNames } from './table.js';

/** Options of {@link PostgresShipper}. */
export interface ShipperOptions {
  /** The audit file to ship (the spool). */
  filename: string;
  /** Where: a connection string or `{ connectionString?, pool?, table?, poolConfig? }`. */
  postgres: PostgresOption;
  /** Names this file in the store (`source` column, resume points). Default `"<hostname>:<absolute path>"`. */
  source?: string;
  /**
   * Keep shipping as the file grows, and follow it when it is rotated (renamed and created again). Default
   * true. With false, {@link PostgresShipper.close} after {@link PostgresShipper.flush} ships what is there.
   */
  follow?: boolean;
  /** Lines per batch (one COPY, one transaction). Default 5000. */
  batchSize?: number;
  /** Milliseconds between looks at the file for new lines while caught up. Default 200. */
  pollInterval?: number;
  /** Milliseconds before the first retry after a failure; doubling up to `retryMax`. Default 200. */
  retryMin?: number;
  /** The longest pause between retries while the database is unavailable, ms. Default 5000. */
  retryMax?: number;
  /**
   * A rotated file is read until it has not grown for this many milliseconds (other processes may still be
   * appending to it until they notice the rotation). Default 10000.
   */
  rotationGrace?: number;
  /**
   * Let the process exit while the shipper only waits (for new lines, or to retry): what is not shipped stays
   * in the file for the next shipper. Default false; the audit log's own shipper sets it.
   */
  unref?: boolean;
  /**
   * Milliseconds a statement may go unanswered (a database that hangs, a lock held on the table, a network
   * that drops packets) before the store counts as unavailable: `'outage'`, then `'recovered'` once it
   * answers. The statement is not cut for it (`close()` cuts it at its deadline). Default 30000.
   */
  stallTimeout?: number;
}

const KNOWN: Known<ShipperOptions> = {
  filename: true,
  postgres: true,
  source: true,
  follow: true,
  batchSize: true,
  pollInterval: true,
  retryMin: true,
  retryMax: true,
  rotationGrace: true,
  unref: true,
  stallTimeout: true,
};

/** How far the store is behind the file. */
export interface ShipperLag {
  /**
   * Bytes in the spool file(s) not yet in PostgreSQL (at the last look, at most `pollInterval` ago); until the
   * store first answers (an outage from the start), the whole file.
   */
  bytes: number;
  /** Milliseconds since the oldest of them was first seen; 0 when caught up. */
  ms: number;
}

/** Counters of a {@link PostgresShipper}. */
export interface ShipperStats {
  /** Entry rows inserted. */
  inserted: number;
  /**
   * Lines and pieces sent that the store already held from the same place (resent after a crash or by a second
   * shipper), or lines it held from another file (a copy): not duplicated.
   */
  duplicates: number;
  /**
   * Pieces of the file stored as their exact bytes in the raw table, not as entry rows: torn fragments,
   * foreign text, entries the table cannot hold (see {@link RawReasons}). Verification from the store reads them.
   */
  raw: number;
  /** Batches committed. */
  batches: number;
  /** Failed attempts (each retried). */
  failures: number;
}

const BATCH_BYTES = 4 * 1024 * 1024;
/** Marks kept per file for the lag's age (see PostgresShipper.mark). */
const MAX_MARKS = 256;
/** How long close() past its deadline waits for the loop to end once the transaction under way was cut. */
const CUT_GRACE_MS = 1000;

/**
 * What follows the file's name in the names of its rotated files: `.1`, `.2`, … and dates (logrotate's
 * `dateext`: `-20261202`, `.2026-12-02`, `-20261202-1700`, …); not compressed ones (`.1.gz`: shipped before
 * compressing).
 */
const ROTATED_NAME = /^[.-]\d[\d._:T-]*$/;
/** Bytes before a resume point compared at each look at a file (a hash and the end of the line, mostly). */
const TAIL = 64;
const NONE: CopyBatch = { data: Buffer.alloc(0), ends: [] };

/** An error PostgreSQL sent (a five-character SQLSTATE), as opposed to a failed connection (ECONNRESET, …). */
function isSqlState(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: unknown }).code === '23505';
}

/**
 * Errors caused by a row's data rather than the database's state: SQLSTATE classes 22 (data exception), 23
 * (integrity constraint: a CHECK, NOT NULL or foreign key an administrator added; not 23505, a key another
 * shipper stored meanwhile, see insert) and 54 (a limit exceeded), and P0001 (an exception a trigger raised).
 * The row is then stored as its bytes, reason `refused`, and the rest ships.
 */
function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && ((/^(22|23|54)/.test(code) && code !== '23505') || code === 'P0001');
}

function timeoutError(message: string, lag: ShipperLag): Error {
  return Object.assign(new Error(message), { code: ErrorCodes.AUDIT_SHIP_TIMEOUT, lag });
}

interface Waiter {
  /** Sizes of the files when the loop first looked after the call. */
  targets: Map<SpoolFile, number> | undefined;
  resolve: () => void;
}

/**
 * Ships one audit file to PostgreSQL, in batches, in file order, idempotently: a line is identified by its
 * chain, sequence and timestamp, and each row keeps its place (file and offset), so a resend never makes a
 * second row while a second occurrence of a key elsewhere in the file is kept as evidence (raw reason
 * `duplicate-key`). Every other piece of the file but a blank line — a torn fragment, foreign text, an entry
 * the table cannot hold as a row — is stored as its exact bytes in the raw table, identified by file and byte
 * offset, in its place among the rows (verification from the store reads what verification of the file reads).
 * It resumes where the store says it stopped (a resume point per file, committed with each batch, taken only
 * when the store holds the line before it at its place), notices a file truncated in place, follows rotation
 * by inode (a renamed file is read to its end first), and rides out outages of the database: the backlog
 * stays in the file, which is the only bound (disk space), and is sent on recovery. Nothing it does throws
 * into the application: problems are events. It needs `pg` and `pg-copy-streams` (optional peer dependencies; the constructor throws
 * ERR_PROXY_AUDIT_PG_MISSING without them).
 *
 * Events: `'shipped'` `{ file, rows, inserted }` after each batch; `'outage'` (error) when the store becomes
 * unavailable (code ERR_PROXY_AUDIT_STORE_UNAVAILABLE, or ERR_PROXY_AUDIT_STORE_ACCESS when PostgreSQL refuses
 * the login or a right: its message says what to fix; retried all the same) and `'recovered'` when a batch
 * commits again; `'error'` (error) for every failed attempt, only
 * when listened to; `'raw'` {@link RawLine} for each piece sent to the raw table; `'warning'` (error) for a
 * rotated file that vanished before it was shipped (code ERR_PROXY_AUDIT_SPOOL_MISSING), and for a resume point
 * the store does not back, the file then shipped from its beginning (ERR_PROXY_AUDIT_SPOOL_CHANGED).
 *
 * @example
 * ```ts
 * const shipper = new PostgresShipper({ filename: '/var/log/app/audit.jsonl', postgres: process.env.AUDIT_DB });
 * shipper.on('outage', (err) => console.warn('audit store down, spooling on disk:', err.message));
 * shipper.start();
 * // at shutdown, after the audit log closed its file:
 * await shipper.close(10_000);
 * ```
 */
export class PostgresShipper extends EventEmitter {
  readonly filename: string;
  readonly source: string;
  readonly stats: ShipperStats = { inserted: 0, duplicates: 0, raw: 0, batches: 0, failures: 0 };
  private readonly follow: boolean;
  private readonly batchSize: number;
  private readonly pollInterval: number;
  private readonly stallTimeout: number;
  /** When the files were last measured (see {@link lag}). */
  private lookedAt = 0;
  private readonly retryMin: number;
  private readonly retryMax: number;
  private readonly rotationGrace: number;
  private readonly unref: boolean;
  private readonly pool: PgPool;
  private readonly ownsPool: boolean;
  private readonly names: TableNames;
  private readonly copyFrom: CopyFrom;
  /**
   * Batches are copied into the table (COPY FROM STDIN): against the earlier INSERT … SELECT FROM
   * unnest(arrays), the same pre-encoded 200,000 rows of bench/store.mjs's file sent in batches of 5000, three
   * rounds in one run, COPY took 23,052-24,665 rows/s against 19,325-21,692 and less PostgreSQL CPU per row
   * in every round. COPY has no ON CONFLICT: after a unique violation (a resend, rare: after a crash, or with
   * two shippers of one file) the next batches first ask which of their rows the store holds already.
   */
  private readonly copySql: string;
  /** A batch with raw pieces: its rows with ids, so that rows and pieces sit in file order. */
  private readonly copyIdSql: string;
  private readonly idsSql: string;
  private readonly idRangeSql: string;
  private readonly rawSql: string;
  private readonly heldSql: string;
  private readonly differingSql: string;
  private readonly cursorSql: string;
  private readonly followSql: string;
  /** Batches left to send without the rows the store holds, since the last unique violation. */
  private skipDuplicates = 0;
  /** Batches shipped one at a time after one of a backlog failed (see shipBacklog). */
  private skipOverlap = 0;
  /** The batches of a backlog: their locks (`pg_advisory_xact_lock(laneKey, n)`), this shipper's own. */
  private readonly laneKey = randomInt(-(2 ** 31), 2 ** 31);
  private lane = 0;
  /** The batch read ahead while the previous one was inserted. */
  private prefetched: { file: SpoolFile; chunk: Chunk } | undefined;
  /** Oldest first: rotated files still being drained, then the file now at `filename`. */
  private files: SpoolFile[] = [];
  private sizes = new Map<SpoolFile, number>();
  private ready = false;
  private running: Promise<void> | undefined;
  private stopping = false;
  private closing: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private down: Error | undefined;
  private knownMonths = new Set<string>();
  private waiters: Waiter[] = [];
  private behindSince = 0;
  /**
   * Per file, when its bytes were first seen: pairs (size, time) in growing order, the bytes below `size` seen
   * by `time` (see {@link lag}; at most MAX_MARKS pairs, merged towards the earlier time).
   */
  private seenAt = new Map<SpoolFile, number[]>();
  /** The sessions of the statements under way (cut by a close() past its deadline). */
  private busy = new Set<PgClient>();
  /** Connections still being made, each abandoned by a close() past its deadline (see {@link connect}). */
  private connecting = new Set<(err: Error) => void>();
  /** What was left in the files when the loop stopped (see {@link lag}); undefined while it runs. */
  private leftBytes: number | undefined;
  /** The file's size at the last look before the store first answered (see {@link lag}). */
  private unseenBytes = 0;
  private warnedMissing = new Set<string>();
  /** Files (`dev:ino`) found shipped to their end, with their size then: not opened again (see adoptMissed). */
  private settled = new Map<string, number>();
  /** The directory's mtime at its last read by adoptMissed (-1: read it at the next look). */
  private scannedDir = -1;
  private readonly startedAt = Date.now();
  private handoff: Handoff | undefined;

  constructor(options: ShipperOptions) {
    super();
    checkOptions(options, KNOWN, 'PostgresShipper');
    const {
      filename,
      postgres,
      source,
      follow = true,
      batchSize = 5000,
      pollInterval = 200,
      retryMin = 200,
      retryMax = 5000,
      rotationGrace = 10_000,
      unref = false,
      stallTimeout = 30_000,
    } = options ?? ({} as ShipperOptions);
    if (typeof filename !== 'string' || filename === '') throw new TypeError('PostgresShipper: filename must be a path');
    if (source !== undefined && (typeof source !== 'string' || source === '')) throw new TypeError('PostgresShipper: bad source');
    for (const [k, v, min] of [
      ['batchSize', batchSize, 1],
      ['pollInterval', pollInterval, 1],
      ['retryMin', retryMin, 1],
      ['retryMax', retryMax, 1],
      ['rotationGrace', rotationGrace, 0],
      ['stallTimeout', stallTimeout, 1],
    ] as const) {
      if (!Number.isInteger(v) || v < min) throw new TypeError(`PostgresShipper: bad ${k}`);
    }
    this.filename = resolve(filename);
    this.source = source ?? `${os.hostname()}:${this.filename}`;
    this.follow = follow !== false;
    this.batchSize = batchSize;
    this.pollInterval = pollInterval;
    this.retryMin = retryMin;
    this.retryMax = Math.max(retryMin, retryMax);
    this.rotationGrace = rotationGrace;
    this.stallTimeout = stallTimeout;
    this.unref = unref === true;
    const { pool, owned, table } = openPool(postgres, 'PostgresShipper');
    this.names = tableNames(table, 'PostgresShipper');
    this.pool = pool;
    this.ownsPool = owned;
    this.copyFrom = loadCopyFrom();
    const n = this.names;
    const cols = `${COLUMNS.map(([, c]) => c).join(', ')}, line, source`;
    // Each row keeps its place, the file and the offset of its line, before the other columns (placedRows).
    this.copySql = `COPY ${n.table} (file_id, "offset", ${cols}) FROM STDIN`;
    this.copyIdSql = `COPY ${n.table} (id, file_id, "offset", ${cols}) FROM STDIN`;
    // Ids for the rows and pieces of a batch, in order (verification reads the two tables merged by id).
    this.idsSql = `SELECT id FROM (SELECT nextval('${n.idSeq}') AS id FROM generate_series(1, $1)) AS s ORDER BY id`;
    this.idRangeSql = `SELECT min(id)::text AS lo, max(id)::text AS hi FROM (SELECT nextval('${n.idSeq}') AS id FROM generate_series(1, $1)) AS s`;
    this.rawSql = rawInsertSql(n.raw);
    ({ held: this.heldSql, differing: this.differingSql } = recheckSql(n.table));
    // The resume point commits with the rows, so a restart resumes exactly here.
    this.cursorSql = `INSERT INTO ${n.cursor} AS c (source, file_id, path, "offset") VALUES ($1, $2, $3, $4)
  ON CONFLICT (source, file_id) DO UPDATE SET "offset" = GREATEST(c."offset", EXCLUDED."offset"), path = EXCLUDED.path, updated_at = now()`;
    // The resume point of a batch shipped beside the one before it (see shipBacklog): moved only from where
    // that one left it, so that it waits in PostgreSQL for that one's commit and finds no row if it failed.
    this.followSql = `UPDATE ${n.cursor} SET "offset" = $4, path = $3, updated_at = now()
  WHERE source = $1 AND file_id = $2 AND "offset" = $5`;
  }

  /** Starts shipping in the background (again after nothing: calling it twice is harmless). */
  start(): this {
    if (this.closing) throw new Error('PostgresShipper: closed');
    this.running ??= this.loop();
    return this;
  }

  /** How far PostgreSQL is behind the file. */
  get lag(): ShipperLag {
    let bytes = this.leftBytes ?? (this.ready ? 0 : this.unseenBytes);
    if (this.leftBytes === undefined) {
      // A look held up (a batch the database does not answer) measures the live file here instead.
      const last = this.files[this.files.length - 1];
      if (this.ready && last !== undefined && Date.now() - this.lookedAt > this.pollInterval) {
        const st = statSync(this.filename, { throwIfNoEntry: false });
        if (st !== undefined && st.ino === last.ino && st.size > (this.sizes.get(last) ?? 0)) {
          this.sizes.set(last, st.size);
          this.mark(last, st.size);
        }
      }
      for (const f of this.files) bytes += Math.max(0, (this.sizes.get(f) ?? f.offset) - f.offset);
    }
    if (bytes === 0) return { bytes, ms: 0 };
    // Since the oldest byte not yet in the store was first seen (before the store first answered: since then).
    let oldest = Number.POSITIVE_INFINITY;
    if (this.leftBytes === undefined && this.ready) {
      for (const f of this.files) {
        const marks = this.seenAt.get(f);
        if (marks === undefined) continue;
        let i = 0;
        while (i < marks.length && (marks[i] as number) <= f.offset) i += 2;
        if (i > 0) marks.splice(0, i); // (shipped)
        if (marks.length > 0) oldest = Math.min(oldest, marks[1] as number);
      }
    }
    if (oldest === Number.POSITIVE_INFINITY) oldest = this.behindSince;
    return { bytes, ms: oldest > 0 ? Date.now() - oldest : 0 };
  }

  /** True while the store is unreachable or refusing batches (the backlog waits in the file). */
  get outage(): boolean {
    return this.down !== undefined;
  }

  /**
   * Resolves once every whole line in the file now (and in rotated files still being drained) is in
   * PostgreSQL; rejects with ERR_PROXY_AUDIT_SHIP_TIMEOUT after `timeoutMs` (shipping goes on).
   */
  async flush(timeoutMs = 30_000): Promise<void> {
    this.start();
    let timer: NodeJS.Timeout | undefined;
    // The loop measures the files at its next look (it alone opens and closes them) and resolves this then.
    const waiter: Waiter = { targets: undefined, resolve: () => {} };
    const done = new Promise<void>((resolve) => {
      waiter.resolve = resolve;
    });
    this.waiters.push(waiter);
    this.poke();
    const late = new Promise<'late'>((r) => {
      timer = setTimeout(() => r('late'), timeoutMs);
    });
    const r = await Promise.race([done, late]);
    clearTimeout(timer);
    if (r === 'late') {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      // The loop had not looked again yet (a short deadline, or one right after a flush): nothing is late when
      // the files hold nothing the store lacks.
      if (await this.caughtUp()) return;
      const why = this.down ? this.down.message : 'still shipping'; // (says PostgreSQL and what to do: storeError)
      throw timeoutError(
        `audit lines not yet in PostgreSQL after ${timeoutMs} ms (${why}); they stay in ${this.filename}`,
        this.lag,
      );
    }
  }

  /**
   * Ships what the file holds (see {@link flush}), then stops and releases the pool (when it made it).
   * Rejects with ERR_PROXY_AUDIT_SHIP_TIMEOUT when that takes longer than `timeoutMs`; it stops all the same,
   * and the file still holds what was not shipped (a later shipper resumes there).
   */
  close(timeoutMs = 30_000): Promise<void> {
    this.closing ??= this.doClose(timeoutMs);
    return this.closing;
  }

  private async doClose(timeoutMs: number): Promise<void> {
    let failure: unknown;
    if (this.running) {
      try {
        await this.flush(timeoutMs);
      } catch (e) {
        failure = e;
      }
    }
    this.stopping = true;
    this.poke();
    if (failure === undefined) return this.stop();
    // Past the deadline a transaction under way is not waited for (a database that stopped answering, a
    // network that drops its packets, would hold close() for as long): its session is cut, which rolls it back,
    // and the file keeps its lines. close() rejects then; whatever else the loop still waits for ends with it.
    for (const client of this.busy) client.end().catch(() => {});
    const cut = new Error('PostgresShipper: closed past its deadline');
    for (const abandon of this.connecting) abandon(cut);
    const stopped = this.stop(true);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stopped, new Promise((resolve) => (timer = setTimeout(resolve, CUT_GRACE_MS)))]);
    clearTimeout(timer);
    throw failure;
  }

  /**
   * Waits for the loop to end, then closes the files and the pool (when it made it); after a cut, without
   * waiting for the pool's connections still being made (they end at its connectionTimeoutMillis).
   */
  private async stop(cut = false): Promise<void> {
    await this.running;
    if (!this.ready) this.unseenBytes = (await fsp.stat(this.filename).catch(() => undefined))?.size ?? this.unseenBytes;
    this.leftBytes = this.lag.bytes;
    for (const f of this.files) await f.close().catch(() => {});
    this.files = [];
    if (!this.ownsPool) return;
    const ended = this.pool.end().catch(() => {});
    if (!cut) await ended;
  }

  /**
   * @internal The audit log of this process that writes the file hands over the rows of the lines it writes
   * there, with where each write landed, so that the shipper need not read them back and parse them; what
   * was not handed over is read from the file. Measured head to head in the in-process audited Express app
   * of bench/store-app.mjs: see bench/README.md.
   */
  handOver(writer: HandoffWriter): Handoff {
    this.handoff ??= new Handoff(this.source, writer);
    return this.handoff;
  }

  /**
   * Whether the store holds every whole line the files hold now, measured here rather than at the loop's next
   * look (false whenever that is not certain: the store not reached yet or down, a batch under way, a file
   * renamed over the live one since the last look).
   */
  private async caughtUp(): Promise<boolean> {
    if (!this.ready) {
      // (for the lag an error reports: the whole file, as now)
      this.unseenBytes = (await fsp.stat(this.filename).catch(() => undefined))?.size ?? this.unseenBytes;
      return false;
    }
    const files = [...this.files];
    const last = files[files.length - 1];
    try {
      const targets = new Map<SpoolFile, number>();
      for (const f of files) {
        const size = await f.size();
        targets.set(f, size);
        if (size > (this.sizes.get(f) ?? 0)) this.sizes.set(f, size); // (what lag reports)
      }
      if (this.down !== undefined || this.missed()) return false;
      if (this.follow) {
        const st = await fsp.stat(this.filename).catch(() => undefined);
        if (st === undefined) {
          // Renamed away and not written again yet: caught up unless a file beside it waits to be found.
          if ((await this.siblings()).candidates.length > 0) return false;
        } else if (last === undefined || st.ino !== last.ino || last.path !== this.filename) return false;
      }
      return this.satisfied(targets);
    } catch {
      return false; // a file the loop closed meanwhile: it decides at its next look
    }
  }

  /**
   * A session of the pool. A connection still being made when close() passes its deadline is abandoned (a
   * server that accepts and never answers holds it for the pool's whole connectionTimeoutMillis): the loop
   * ends at once, and the session, should it still open, goes back to the pool closed.
   */
  private connect(): Promise<PgClient> {
    const pending = this.pool.connect();
    return new Promise<PgClient>((resolve, reject) => {
      let settled = false;
      const abandon = (err: Error) => {
        if (settled) return;
        settled = true;
        this.connecting.delete(abandon);
        reject(err);
      };
      this.connecting.add(abandon);
      pending.then(
        (client) => {
          if (settled) return client.release(true);
          settled = true;
          this.connecting.delete(abandon);
          resolve(client);
        },
        (err: Error) => abandon(err),
      );
    });
  }

  /** One statement on a session of the pool, cut like a batch's by a close() past its deadline. */
  private async query(sql: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[]; rowCount?: number | null }> {
    const client = await this.connect();
    this.busy.add(client);
    const cut = () => {};
    client.on('error', cut);
    try {
      const r = await client.query(sql, values);
      client.removeListener('error', cut);
      this.busy.delete(client);
      client.release();
      return r;
    } catch (err) {
      // A statement PostgreSQL refused leaves the session usable; a cut or failed connection ends it.
      const broken = !isSqlState(err);
      if (!broken) client.removeListener('error', cut);
      this.busy.delete(client);
      client.release(broken ? (err as Error) : undefined);
      throw err;
    }
  }

  /** Wakes the loop now instead of at its next look (the owner of the file may call it after writing). */
  poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private sleep(ms: number): Promise<void> {
    // (close() may have poked before this sleep began: a stopping loop does not wait, also not unref'd)
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      if (this.unref) t.unref();
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    let backoff = this.retryMin;
    while (!this.stopping) {
      let worked = false;
      const stall = setTimeout(() => this.stalled(), this.stallTimeout);
      stall.unref();
      try {
        worked = await this.step();
        clearTimeout(stall);
        backoff = this.retryMin;
        if (this.down) {
          this.down = undefined;
          this.emit('recovered');
        }
      } catch (err) {
        clearTimeout(stall);
        if (this.stopping) break; // (cut by close() past its deadline: not an outage)
        this.failed(err as Error);
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, this.retryMax);
        continue;
      }
      this.settle();
      if (!worked && !this.stopping) await this.sleep(this.pollInterval);
    }
  }

  /** Notes that `f`'s bytes below `size` have been seen by now (see {@link lag}). */
  private mark(f: SpoolFile, size: number): void {
    let marks = this.seenAt.get(f);
    if (marks === undefined) {
      marks = [];
      this.seenAt.set(f, marks);
    }
    if (marks.length > 0 && size <= (marks[marks.length - 2] as number)) return;
    marks.push(size, Date.now());
    if (marks.length <= 2 * MAX_MARKS) return;
    // Two neighbours become one: the later size, the earlier time (the lag reads longer, never shorter).
    const merged: number[] = [];
    for (let i = 0; i < marks.length; i += 4) {
      const j = Math.min(i + 2, marks.length - 2);
      merged.push(marks[j] as number, marks[i + 1] as number);
    }
    this.seenAt.set(f, merged);
  }

  /** A step unanswered for `stallTimeout`: an outage (not a failure: nothing failed, nothing is retried). */
  private stalled(): void {
    if (this.down !== undefined || this.stopping) return;
    this.down = Object.assign(
      new Error(`PostgreSQL has not answered for ${this.stallTimeout} ms (a hung server, a lock on the table, a lost network)`),
      { code: ErrorCodes.AUDIT_STORE_UNAVAILABLE },
    );
    this.emit('outage', this.down);
    if (this.listenerCount('error') > 0) this.emit('error', this.down);
  }

  private failed(err: Error): void {
    this.stats.failures++;
    const first = this.down === undefined;
    // Known codes of the package stay; a refused login or right is ERR_PROXY_AUDIT_STORE_ACCESS, anything
    // else (network, PostgreSQL) the store being unavailable.
    err = storeError(err, 'ship');
    this.down = err;
    if (first) this.emit('outage', err);
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Resolves the flush waiters whose targets are reached. */
  private settle(): void {
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.satisfied(w.targets)) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  private satisfied(targets: Map<SpoolFile, number> | undefined): boolean {
    if (targets === undefined) return false;
    for (const [f, size] of targets) {
      if (!this.files.includes(f)) continue; // drained and closed
      if (f.offset < size && !(f.scannedFrom === f.offset && f.scanned >= size)) return false;
    }
    return true;
  }

  /** Connects, checks the table and opens the files at their resume points. */
  private async prepare(): Promise<void> {
    const n = this.names;
    const t = await this.query(
      `SELECT to_regclass($1) AS t, to_regclass($2) AS c, to_regclass($3) AS r,
    (SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname IN ('file_id', 'offset') AND NOT attisdropped) AS placed`,
      [n.table, n.cursor, n.raw],
    );
    if (t.rows[0]?.t === null || t.rows[0]?.c === null) {
      throw Object.assign(new Error(`no audit table ${n.table} in PostgreSQL: run proxy-protocol-audit pg-init`), {
        code: ErrorCodes.AUDIT_STORE_SCHEMA,
      });
    }
    if (t.rows[0]?.r === null) {
      throw Object.assign(
        new Error(
          `${n.table} has no raw table ${n.raw} (made by an earlier pg-init): run proxy-protocol-audit pg-init again, which adds it`,
        ),
        { code: ErrorCodes.AUDIT_STORE_SCHEMA },
      );
    }
    if (Number(t.rows[0]?.placed) !== 2) {
      throw Object.assign(
        new Error(
          `${n.table} keeps no place of its rows (file_id, offset: made by an earlier pg-init): run proxy-protocol-audit pg-init again, which adds them`,
        ),
        { code: ErrorCodes.AUDIT_STORE_SCHEMA },
      );
    }
    const cursors = await this.query(
      `SELECT file_id, path, "offset", done FROM ${n.cursor} WHERE source = $1 ORDER BY updated_at, file_id`,
      [this.source],
    );
    const points = new Map<string, { offset: number; done: boolean; path: string }>();
    for (const r of cursors.rows) {
      points.set(r.file_id as string, { offset: Number(r.offset), done: r.done === true, path: r.path as string });
    }
    for (const f of this.files) await f.close().catch(() => {});
    this.files = [];
    const current = await this.openCurrent();
    const currentId = current ? await current.identify() : undefined;
    // Rotated files whose end may not be in the store: found beside the file (same inode and first line).
    // `done` is only a hint (the application's role may set it): a file found is shipped on from a resume point
    // the store backs, and left only when that is its end.
    const others = [...points].filter(([id]) => id !== currentId);
    {
      const dir = dirname(this.filename);
      const prefix = basename(this.filename);
      const byIno = new Map<number, string[]>();
      const mtimes = new Map<string, number>();
      /** Rotated files by the usual names (`<file>.1`, `<file>.2`, …). */
      const rotated: string[] = [];
      for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
        if (!name.startsWith(prefix)) continue;
        const path = join(dir, name);
        const st = await fsp.stat(path).catch(() => undefined);
        if (!st?.isFile()) continue;
        byIno.set(st.ino, [...(byIno.get(st.ino) ?? []), path]);
        mtimes.set(path, st.mtimeMs);
        if (ROTATED_NAME.test(name.slice(prefix.length))) rotated.push(path);
      }
      // A file rotated while no shipper of this file ran — rotated on again before one ran (two renames), or
      // before any shipper ever ran (the first start on a host whose log rotated already) — has no resume
      // point; its lines would be missing from the store for good. Shipped whole (lines the store holds
      // already store nothing), with the files that have one, oldest first (last written first).
      /**
       * The rotated files' sizes by their first lines (the hash, as in ids): a copy made by copytruncate begins
       * as the file did.
       */
      const firstLines = new Map<string, number>();
      for (const path of rotated) {
        const f = await SpoolFile.open(path, BATCH_BYTES).catch(() => undefined);
        const id = await f?.identify();
        if (f !== undefined && id !== undefined) {
          const line = id.slice(id.indexOf(':') + 1);
          firstLines.set(line, Math.max(firstLines.get(line) ?? 0, await f.size()));
        }
        if (f === undefined || id === undefined || id === currentId || points.has(id)) {
          await f?.close();
          continue;
        }
        f.lastGrowth = 0; // not written any more: closed once read to its end
        this.files.push(f);
      }
      for (const [id, p] of others) {
        let found: SpoolFile | undefined;
        for (const path of byIno.get(Number(id.split(':')[0])) ?? []) {
          const f = await SpoolFile.open(path, BATCH_BYTES).catch(() => undefined);
          if (f && (await f.identify()) === id) found = f;
          else await f?.close();
          if (found) break;
        }
        if (found) {
          await this.resumeAt(found, id, p.offset);
          if (p.done && found.offset === (await found.size())) {
            await found.close();
            continue;
          }
          found.lastGrowth = 0; // not written any more: closed once read to its end
          this.files.push(found);
        } else if (!p.done && !this.warnedMissing.has(id) && (firstLines.get(id.slice(id.indexOf(':') + 1)) ?? -1) < p.offset) {
          // (a copy beside it that begins with the same line, as copytruncate makes, and reaches past the resume
          // point is shipped whole above or from a resume point of its own: nothing is missing then)
          this.warnedMissing.add(id);
          this.emit(
            'warning',
            Object.assign(
              new Error(
                `${p.path} was shipped up to byte ${p.offset} and is not found beside ${this.filename} any more (moved away, deleted, or cut and written again): whatever it held after that point is not in the store`,
              ),
              {
                code: ErrorCodes.AUDIT_SPOOL_MISSING,
              },
            ),
          );
        }
      }
      this.files.sort((a, b) => (mtimes.get(a.path) ?? 0) - (mtimes.get(b.path) ?? 0));
    }
    if (current) {
      const p = currentId === undefined ? undefined : points.get(currentId);
      if (p && currentId !== undefined) await this.resumeAt(current, currentId, p.offset);
      this.files.push(current);
    }
    this.ready = true;
  }

  /**
   * Resumes file `f` (`id`) at `offset`, its resume point in the store, when the store backs it: when it holds
   * the last piece of the file before that point, as the file holds it now, from that place. Otherwise — the
   * file was truncated in place and written again since (the same inode and first line, other bytes), or the
   * resume point was moved by hand or by someone with the application's role — the file is shipped from its
   * beginning again, and what the store holds already is not stored twice (a resend: the same place).
   *
   * The application's role may update resume points (its shipper moves them). Moved back, a shipper only
   * sends again what the store holds. Moved forward, it is refused unless the store holds, at its place, the
   * line just before the new point: to skip lines, whoever has that role must insert that very line itself
   * (it has INSERT). The lines skipped then miss from the store, and verification from the store reports
   * those that later shipped lines depend on (a sequence gap, a start or witness missing); the end of a chain
   * or a whole chain that nothing shipped later depends on leaves no trace in the store (the file keeps it).
   */
  private async resumeAt(f: SpoolFile, id: string, offset: number): Promise<void> {
    if (offset > 0 && offset <= (await f.size()) && (await this.backed(f, id, offset))) {
      f.offset = offset;
      f.tail = await f.bytesAt(Math.max(0, offset - TAIL), Math.min(TAIL, offset));
      return;
    }
    if (offset > 0) {
      this.emit(
        'warning',
        Object.assign(
          new Error(
            `${f.path}: its resume point (byte ${offset}) is not backed by what the store holds (the file was truncated and written again, or the resume point was moved): shipped again from its beginning, nothing stored twice`,
          ),
          { code: ErrorCodes.AUDIT_SPOOL_CHANGED },
        ),
      );
    }
  }

  /** Whether the store holds the last piece of file `f` (`id`) before `offset` at its place, as the file holds it. */
  private async backed(f: SpoolFile, id: string, offset: number): Promise<boolean> {
    const start = await f.lineBefore(offset, MAX_LINE_BYTES);
    if (start === undefined) return false;
    if (start < 0) return true; // only blank lines before it: nothing to hold
    const c = await f.read(start, offset - start, Number.MAX_SAFE_INTEGER, this.source);
    if (c.to !== offset) return false;
    const piece = c.raw[c.raw.length - 1];
    const rows = c.batch.ends.length;
    const rowAt = rows === 0 ? -1 : (c.spans[2 * (rows - 1)] as number);
    const n = this.names;
    const heldRaw = async (at: number, bytes: Buffer) =>
      (
        await this.query(`SELECT 1 FROM ${n.raw} WHERE file_id = $1 AND "offset" = $2 AND digest = $3`, [
          id,
          at,
          createHash('sha256').update(bytes).digest('hex'),
        ])
      ).rows.length > 0;
    if (piece !== undefined && piece.offset > rowAt) return heldRaw(piece.offset, piece.bytes);
    if (rows === 0) return false;
    const k = copyKeys(copyRows(c.batch, [rows - 1]));
    const bytes = await f.bytesAt(rowAt, c.spans[2 * rows - 1] as number);
    const held = await this.query(
      `SELECT file_id, "offset", line FROM ${n.table} WHERE chain = $1 AND sequence = $2 AND ts = $3::timestamptz`,
      [k.chains[0], k.sequences[0], k.ts[0]],
    );
    const h = held.rows[0] as { file_id: string | null; offset: string | null; line: string } | undefined;
    // The row from this place; or the same line from another file (a copy) or from a version without places.
    if (h !== undefined && h.line === bytes.toString('utf8') && (h.file_id !== id || Number(h.offset) === rowAt)) return true;
    // A second occurrence of its key is stored as its bytes (see sortHeld).
    return heldRaw(rowAt, bytes);
  }

  private async openCurrent(): Promise<SpoolFile | undefined> {
    try {
      return await SpoolFile.open(this.filename, BATCH_BYTES);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // not created yet
      throw e;
    }
  }

  /** Notices rotation and growth: opens a new file at `filename`, records sizes. */
  private async refresh(): Promise<void> {
    if (!this.ready) return;
    const last = this.files[this.files.length - 1];
    if (this.follow || last === undefined) {
      const st = await fsp.stat(this.filename).catch(() => undefined);
      const renamed = last !== undefined && (st === undefined || st.ino !== last.ino || last.path !== this.filename);
      // (also when nothing was renamed: a file cut in place (copytruncate) before anything of it was shipped
      // since its last cut shows no sign of it, at offset 0, but its lines are in the copy that appeared
      // beside it; adoptMissed reads the directory only when it changed)
      await this.adoptMissed();
      if (st && (last === undefined || st.ino !== last.ino || last.path !== this.filename)) {
        const f = await this.openCurrent();
        if (f) {
          if (last) last.lastGrowth = Date.now();
          this.files.push(f);
        }
      }
    }
    let cut = false;
    for (const f of this.files) {
      const size = await f.size();
      const before = this.sizes.get(f);
      if (before === undefined || size > before) f.lastGrowth = Date.now();
      // Truncated in place (copytruncate), or truncated and written again past the resume point since the last
      // look (other bytes before it now): what is there now is new, and names the file anew. (Shipped from its
      // beginning: what the store holds already, the same bytes from the same place, is not stored twice.)
      if (
        f.cut ||
        size < f.offset ||
        (f.tail !== undefined && !(await f.bytesAt(f.offset - f.tail.length, f.tail.length)).equals(f.tail))
      ) {
        f.offset = 0;
        f.id = undefined;
        f.tail = undefined;
        f.cut = false;
        if (this.prefetched?.file === f) this.prefetched = undefined;
        // Rows handed over for lines written before the cut name offsets that hold other lines now.
        this.handoff?.closed();
        this.seenAt.delete(f);
        cut = true;
      }
      this.sizes.set(f, size);
      this.mark(f, size);
    }
    // The lines between the last batch and the cut are in the copy made before it (`<file>.1`, a dated name),
    // if anywhere: looked for beside the file, and shipped before what the file holds now.
    if (cut) {
      this.scannedDir = -1;
      await this.adoptMissed();
      for (const f of this.files) if (!this.sizes.has(f)) this.sizes.set(f, await f.size());
    }
    for (const w of this.waiters) w.targets ??= new Map(this.sizes);
    this.lookedAt = Date.now();
    const behind = this.files.some((f) => (this.sizes.get(f) ?? 0) > f.offset);
    if (!behind) this.behindSince = 0;
    else if (this.behindSince === 0) this.behindSince = Date.now();
  }

  /** Whether the audit log of this process wrote to a file this shipper neither holds nor let go of. */
  private missed(): boolean {
    const written = this.handoff?.writtenTo();
    if (written === undefined || written.size === 0) return false;
    for (const key of written) {
      if (this.settled.has(key)) continue;
      if (!this.files.some((f) => `${f.dev}:${f.ino}` === key)) return true;
    }
    return false;
  }

  /**
   * Files beside the file that this shipper neither holds nor let go of, and may have to ship (see
   * adoptMissed), with the files (`dev:ino`) found there and at the file's own name.
   */
  private async siblings(): Promise<{
    candidates: { path: string; key: string; mtime: number; size: number }[];
    present: Set<string>;
  }> {
    const dir = dirname(this.filename);
    const prefix = basename(this.filename);
    const written = this.handoff?.writtenTo();
    const held = new Set(this.files.map((f) => `${f.dev}:${f.ino}`));
    const candidates: { path: string; key: string; mtime: number; size: number }[] = [];
    const present = new Set<string>();
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
      if (!name.startsWith(prefix)) continue;
      const path = join(dir, name);
      const st = await fsp.stat(path).catch(() => undefined);
      if (!st?.isFile()) continue;
      const key = `${st.dev}:${st.ino}`;
      present.add(key);
      if (name === prefix || held.has(key) || this.settled.get(key) === st.size) continue;
      const rotatedName = ROTATED_NAME.test(name.slice(prefix.length)) && st.mtimeMs >= this.startedAt - 1000;
      if (!rotatedName && written?.has(key) !== true) continue;
      candidates.push({ path, key, mtime: st.mtimeMs, size: st.size });
    }
    return { candidates, present };
  }

  /**
   * Files renamed away before this shipper looked at them: rotated twice between two of its looks, or
   * created, written and renamed between them (the look before saw the file before, the next one sees the
   * file after, or none). Their lines would otherwise miss from the store while flush() and close() resolve.
   * Found beside the file and shipped on from a resume point the store backs (else from their beginning;
   * nothing is stored twice): by the usual rotated names (`<file>.1`, `<file>-20261202`, …) when modified
   * since this shipper started (a file rotated while none ran is found when one starts, see prepare), and
   * under any name beginning with the file's by the files the audit log of this process wrote to; a file it
   * wrote to that is found nowhere (deleted, or moved to another directory) is reported (`'warning'`, ERR_PROXY_AUDIT_SPOOL_MISSING). The directory is read again only when it changed
   * (its mtime: a rename, a new or removed file) or a file written to is missing.
   */
  private async adoptMissed(): Promise<void> {
    const dir = await fsp.stat(dirname(this.filename)).catch(() => undefined);
    const missed = this.missed();
    if (!missed && dir !== undefined && dir.mtimeMs === this.scannedDir) return;
    this.scannedDir = dir?.mtimeMs ?? -1;
    const { candidates, present } = await this.siblings();
    const found: { f: SpoolFile; mtime: number }[] = [];
    for (const c of candidates) {
      const f = await SpoolFile.open(c.path, BATCH_BYTES).catch(() => undefined);
      if (f === undefined) continue;
      try {
        if (`${f.dev}:${f.ino}` !== c.key) {
          await f.close(); // renamed again meanwhile: the next look finds it
          continue;
        }
        const id = await f.identify();
        if (id !== undefined) {
          const p = await this.query(`SELECT "offset" FROM ${this.names.cursor} WHERE source = $1 AND file_id = $2`, [
            this.source,
            id,
          ]);
          const point = p.rows[0] as { offset: string } | undefined;
          if (point !== undefined) await this.resumeAt(f, id, Number(point.offset));
          if (f.offset >= c.size) {
            this.letGo(c.key, c.size); // shipped to its end already
            await f.close();
            continue;
          }
        }
      } catch (err) {
        await f.close().catch(() => {});
        this.scannedDir = -1; // (read again at the next look)
        throw err;
      }
      f.lastGrowth = Date.now(); // (a writer may still append to it through a descriptor it holds)
      found.push({ f, mtime: c.mtime });
    }
    if (missed) await this.reportGone(present, found);
    if (found.length === 0) return;
    found.sort((a, b) => a.mtime - b.mtime);
    // Before the file at `filename` (the live one stays last), in the order they were last written.
    const live = this.files[this.files.length - 1];
    const at = live !== undefined && live.path === this.filename ? this.files.length - 1 : this.files.length;
    this.files.splice(at, 0, ...found.map((x) => x.f));
  }

  /** Files the log of this process wrote to that are found nowhere: reported, and let go of. */
  private async reportGone(present: Set<string>, found: { f: SpoolFile }[]): Promise<void> {
    const written = this.handoff?.writtenTo();
    if (written === undefined) return;
    const held = new Set([...this.files, ...found.map((x) => x.f)].map((f) => `${f.dev}:${f.ino}`));
    let gone = [...written].filter((key) => !held.has(key) && !this.settled.has(key) && !present.has(key));
    if (gone.length === 0) return;
    // (a file renamed between the directory's read and its stat is found at a second read)
    const again = (await this.siblings()).present;
    gone = gone.filter((key) => !again.has(key));
    for (const key of gone) {
      this.letGo(key, -1);
      this.emit(
        'warning',
        Object.assign(
          new Error(
            `a file this process's audit log wrote to (inode ${key.split(':')[1]}) is no longer beside ${this.filename} (deleted, or moved to another directory) before it was shipped to its end: whatever it held after the last batch shipped is not in the store (ship it with proxy-protocol-audit ship if it still exists elsewhere)`,
          ),
          { code: ErrorCodes.AUDIT_SPOOL_MISSING },
        ),
      );
    }
  }

  /** File `key` (`dev:ino`) is shipped to its end (at `size`), or gone: not looked for again. */
  private letGo(key: string, size: number): void {
    this.settled.set(key, size);
    this.handoff?.shipped(key);
  }

  /** One batch from the oldest file with something to ship; false when there was nothing more to send now. */
  private async step(): Promise<boolean> {
    if (!this.ready) {
      // What the store holds is not known before it answers (an outage from the start, say): until then the
      // whole file counts as behind.
      const st = await fsp.stat(this.filename).catch(() => undefined);
      this.unseenBytes = st?.size ?? 0;
      if (this.unseenBytes === 0) this.behindSince = 0;
      else if (this.behindSince === 0) this.behindSince = Date.now();
      await this.prepare();
    }
    await this.refresh();
    for (let i = 0; i < this.files.length; i++) {
      const f = this.files[i] as SpoolFile;
      const p = this.prefetched;
      this.prefetched = undefined;
      // (identified before its lines are read: a file cut in place after that is told by its first line, see ship)
      await f.identify();
      const chunk =
        p?.file === f && p.chunk.from === f.offset
          ? p.chunk
          : await f.read(f.offset, BATCH_BYTES, this.batchSize, this.source, this.handoff);
      if (chunk.to > chunk.from) {
        if (this.full(chunk) && this.overlappable() && chunk.raw.length === 0) return await this.shipBacklog(f, chunk);
        // The next batch is read and parsed while PostgreSQL inserts this one.
        const [, next] = await Promise.all([
          this.ship(f, chunk),
          f.read(chunk.to, BATCH_BYTES, this.batchSize, this.source, this.handoff),
        ]);
        this.prefetched = { file: f, chunk: next };
        // A batch that was not full means the file was shipped to (about) its end: the next look waits
        // `pollInterval` (unless a flush waits), instead of sending the few lines the application wrote
        // meanwhile in a transaction of their own, again and again (a commit each). On the application's
        // side it measured within noise: 0.907x before, 0.913x after (with the hash read by the layout
        // pattern), of the file-only app's requests per CPU-second (bench/store-app.mjs, bench/ab.mjs method).
        return this.full(chunk) || this.waiters.length > 0;
      }
      const isLast = i === this.files.length - 1;
      if (!isLast && Date.now() - f.lastGrowth >= this.rotationGrace) {
        // A rotated file nobody appends to any more, shipped to its end: done.
        const id = await f.identify();
        if (id !== undefined) {
          await this.query(`UPDATE ${this.names.cursor} SET done = true, updated_at = now() WHERE source = $1 AND file_id = $2`, [
            this.source,
            id,
          ]);
        }
        this.files.splice(i, 1);
        this.sizes.delete(f);
        this.seenAt.delete(f);
        this.letGo(`${f.dev}:${f.ino}`, f.offset);
        await f.close().catch(() => {});
        i--;
      }
    }
    return false;
  }

  /** A batch as big as one is made: more of the file waits behind it, most likely. */
  private full(chunk: Chunk): boolean {
    return chunk.batch.ends.length >= this.batchSize || chunk.to - chunk.from >= BATCH_BYTES / 2;
  }

  /** Whether batches may go in overlapped (not while resends or a deadlock are being sorted out). */
  private overlappable(): boolean {
    if (this.skipOverlap > 0) {
      this.skipOverlap--;
      return false;
    }
    return this.skipDuplicates === 0;
  }

  /**
   * Ships a backlog of file `f` from `first` on, two batches at a time: each batch is copied into the table
   * while the one before it commits, on a second connection of the pool, and commits only after it (see
   * {@link laned}). PostgreSQL inserting a batch is what limits the rate of shipping a backlog (its backend's
   * CPU: the indexes), and two connections use two cores: see bench/README.md (`bench/store.mjs`). What is
   * stored, in which id order, and when a resume point moves are as for one batch at a time. A batch that fails
   * takes the one beside it with it (that one finds no resume point where it expected one, and rolls back);
   * both are shipped again by the next look, one at a time, with every fallback of {@link insert} (resends,
   * refused rows). Every wait between the two is one PostgreSQL sees, so a cycle through another connection (the
   * same key in both batches, another shipper of the file) is a deadlock PostgreSQL breaks.
   */
  private async shipBacklog(f: SpoolFile, first: Chunk): Promise<boolean> {
    let cur = first;
    let n = this.nextLane();
    let opened = signal();
    // (settled: undefined, or the failure)
    let done = settle(this.ship(f, cur, { n, opened: opened.open }));
    // The next batch is read while this one is copied; it starts once this one has its ids.
    let reading = f.read(cur.to, BATCH_BYTES, this.batchSize, this.source, this.handoff);
    for (;;) {
      const [read] = await Promise.allSettled([reading, Promise.race([opened.promise, done])]);
      const next = read.status === 'fulfilled' ? read.value : undefined;
      if (next === undefined || next.to === next.from || !this.full(cur) || !this.beside(next)) {
        const failure = await done;
        if (failure !== undefined) return this.laneFailed(failure);
        if (read.status === 'rejected') throw read.reason;
        this.prefetched = { file: f, chunk: next as Chunk };
        return this.full(cur) || this.waiters.length > 0;
      }
      // The bytes its resume point will follow, read now, then a look at the file's first line: a file cut in
      // place (copytruncate) since `next` was read begins with another line, and `next` may hold lines of
      // what was written after the cut, read at offsets of before it. It is then left to the next look,
      // which finds the cut by the resume point's bytes (see refresh); the tail taken here, before that
      // look at the first line, is of the bytes `next` was read from.
      const tail = await f.bytesAt(Math.max(0, next.to - TAIL), Math.min(TAIL, next.to));
      if (!(await f.sameStart())) {
        const failure = await done;
        if (failure !== undefined) return this.laneFailed(failure);
        return true;
      }
      const follower = signal();
      const m = this.nextLane();
      const after = done.then(() => {});
      const shipping = settle(this.ship(f, next, { n: m, follows: n, opened: follower.open, after, tail }));
      // (the batch after it is read meanwhile: PostgreSQL is not left with one batch while it is)
      reading = f.read(next.to, BATCH_BYTES, this.batchSize, this.source, this.handoff);
      const failure = await done;
      if (failure !== undefined) {
        await Promise.allSettled([shipping, reading]);
        return this.laneFailed(failure);
      }
      cur = next;
      n = m;
      opened = follower;
      done = shipping;
    }
  }

  /** A batch of a backlog failed: anything PostgreSQL refused is shipped again one batch at a time. */
  private laneFailed(err: unknown): boolean {
    if (!(isSqlState(err) || err instanceof NotAfter)) throw err;
    this.skipOverlap = 20;
    return true;
  }

  private nextLane(): number {
    this.lane = (this.lane + 1) | 0;
    return this.lane;
  }

  /** Whether batch `next` can go in beside the one under way (rows only, in months the table has). */
  private beside(next: Chunk): boolean {
    if (this.stopping && this.waiters.length === 0) return false;
    if (next.raw.length > 0 || next.batch.ends.length === 0) return false;
    for (const m of next.months) if (!this.knownMonths.has(m)) return false;
    return true;
  }

  private async ship(f: SpoolFile, chunk: Chunk, lane?: Lane): Promise<void> {
    const id = await f.identify();
    if (id === undefined) {
      // A whole line was read, so the file had a first line then: it was cut in place since (see below).
      f.cut = true;
      return;
    }
    const months = new Set<string>();
    for (const m of chunk.months) if (!this.knownMonths.has(m)) months.add(m);
    if (months.size > 0) {
      await this.query(`SELECT ${this.names.addPartitions}($1::text[])`, [[...months]]);
      for (const m of months) this.knownMonths.add(m);
    }
    // The bytes the resume point follows, to tell later whether the file still holds them there (see refresh).
    let tail = lane?.tail;
    if (tail === undefined) {
      tail = await f.bytesAt(Math.max(0, chunk.to - TAIL), Math.min(TAIL, chunk.to));
      // A file cut in place (copytruncate) and written again since the batch was read, or since the look
      // before it, holds other bytes there now, which the next look would take for the ones shipped: it then
      // missed the cut, and never shipped the lines written before that offset. The file's first line tells
      // (a batch beside another was checked so before it began, see shipBacklog): the batch is left, and the
      // next look ships the file from its new beginning and the copy from the resume point.
      if (!(await f.sameStart())) {
        f.cut = true;
        return;
      }
    }
    const raw = chunk.raw;
    let stored: Stored;
    if (lane) stored = await this.laned(f, id, chunk, lane);
    else {
      try {
        stored = await this.insert(f, id, chunk.to, chunk.batch, chunk.spans, raw);
      } catch (err) {
        if (!(isDataError(err) || isUniqueViolation(err)) || chunk.batch.ends.length === 0) throw err;
        stored = await this.insertInHalves(f, id, chunk);
      }
    }
    // (after the batch before it, which committed first, has moved the offset)
    if (lane?.after) await lane.after;
    f.offset = chunk.to;
    f.tail = tail;
    const rows = chunk.batch.ends.length;
    this.stats.batches++;
    this.stats.inserted += stored.rows;
    this.stats.raw += stored.raw;
    // (A row stored as a raw piece counts there, or as a duplicate when the store held that piece already.)
    this.stats.duplicates += rows + raw.length - stored.rows - stored.raw;
    for (const p of stored.asRaw.length === 0 ? raw : [...raw, ...stored.asRaw].sort((x, y) => x.offset - y.offset)) {
      this.emit('raw', rawLine(p));
    }
    this.emit('shipped', { file: f.path, rows, inserted: stored.rows });
  }

  /**
   * Inserts `batch` (its rows at `spans` of the file) and the `raw` pieces and moves the resume point to `to`,
   * in one transaction. Throws a unique violation (23505) only for several rows that were not all there when
   * asked (another shipper inserted some meanwhile): the caller then ships the batch in halves.
   */
  private async insert(
    f: SpoolFile,
    id: string,
    to: number,
    batch: CopyBatch,
    spans: readonly number[],
    raw: readonly RawPiece[],
  ): Promise<Stored> {
    const cursor = [this.source, id, f.path, to];
    if (this.skipDuplicates === 0) {
      try {
        return await this.transaction(f, batch, spans, raw, id, cursor, false);
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        this.skipDuplicates = 20;
      }
    }
    this.skipDuplicates--;
    try {
      return await this.transaction(f, batch, spans, raw, id, cursor, true);
    } catch (err) {
      if (!isUniqueViolation(err) || batch.ends.length > 1) throw err;
      // One row, inserted by another shipper since it was asked for: asked again, it is told what it is.
      return this.transaction(f, batch, spans, raw, id, cursor, true);
    }
  }

  /**
   * One transaction: the rows (`fresh`: only those the store does not hold, see {@link sortHeld}), the raw
   * pieces of file `fileId` (each one the store holds already is left as it is), and the resume point.
   */
  private transaction(
    f: SpoolFile,
    batch: CopyBatch,
    spans: readonly number[],
    raw: readonly RawPiece[],
    fileId: string,
    cursor: unknown[],
    fresh: boolean,
  ): Promise<Stored> {
    return this.inTransaction(async (client) => {
      let keep: number[] | undefined;
      let pieces = raw;
      const stored: Stored = { rows: 0, raw: 0, asRaw: [] };
      if (fresh && batch.ends.length > 0) {
        const sorted = await this.sortHeld(client, f, fileId, batch, spans);
        keep = sorted.keep;
        if (sorted.asRaw.length > 0) {
          stored.asRaw = sorted.asRaw;
          // In file order: a piece goes before the row `before` names (the moved row's own place).
          pieces = [...raw, ...sorted.asRaw].sort((x, y) => x.before - y.before || x.offset - y.offset);
        }
      }
      if (pieces.length === 0) {
        stored.rows = await this.copy(client, this.copySql, placedRows(batch, keep, fileId, spans));
      } else {
        // Rows and pieces get their ids here, in file order: a piece goes before the row `before` names.
        const rows = keep ?? batch.ends.map((_, i) => i);
        const ids = (await client.query(this.idsSql, [rows.length + pieces.length])).rows.map((r) => String(r.id));
        const rowIds: string[] = [];
        const rawIds: string[] = [];
        let k = 0;
        let r = 0;
        for (const i of rows) {
          for (; r < pieces.length && (pieces[r] as RawPiece).before <= i; r++) rawIds.push(ids[k++] as string);
          rowIds.push(ids[k++] as string);
        }
        for (; r < pieces.length; r++) rawIds.push(ids[k++] as string);
        stored.rows = await this.copy(client, this.copyIdSql, placedRows(batch, rows, fileId, spans, rowIds));
        stored.raw = (await client.query(this.rawSql, rawValues(pieces, rawIds, fileId, this.source))).rowCount ?? 0;
      }
      await client.query(this.cursorSql, cursor);
      return stored;
    });
  }

  /**
   * The transaction of a batch of a backlog (see shipBacklog), number `lane.n`: it takes its own lock, then
   * ids for its rows (so that every batch after it has greater ones: verification reads rows in id order),
   * then lets the next batch begin (`lane.opened`); then its rows; then, when it follows batch `lane.after`, that
   * batch's lock (held until that one commits or rolls back, a wait PostgreSQL sees) and its resume point moved
   * from where that batch left it — no such resume point when that batch failed: it rolls back and rejects.
   * No second try here: a batch of a backlog that fails is shipped again by the next look, one at a time.
   */
  private laned(f: SpoolFile, fileId: string, chunk: Chunk, lane: Lane): Promise<Stored> {
    return this.inTransaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock($1, $2)', [this.laneKey, lane.n]);
      const n = chunk.batch.ends.length;
      const r = await client.query(this.idRangeSql, [n]);
      const lo = Number(r.rows[0]?.lo);
      const ids =
        Number(r.rows[0]?.hi) - lo + 1 === n
          ? Array.from({ length: n }, (_, i) => String(lo + i))
          : // (another connection took values meanwhile: the batch's own, in order)
            (await client.query(this.idsSql, [n])).rows.map((x) => String(x.id));
      lane.opened();
      const rows = await this.copy(client, this.copyIdSql, placedRows(chunk.batch, undefined, fileId, chunk.spans, ids));
      const cursor = [this.source, fileId, f.path, chunk.to];
      if (lane.follows === undefined) await client.query(this.cursorSql, cursor);
      else {
        await client.query('SELECT pg_advisory_xact_lock($1, $2)', [this.laneKey, lane.follows]);
        const moved = await client.query(this.followSql, [...cursor, chunk.from]);
        if (moved.rowCount !== 1) throw new NotAfter();
      }
      return { rows, raw: 0, asRaw: [] };
    });
  }

  /** Runs `body` in a transaction on a connection of the pool, committed when it resolves. */
  private async inTransaction<T>(body: (client: PgClient) => Promise<T>): Promise<T> {
    const client = await this.connect();
    this.busy.add(client);
    // A session cut meanwhile (the server restarted, an administrator ended it) fails the query under way;
    // its 'error' event must not become an uncaught exception of the application.
    const cut = () => {};
    client.on('error', cut);
    let open = false;
    try {
      await client.query('BEGIN');
      open = true;
      const result = await body(client);
      await client.query('COMMIT');
      open = false;
      client.removeListener('error', cut);
      this.busy.delete(client);
      client.release();
      return result;
    } catch (err) {
      // A batch PostgreSQL refused leaves the session usable once rolled back; a cut connection ends it.
      let broken: Error | boolean = err as Error;
      if (open && (isSqlState(err) || err instanceof NotAfter))
        broken = await client.query('ROLLBACK').then(
          () => false,
          (e: Error) => e,
        );
      // A session that failed stays listened to: it may report again on its way out.
      if (broken === false) client.removeListener('error', cut);
      this.busy.delete(client);
      client.release(broken);
      throw err;
    }
  }

  /**
   * Which rows of a batch the store holds already, and what each of those is. A row whose key (chain,
   * sequence, timestamp) the table holds is
   * - a resend when the held row came from the same offset of the same file (a restart, a second shipper of
   *   the file, a resume point moved back): nothing is stored;
   * - a copy when it came from another file with the very same line (a file copied for rotation, as by
   *   logrotate's copytruncate, or by hand), or from a version that kept no positions: nothing is stored;
   * - otherwise a second occurrence — the same line again further on in the same file, or another line under
   *   that key (a forged variant) — which verification of the file reports: it is stored as its bytes,
   *   reason `duplicate-key`, in its place, so that verification from the store reports it too.
   * A key that comes twice in the batch is such a second occurrence from its second time on.
   */
  private async sortHeld(
    client: PgClient,
    f: SpoolFile,
    fileId: string,
    batch: CopyBatch,
    spans: readonly number[],
  ): Promise<{ keep: number[]; asRaw: RawPiece[] }> {
    const k = copyKeys(batch);
    const offsets = batch.ends.map((_, i) => spans[2 * i] as number);
    const held = await client.query(this.heldSql, [k.chains, k.sequences, k.ts, offsets, fileId]);
    const found = new Map<number, { here: boolean; fileId: string | null; line: string | null }>();
    for (const r of held.rows) {
      found.set(Number(r.i) - 1, { here: r.here === true, fileId: r.file_id as string | null, line: r.line as string | null });
    }
    const keep: number[] = [];
    const asRaw: RawPiece[] = [];
    const same: number[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < batch.ends.length; i++) {
      const key = `${k.chains[i]}\n${k.sequences[i]}\n${k.ts[i]}`;
      const first = !seen.has(key);
      seen.add(key);
      const h = found.get(i);
      if (first && h === undefined) {
        keep.push(i);
        continue;
      }
      if (first && h?.here) {
        same.push(i); // a resend
        continue;
      }
      const offset = spans[2 * i] as number;
      const bytes = await f.bytesAt(offset, spans[2 * i + 1] as number);
      if (first && h !== undefined && h.fileId !== fileId && h.line === bytes.toString('utf8')) {
        same.push(i); // a copy
        continue;
      }
      asRaw.push(rawPiece(f.path, offset, bytes, { reason: RawReasons.DUPLICATE_KEY, before: i }));
    }
    // A resend or a copy stores nothing only when the held row is the one this line makes: a row with other
    // columns was not written by a shipper (the app role can insert rows), and the queries by those columns
    // would not find this entry. Its line is then stored as it is, in its place.
    for (const i of await this.differing(client, batch, same)) {
      const offset = spans[2 * i] as number;
      const bytes = await f.bytesAt(offset, spans[2 * i + 1] as number);
      asRaw.push(rawPiece(f.path, offset, bytes, { reason: RawReasons.COLUMNS_DIFFER, before: i }));
    }
    if (asRaw.length > 1) asRaw.sort((x, y) => x.before - y.before);
    return { keep, asRaw };
  }

  /**
   * Which of rows `rows` of `batch` the table holds under their key with other columns than the row's (its
   * line, or a column made from it; not its place or source, which a copy or another shipper changes).
   * PostgreSQL compares, each value read by its column's type as COPY would read it.
   */
  private async differing(client: PgClient, batch: CopyBatch, rows: readonly number[]): Promise<number[]> {
    if (rows.length === 0) return [];
    const r = await client.query(this.differingSql, differingValues(rows.map((i) => copyFields(batch, i))));
    return r.rows.map((x) => rows[Number(x.i) - 1] as number);
  }

  private async copy(client: PgClient, sql: string, data: Buffer): Promise<number> {
    if (data.length === 0) return 0;
    const stream = client.query(this.copyFrom(sql));
    // finished() reports the first error; a cut session can report a second one, which must not be uncaught.
    stream.on('error', () => {});
    stream.end(data);
    await finished(stream);
    return stream.rowCount;
  }

  /**
   * A batch PostgreSQL refused for its data, or that met rows another shipper inserted after they were asked
   * for: shipped again in halves, and each half that fails in halves again, so that one bad line costs only
   * itself (stored as it is, reason `refused`) and about two transactions per halving (row by row, 20 refused
   * lines in 100,000 took 55 s). Every transaction holds its rows and the pieces before them in the file, and
   * leaves the resume point at the batch's start until the last one moves it to the batch's end.
   */
  private async insertInHalves(f: SpoolFile, id: string, chunk: Chunk): Promise<Stored> {
    const total: Stored = { rows: 0, raw: 0, asRaw: [] };
    const add = (s: Stored) => {
      total.rows += s.rows;
      total.raw += s.raw;
      total.asRaw.push(...s.asRaw);
    };
    const { batch, raw, spans } = chunk;
    let r = 0;
    /** The pieces before row `i` not stored yet, placed among rows that begin at row `a`. */
    const upTo = (i: number, a: number) => {
      const out: RawPiece[] = [];
      for (; r < raw.length && (raw[r] as RawPiece).before <= i; r++) {
        const p = raw[r] as RawPiece;
        out.push({ ...p, before: Math.max(0, p.before - a) });
      }
      return out;
    };
    // Rows a..b-1 (b > a).
    const part = async (a: number, b: number): Promise<void> => {
      const taken = r;
      const before = upTo(b - 1, a);
      const rows = Array.from({ length: b - a }, (_, k) => a + k);
      try {
        add(await this.insert(f, id, chunk.from, copyRows(batch, rows), spans.slice(2 * a, 2 * b), before));
        return;
      } catch (err) {
        if (!(isDataError(err) || (b - a > 1 && isUniqueViolation(err)))) throw err;
        r = taken; // (the pieces were not stored: taken again)
        if (b - a > 1) {
          await halves(a, b);
          return;
        }
        // The line stays evidence: its bytes in the raw table, in its place.
        const offset = spans[2 * a] as number;
        const refused = rawPiece(f.path, offset, await f.bytesAt(offset, spans[2 * a + 1] as number), {
          reason: RawReasons.REFUSED,
          detail: (err as Error).message,
          before: 0,
        });
        add(await this.insert(f, id, chunk.from, NONE, [], [...upTo(a, a), refused]));
        total.asRaw.push(refused);
      }
    };
    const halves = async (a: number, b: number): Promise<void> => {
      const mid = (a + b) >>> 1;
      await part(a, mid);
      await part(mid, b);
    };
    const n = batch.ends.length;
    // (the whole batch failed already: its halves first)
    if (n > 1) await halves(0, n);
    else if (n === 1) await part(0, 1);
    add(await this.insert(f, id, chunk.to, NONE, [], upTo(Number.POSITIVE_INFINITY, n)));
    return total;
  }
}

/** What one batch stored: entry rows and raw pieces inserted, and the rows stored as raw pieces instead. */
/** A batch of a backlog (see shipBacklog, laned). */
interface Lane {
  /** Its number (its lock). */
  n: number;
  /** Called once the batch has its ids: the next may begin. */
  opened: () => void;
  /** The number of the batch before it, shipped beside it: this one commits after that one. */
  follows?: number;
  /** Settles once the batch before it was accounted for: this one is accounted for after it. */
  after?: Promise<void>;
  /** The bytes its resume point follows, as they were when it was read (see shipBacklog). */
  tail?: Buffer;
}

/** Settles with undefined, or with the failure. */
function settle(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (err: unknown) => err ?? new Error('failed'),
  );
}

/** A promise and the function that resolves it. */
function signal(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** The batch before a batch of a backlog did not commit (see laned). */
class NotAfter extends Error {
  constructor() {
    super('the batch before was not stored');
  }
}

interface Stored {
  rows: number;
  raw: number;
  /** Rows PostgreSQL refused, and second occurrences of a key (see `sortHeld`): stored as raw pieces. */
  asRaw: RawPiece[];
}

/**
 * The COPY data of rows `rows` of `batch` (all when undefined), each preceded by its place: the file and the
 * offset of its line (`spans`), and first its id when `ids` are given. A resend is told from a second
 * occurrence of a line by this place (see `sortHeld`).
 */
function placedRows(
  batch: CopyBatch,
  rows: readonly number[] | undefined,
  fileId: string,
  spans: readonly number[],
  ids?: readonly string[],
): Buffer {
  const n = rows === undefined ? batch.ends.length : rows.length;
  const heads: string[] = new Array(n);
  let length = 0;
  for (let k = 0; k < n; k++) {
    const i = rows === undefined ? k : (rows[k] as number);
    const head = `${ids === undefined ? '' : `${ids[k]}\t`}${fileId}\t${spans[2 * i]}\t`;
    heads[k] = head;
    length += head.length + (batch.ends[i] as number) - (i === 0 ? 0 : (batch.ends[i - 1] as number));
  }
  const out = Buffer.allocUnsafe(length);
  let at = 0;
  for (let k = 0; k < n; k++) {
    const i = rows === undefined ? k : (rows[k] as number);
    // (file ids and numbers are ASCII)
    at += out.write(heads[k] as string, at, 'latin1');
    at += batch.data.copy(out, at, i === 0 ? 0 : (batch.ends[i - 1] as number), batch.ends[i]);
  }
  return out;
}
