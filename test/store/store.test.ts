import assert from 'node:assert/strict';
import { type ChildProcess, execFile, fork, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import pg from 'pg';
import {
  createAuditLog,
  ErrorCodes,
  PostgresShipper,
  pgInit,
  type RawLine,
  RawReasons,
  VerifyCodes,
  type VerifyResult,
  verifyAuditLog,
} from '../../src/index.js';
import { Handoff } from '../../src/store/handoff.js';
import { differingValues, recheckSql } from '../../src/store/recheck-sql.js';
import { COLUMNS } from '../../src/store/row.js';
import { sleep, tempDir } from '../helpers.js';
import { needsPostgres, startPostgres, type TestPostgres } from './postgres.js';

const execFileP = promisify(execFile);
const CLI = join(__dirname, '../../src/cli/index.js');
const WRITER = join(__dirname, 'fixtures/write-entries.js');

let tables = 0;
/** A fresh table name per test: tests never see each other's rows. */
const freshTable = () => `t${process.pid}_${++tables}`;

/** Writes `n` entries to `file` in this process and closes the log. */
async function writeEntries(file: string, n: number, extra: Record<string, unknown> = {}): Promise<number> {
  const log = createAuditLog({ filename: file, maxQueue: 1_000_000, ...extra });
  for (let i = 0; i < n; i++) {
    log.write({
      category: 'web',
      action: 'http-request',
      outcome: 'success',
      method: 'GET',
      path: `/e/${i}`,
      status: 200,
      userId: `u${i % 3}`,
    });
    if (i % 1000 === 999) await sleep(1);
  }
  await log.close();
  return n + 2; // audit-log-started and audit-log-stopped
}

function lines(file: string): number {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '').length;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/**
 * Runs `body` with every process of the cluster (the postmaster and its children) stopped: sockets open,
 * nothing answers (a network partition that drops packets, a server that hangs). They go on afterwards.
 */
async function whileFrozen(db: TestPostgres, body: () => Promise<void>): Promise<void> {
  const postmaster = Number(readFileSync(join(db.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const children = (await execFileP('pgrep', ['-P', String(postmaster)])).stdout.trim().split('\n').map(Number);
  const frozen = [postmaster, ...children];
  for (const pid of frozen) process.kill(pid, 'SIGSTOP');
  try {
    await body();
  } finally {
    for (const pid of frozen) process.kill(pid, 'SIGCONT');
  }
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('PostgreSQL store', needsPostgres(), () => {
  let db: TestPostgres;
  let dir: string;
  const count = (table: string) => Number(db.psql(`SELECT count(*) FROM ${table}`));
  const distinct = (table: string) => Number(db.psql(`SELECT count(DISTINCT (chain, sequence)) FROM ${table}`));
  const init = (table: string) => pgInit({ postgres: { connectionString: db.url, table }, appRole: 'app' });
  const ship = async (file: string, table: string, source?: string) => {
    const s = new PostgresShipper({
      filename: file,
      postgres: { connectionString: db.url, table },
      follow: false,
      ...(source ? { source } : {}),
    });
    s.start();
    await s.close(30_000);
    return s;
  };
  const verifyTable = (table: string, options: Record<string, unknown> = {}): Promise<VerifyResult> =>
    verifyAuditLog({ postgres: { connectionString: db.url, table }, ...options });

  before(async () => {
    db = await startPostgres();
    db.psql('CREATE ROLE app LOGIN');
    dir = tempDir('ppa-store-');
  });
  after(async () => {
    await db?.stop();
  });

  it('pg-init is idempotent (also run concurrently) and makes the partitions, indexes and triggers', async () => {
    const table = freshTable();
    const first = await init(table);
    const again = await Promise.all([init(table), init(table)]);
    assert.deepEqual(again[0].partitions, first.partitions);
    assert.deepEqual(again[1].partitions, first.partitions);
    assert.ok(first.partitions.includes(`${table}_default`));
    const month = new Date().toISOString().slice(0, 7).replace('-', '');
    assert.ok(first.partitions.includes(`${table}_${month}`), `${first.partitions}`);
    const cols = db.psql(
      `SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = '${table}'`,
    );
    for (const c of [
      'chain',
      'sequence',
      'ts',
      'action',
      'outcome',
      'client_ip',
      'peer_ip',
      'user_id',
      'method',
      'path',
      'route',
      'status',
      'host',
      'service',
      'line',
      'file_id',
      'offset',
    ]) {
      assert.ok(cols.split(',').includes(c), `column ${c} in ${cols}`);
    }
    assert.equal(
      db.psql(`SELECT data_type FROM information_schema.columns WHERE table_name = '${table}' AND column_name = 'client_ip'`),
      'inet',
    );
    const indexes = db
      .psql(`SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = '${table}'`)
      .split(',');
    for (const i of ['client_ip', 'user_id', 'path', 'ts', 'entry'])
      assert.ok(indexes.includes(`${table}_${i}`), `index ${i} in ${indexes}`);
    assert.equal(db.psql(`SELECT partstrat FROM pg_partitioned_table WHERE partrelid = '${table}'::regclass`), 'r');
  });

  it('the app role inserts and reads, and can never update, delete or truncate; retention drops whole partitions', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeEntries(file, 50);
    const s = new PostgresShipper({ filename: file, postgres: { connectionString: db.urlAs('app'), table }, follow: false });
    s.start();
    await s.close(20_000);
    assert.equal(count(table), n);
    const app = new pg.Client({ connectionString: db.urlAs('app') });
    await app.connect();
    try {
      const cases = [
        { name: 'UPDATE', sql: `UPDATE ${table} SET line = 'x' WHERE sequence = 2` },
        { name: 'DELETE', sql: `DELETE FROM ${table} WHERE sequence = 2` },
        { name: 'TRUNCATE', sql: `TRUNCATE ${table}` },
        { name: 'DELETE on a partition', sql: `DELETE FROM ${table}_default` },
        { name: 'DROP', sql: `DROP TABLE ${table}` },
      ];
      for (const c of cases) {
        await assert.rejects(
          app.query(c.sql),
          (e: { code: string }) => (e.code === '42501' || e.code === '42P01' ? true : assert.fail(`${c.name}: ${e.code}`)),
          c.name,
        );
      }
      assert.equal(Number((await app.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n), n);
    } finally {
      await app.end();
    }
    // Even the owner cannot edit a row: the trigger refuses.
    assert.throws(() => db.psql(`UPDATE ${table} SET line = 'x' WHERE sequence = 2`), /append-only/);
    assert.throws(() => db.psql(`DELETE FROM ${table} WHERE sequence = 2`), /append-only/);
    assert.throws(() => db.psql(`TRUNCATE ${table}`), /append-only/);
    assert.equal(count(table), n);
    // Retention: an old month's partition goes as a whole; the current one stays.
    db.psql(`SELECT ${table}_add_partitions(ARRAY['2015-03'])`);
    db.psql(`INSERT INTO ${table} (chain, sequence, ts, line) VALUES ('old', 1, '2015-03-02T00:00:00Z', 'x')`);
    assert.equal(
      db.psql(`SELECT string_agg(x, ',') FROM ${table}_drop_partitions(now() - interval '6 years') AS x`),
      `${table}_201503`,
    );
    assert.equal(count(table), n);
    assert.throws(() => db.psql(`SET ROLE app; SELECT ${table}_drop_partitions(now())`), /permission denied/);
  });

  it('a re-check of rows the store holds looks each up by the key index, however many are given (no scan of the table)', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeEntries(file, 5_000);
    await ship(file, table);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query(`ANALYZE ${table}`);
      const { held, differing } = recheckSql(`"${table}"`);
      const k = (
        await c.query(
          `SELECT array_agg(chain) a, array_agg(sequence) b, array_agg(ts) c, array_agg("offset") d, min(file_id) f FROM ${table}`,
        )
      ).rows[0];
      // (every compared column as text, as copyFields gives them, in the batch's order)
      const compared = [...COLUMNS.map(([, col]) => `"${col}"::text`), 'line'].join(', ');
      const rows = (await c.query(`SELECT ${compared} FROM ${table} ORDER BY id`)).rows.map(
        (r) => Object.values(r) as (string | null)[],
      );
      const plans = [
        await c.query(`EXPLAIN (FORMAT JSON) ${held}`, [k.a, k.b, k.c, k.d, k.f]),
        await c.query(`EXPLAIN (FORMAT JSON) ${differing}`, differingValues(rows)),
      ];
      // The partition that holds the rows is read by its index (empty ones may be scanned: nothing to read).
      const part = String((await c.query(`SELECT tableoid::regclass::text AS p FROM ${table} LIMIT 1`)).rows[0].p);
      type Node = { 'Node Type': string; 'Relation Name'?: string; Plans?: Node[] };
      const scans = (n: Node): Node[] => [...(n['Relation Name'] === part ? [n] : []), ...(n.Plans ?? []).flatMap(scans)];
      for (const p of plans) {
        const root = (p.rows[0]['QUERY PLAN'] as { Plan: Node }[])[0]?.Plan as Node;
        const found = scans(root);
        assert.equal(found.length, 1, part);
        assert.match(found[0]?.['Node Type'] ?? '', /^Index (Only )?Scan$/);
      }
      // And it finds what it looks for: every row held, none differing.
      assert.equal((await c.query(held, [k.a, k.b, k.c, k.d, k.f])).rowCount, 5_002);
      assert.equal((await c.query(differing, differingValues(rows))).rowCount, 0);
      const changed = rows.map((r, i) => (i === 7 ? [...r.slice(0, -1), `${r.at(-1)} `] : r));
      assert.deepEqual(
        (await c.query(differing, differingValues(changed))).rows.map((r) => Number(r.i)),
        [8],
      );
    } finally {
      await c.end();
    }
  });

  it('ships a file once: resending (a second shipper, another source) adds no row', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeEntries(file, 3000);
    const a = await ship(file, table);
    assert.deepEqual([a.stats.inserted, a.stats.duplicates, a.stats.raw], [n, 0, 0]);
    assert.equal(a.lag.bytes, 0);
    const b = await ship(file, table, 'another-host:/elsewhere');
    assert.deepEqual([b.stats.inserted, b.stats.duplicates], [0, n]);
    const c = await ship(file, table); // same source: resumes at the end, sends nothing
    assert.deepEqual([c.stats.inserted, c.stats.duplicates, c.stats.batches], [0, 0, 0]);
    assert.equal(count(table), n);
    assert.equal(distinct(table), n);
    assert.equal(
      db.psql(`SELECT count(*) FROM ${table} WHERE user_id = 'u1' AND path LIKE '/e/%' AND status = 200 AND method = 'GET'`),
      '1000',
    );
    const r = await verifyTable(table);
    assert.equal(r.verdict, 'intact', JSON.stringify(r.findings));
    assert.equal(r.entries, n);
  });

  it('two shippers of one file at once (COPY, then only the rows not there after a unique violation): every line once', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeEntries(file, 20_000);
    const make = (source: string) =>
      new PostgresShipper({
        filename: file,
        postgres: { connectionString: db.url, table },
        follow: false,
        source,
        batchSize: 700,
      });
    const a = make('host-a:/x');
    const b = make('host-b:/x');
    a.start();
    b.start();
    await Promise.all([a.close(60_000), b.close(60_000)]);
    assert.equal(a.stats.inserted + b.stats.inserted, n);
    assert.equal(a.stats.inserted + a.stats.duplicates, n);
    assert.equal(b.stats.inserted + b.stats.duplicates, n);
    assert.equal(count(table), n);
    assert.equal(distinct(table), n);
    assert.equal((await verifyTable(table)).verdict, 'intact');
  });

  it('stores every line byte for byte (escapes, unicode); a line PostgreSQL refuses as a row is stored as it is', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file });
    const odd = ['tab\there', 'back\\slash', 'quote"d', 'new\nline', 'Zoë 🩺', 'cr\r', 'nul\u0000'];
    for (const [i, ua] of odd.entries()) {
      log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/o/${i}`, userAgent: ua, userId: ua });
    }
    await log.close();
    const text = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    // A row PostgreSQL refuses for its data (here a constraint whose test fails on it: '/refused' is no
    // integer), not the batch. (A timestamp that is no date never gets that far: it is stored as it is before
    // it is sent, see pg-init.test.ts.)
    db.psql(`ALTER TABLE ${table} ADD CONSTRAINT ${table}_odd CHECK (path IS DISTINCT FROM '/refused' OR path::int > 0)`);
    const bad = (text[3] as string).replace(/"path":"[^"]*"/, '"path":"/refused"');
    assert.notEqual(bad, text[3]);
    writeFileSync(file, `${[...text.slice(0, 3), bad, ...text.slice(3)].join('\n')}\n`);
    const raw: RawLine[] = [];
    const s = new PostgresShipper({ filename: file, postgres: { connectionString: db.url, table }, follow: false });
    s.on('raw', (x: RawLine) => raw.push(x));
    s.start();
    await s.close(20_000);
    assert.deepEqual([s.stats.inserted, s.stats.raw], [text.length, 1]);
    assert.deepEqual(
      raw.map((r) => r.reason),
      [RawReasons.REFUSED],
    );
    const stored = db.psql(`SELECT line FROM ${table} ORDER BY id`).split('\n');
    assert.deepEqual(stored, text);
    assert.equal(db.psql(`SELECT user_id FROM ${table} WHERE path = '/o/4'`), 'Zoë 🩺');
    assert.equal(db.psql(`SELECT user_id = E'tab\\there' FROM ${table} WHERE path = '/o/0'`), 't');
    // The refused line, byte for byte, in its place (after the third row), with PostgreSQL's reason.
    assert.equal(db.psql(`SELECT convert_from(bytes, 'UTF8') FROM ${table}_raw`), bad);
    assert.match(db.psql(`SELECT detail FROM ${table}_raw`), /invalid input syntax for type integer/);
    assert.equal(db.psql(`SELECT count(*) FROM ${table} WHERE id < (SELECT id FROM ${table}_raw)`), '3');
    // Its path was edited: tampered, from the file and from the store alike.
    const [fromFile, fromStore] = [await verifyAuditLog(file), await verifyTable(table)];
    assert.equal(fromFile.verdict, 'tampered');
    assert.equal(fromStore.verdict, 'tampered');
    assert.deepEqual(
      fromStore.findings.map((f) => f.code),
      fromFile.findings.map((f) => f.code),
    );
  });

  it('the log hands its rows to its shipper: the same rows, byte for byte, as shipping its file afterwards', async () => {
    const [handed, parsed] = [freshTable(), freshTable()];
    await init(handed);
    await init(parsed);
    const file = join(dir, `${handed}.jsonl`);
    const take = Handoff.prototype.take;
    let taken = 0;
    Handoff.prototype.take = function (...a) {
      const c = take.apply(this, a);
      taken += c?.batch.ends.length ?? 0;
      return c;
    };
    let n = 2; // audit-log-started and audit-log-stopped
    try {
      const log = createAuditLog({ filename: file, postgres: { connectionString: db.url, table: handed } });
      const odd = ['Zoë 🩺', 'back\\slash', 'quote"d', 'tab\there', '\uFFFD', `/${'x'.repeat(3000)}`];
      // Several looks of the shipper while the app writes: batches of handed rows, lines parsed among them.
      for (let turn = 0; turn < 12; turn++) {
        for (let i = 0; i < 300; i++, n++) {
          log.write({
            category: 'web',
            action: 'http-request',
            outcome: i % 7 === 0 ? 'failure' : 'success',
            method: 'GET',
            path: i % 50 === 0 ? (odd[(turn + i) % odd.length] as string) : `/h/${turn}/${i}`,
            status: 200 + (i % 5),
            clientIp: i % 2 ? '203.0.113.9' : '2001:db8::7',
            peerAddress: '10.0.0.1',
            userId: i % 40 === 0 ? (odd[i % odd.length] as string) : `u${i % 3}`,
          });
        }
        await sleep(60);
      }
      await log.close({ shipTimeout: 30_000 });
    } finally {
      Handoff.prototype.take = take;
    }
    await ship(file, parsed); // the same source: the same file
    const cols = `${COLUMNS.map(([, c]) => c).join(', ')}, line, source`;
    // Every column as PostgreSQL prints it (NULL apart from ''), in one digest: the rows are several MB.
    const rows = (t: string) => db.psql(`SELECT md5(string_agg((${cols})::text, E'\\n' ORDER BY chain, sequence)) FROM ${t}`);
    assert.equal(count(handed), n);
    assert.equal(rows(handed), rows(parsed));
    // One writer, never interrupted: every row came from the hand-over, none was read back from the file.
    assert.equal(taken, n);
  });

  /**
   * A pool whose sessions report how many transactions were open at once (BEGIN … COMMIT/ROLLBACK), and the
   * rows of the table in id order must follow the file (verification reads them so).
   */
  const countingPool = () => {
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    const stats = { open: 0, most: 0, transactions: 0 };
    const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
    const counted = new WeakSet<object>();
    (pool as unknown as { connect: () => Promise<pg.PoolClient> }).connect = async () => {
      const client = await connect();
      if (counted.has(client)) return client;
      counted.add(client);
      const query = client.query.bind(client) as (...a: unknown[]) => unknown;
      (client as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
        if (a[0] === 'BEGIN') {
          stats.transactions++;
          stats.most = Math.max(stats.most, ++stats.open);
        }
        const r = query(...a);
        if (a[0] === 'COMMIT' || a[0] === 'ROLLBACK') stats.open--;
        return r;
      };
      return client;
    };
    return { pool, stats };
  };
  /** Ships `file` with batches of `batchSize` through a counting pool: two transactions at once, no outage. */
  const shipBacklog = async (file: string, table: string, batchSize: number) => {
    const { pool, stats } = countingPool();
    const s = new PostgresShipper({ filename: file, postgres: { pool, table }, follow: false, batchSize });
    const outages: unknown[] = [];
    s.on('outage', (e) => outages.push(e));
    s.start();
    await s.close(60_000);
    await pool.end();
    assert.equal(stats.most, 2, 'two transactions at once');
    assert.deepEqual(outages, []);
    return s;
  };
  const outOfOrder = (table: string) =>
    Number(
      db.psql(`SELECT count(*) FROM (SELECT "offset" < lag("offset") OVER (ORDER BY id) AS back FROM ${table}) x WHERE back`),
    );

  it('a backlog goes in two batches at a time, each committed after the one before, rows in file order', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeEntries(file, 6_000);
    const s = await shipBacklog(file, table, 300);
    assert.equal(count(table), n);
    assert.equal(distinct(table), n);
    assert.equal(outOfOrder(table), 0);
    assert.equal(s.stats.batches, Math.ceil(n / 300));
    const file_ = await verifyAuditLog(file);
    const store = await verifyTable(table);
    assert.equal(store.verdict, 'intact');
    assert.equal(store.entries, file_.entries);
    // The resume point is the file's end: a second shipper sends nothing.
    const again = await ship(file, table);
    assert.equal(again.stats.inserted, 0);
  });

  it('a row refused in a backlog: the batches beside it are shipped again one at a time, the line kept raw, no outage', async () => {
    const table = freshTable();
    await init(table);
    db.psql(`ALTER TABLE ${table} ADD CONSTRAINT ${table}_no_2500 CHECK (path IS DISTINCT FROM '/e/2500')`);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeEntries(file, 6_000);
    const s = await shipBacklog(file, table, 300);
    assert.equal(count(table), n - 1);
    assert.equal(db.psql(`SELECT reason FROM ${table}_raw`), RawReasons.REFUSED);
    assert.equal(outOfOrder(table), 0);
    // The refused line is verified from its stored bytes: the store's verdict is the file's.
    const fromFile = await verifyAuditLog(file);
    const fromStore = await verifyTable(table);
    assert.equal(fromFile.verdict, 'intact');
    assert.equal(fromStore.verdict, 'intact');
    assert.equal(fromStore.entries, fromFile.entries);
  });

  it('rows refused in one batch of 4,000: shipped in halves (not row by row), the lines kept raw in their places', async () => {
    const table = freshTable();
    await init(table);
    db.psql(`ALTER TABLE ${table} ADD CONSTRAINT ${table}_refused CHECK (path NOT IN ('/e/0', '/e/1717', '/e/3999'))`);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeEntries(file, 4_000);
    const { pool, stats } = countingPool();
    const s = new PostgresShipper({ filename: file, postgres: { pool, table }, follow: false, batchSize: 4_000 });
    const outages: unknown[] = [];
    s.on('outage', (e) => outages.push(e));
    s.start();
    await s.close(60_000);
    await pool.end();
    assert.deepEqual(outages, []);
    assert.equal(count(table), n - 3);
    assert.equal(
      db.psql(`SELECT string_agg(reason, ',' ORDER BY "offset") FROM ${table}_raw`),
      Array(3).fill(RawReasons.REFUSED).join(','),
    );
    // About two transactions per halving for each refused line (12 halvings of 4,000), not one per row.
    assert.ok(stats.transactions < 100, `${stats.transactions} transactions`);
    assert.equal(outOfOrder(table), 0);
    const fromStore = await verifyTable(table);
    assert.equal(fromStore.verdict, 'intact');
    assert.equal(fromStore.entries, (await verifyAuditLog(file)).entries);
  });

  it('the same key in two batches of a backlog (a deadlock PostgreSQL breaks): every line once, the verdict of the file', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeEntries(file, 6_000);
    // The entry at the end of a batch again at the start of the next, at four boundaries: the batch beside
    // mostly copies it first, and the one before then waits for it while it waits for that one's commit (a
    // deadlock PostgreSQL breaks); or the one before commits first, and the batch beside meets its key.
    const all = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    for (const at of [5000, 4000, 3000, 2000]) all.splice(at + 1, 0, all[at - 1] as string);
    writeFileSync(file, `${all.join('\n')}\n`);
    const s = await shipBacklog(file, table, 1000);
    assert.equal(count(table), all.length - 4);
    assert.equal(db.psql(`SELECT string_agg(reason, ',') FROM ${table}_raw`), Array(4).fill(RawReasons.DUPLICATE_KEY).join(','));
    assert.equal(outOfOrder(table), 0);
    const fromFile = await verifyAuditLog(file);
    const fromStore = await verifyTable(table);
    assert.equal(fromStore.verdict, fromFile.verdict);
    assert.deepEqual(
      fromStore.findings.map((f) => f.code),
      fromFile.findings.map((f) => f.code),
    );
  });

  it('sessions cut mid-batch (pg_terminate_backend) are retried: no uncaught error, every line once', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeEntries(file, 30_000);
    const s = new PostgresShipper({
      filename: file,
      postgres: { connectionString: `${db.url}&application_name=cut_${table}`, table },
      follow: false,
      batchSize: 500,
      retryMin: 10,
      retryMax: 50,
    });
    const outages: string[] = [];
    s.on('outage', (e: { code: string }) => outages.push(e.code));
    s.start();
    let cuts = 0;
    while (count(table) < n && cuts < 200) {
      cuts += Number(
        db.psql(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'cut_${table}'`),
      );
      await sleep(20);
    }
    await s.close(60_000);
    assert.ok(cuts > 0, 'sessions were cut');
    assert.ok(outages.length > 0 && outages.every((c) => c === ErrorCodes.AUDIT_STORE_UNAVAILABLE), `${outages}`);
    assert.equal(count(table), n);
    assert.equal(distinct(table), n);
    assert.equal((await verifyTable(table)).verdict, 'intact');
  });

  it('resumes after SIGKILL of the shipper mid-batch, with every line once', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeEntries(file, 40_000);
    const child = spawn(process.execPath, [CLI, 'ship', file, '--postgres', db.url, '--table', table, '--follow'], {
      stdio: 'ignore',
    });
    await waitFor('the first batches', () => count(table) > 0);
    child.kill('SIGKILL');
    await once(child, 'exit');
    const partial = count(table);
    assert.ok(partial > 0 && partial < n, `killed after ${partial} of ${n}`);
    const r = await cli(['ship', file, '--postgres', db.url, '--table', table]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(count(table), n);
    assert.equal(distinct(table), n);
    assert.equal((await verifyTable(table)).verdict, 'intact');
  });

  it('CLI: ship --follow waits for a live file that is not there yet (before the first entry, between a rename and the next)', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const child = spawn(process.execPath, [CLI, 'ship', file, '--postgres', db.url, '--table', table, '--follow'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d;
    });
    const exited = once(child, 'exit');
    await sleep(500);
    assert.equal(child.exitCode, null, `still running: ${stderr}`);
    const n = await writeEntries(file, 500);
    await waitFor('the file, once it appeared', () => count(table) === n);
    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, stderr);
    assert.equal(distinct(table), n);
    assert.equal((await verifyTable(table)).verdict, 'intact');
  });

  it('a shipper restarted after two rotations ships the file it never saw (rotated twice while it was down)', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const postgres = { connectionString: db.url, table };
    const log = createAuditLog({ filename: file });
    const write = async (k: number, tag: string) => {
      for (let i = 0; i < k; i++)
        log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/${tag}/${i}` });
      await log.drained();
    };
    await write(200, 'a');
    const first = new PostgresShipper({ filename: file, postgres, follow: false });
    first.start();
    await first.close(60_000);
    await write(100, 'a2'); // not shipped: the shipper is down from here
    renameSync(file, `${file}.1`);
    await write(150, 'b'); // the log notices the rename and writes a new file
    renameSync(`${file}.1`, `${file}.2`);
    renameSync(file, `${file}.1`);
    await write(50, 'c');
    await log.close();
    const files = [`${file}.2`, `${file}.1`, file];
    const inFiles = files.reduce((n, f) => n + lines(f), 0);
    const again = new PostgresShipper({ filename: file, postgres, follow: false });
    again.start();
    await again.close(60_000);
    assert.equal(count(table), inFiles, 'every line of the three files');
    assert.equal(distinct(table), inFiles);
    const [fromFiles, fromStore] = await Promise.all([verifyAuditLog(files), verifyTable(table)]);
    assert.equal(fromFiles.verdict, 'intact', JSON.stringify(fromFiles.findings));
    assert.equal(fromStore.verdict, 'intact', JSON.stringify(fromStore.findings.slice(0, 3)));
    assert.equal(fromStore.entries, fromFiles.entries);
  });

  it('follows rotation while following: the renamed file is shipped to its end, then the new one', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const s = new PostgresShipper({
      filename: file,
      postgres: { connectionString: db.url, table },
      rotationGrace: 300,
      pollInterval: 20,
    });
    s.start();
    const log = createAuditLog({ filename: file });
    const write = (k: number) => {
      for (let i = 0; i < k; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/r/${i}` });
    };
    write(300);
    await log.drained();
    await waitFor('first lines shipped', () => count(table) > 0);
    renameSync(file, `${file}.1`);
    write(300); // the log notices the rotation at its next batch and opens a new file
    await log.drained();
    write(200);
    await log.close();
    await waitFor('the new file', async () => {
      try {
        return lines(file) > 0;
      } catch {
        return false;
      }
    });
    await s.flush(20_000);
    await sleep(500); // past rotationGrace: the old file is done
    await s.close(20_000);
    const total = lines(`${file}.1`) + lines(file);
    assert.equal(count(table), total);
    assert.equal(distinct(table), total);
    assert.equal(db.psql(`SELECT count(*) FROM ${table}_cursor WHERE done`), '1');
    const r = await verifyTable(table);
    assert.equal(r.verdict, 'intact', JSON.stringify(r.findings));
  });

  it('rides out a database outage: the app keeps writing, the backlog waits in the file and is sent on recovery', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.url, table } });
    const events: string[] = [];
    log.shipper?.on('outage', (e: { code: string }) => events.push(`outage ${e.code}`));
    log.shipper?.on('recovered', () => events.push('recovered'));
    let written = 0;
    const timer = setInterval(() => {
      for (let i = 0; i < 20; i++)
        if (log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/o/${written}` })) written++;
    }, 5);
    await sleep(300);
    await db.stop();
    await sleep(3000);
    assert.ok(log.shipper && log.shipper.lag.bytes > 0, 'a backlog while the database is down');
    assert.equal(log.shipper?.outage, true);
    await db.start();
    await sleep(500);
    clearInterval(timer);
    await log.close({ shipTimeout: 30_000 });
    assert.equal(count(table), written + 2);
    assert.equal(distinct(table), written + 2);
    assert.deepEqual(events, [`outage ${ErrorCodes.AUDIT_STORE_UNAVAILABLE}`, 'recovered']);
    assert.equal((await verifyTable(table)).verdict, 'intact');
  });

  it('close() rejects with ERR_PROXY_AUDIT_SHIP_TIMEOUT while the database is down; the next shipper sends the rest', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.url, table } });
    for (let i = 0; i < 100; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/t/${i}` });
    await db.stop();
    try {
      const t0 = Date.now();
      await assert.rejects(log.close({ shipTimeout: 1000 }), (e: { code: string }) => e.code === ErrorCodes.AUDIT_SHIP_TIMEOUT);
      assert.ok(Date.now() - t0 < 10_000);
    } finally {
      await db.start();
    }
    assert.equal(lines(file), 102);
    await ship(file, table);
    assert.equal(count(table), 102);
  });

  it('close() rejects at its deadline while the database stops answering mid-batch (frozen, no reset)', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.url, table } });
    const shipper = log.shipper as NonNullable<typeof log.shipper>;
    log.write({ category: 'web', action: 'http-request', outcome: 'success', path: '/before' });
    await shipper.flush(10_000); // the pool holds a session now: the next batch needs no new connection
    // Every process of the cluster stopped: the session's socket stays open and nothing answers (a network
    // partition that drops packets, a server that hangs).
    await whileFrozen(db, async () => {
      for (let i = 0; i < 100; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/t/${i}` });
      await sleep(300); // the batch is sent, and waits
      const t0 = Date.now();
      await assert.rejects(log.close({ shipTimeout: 500 }), (e: { code: string }) => e.code === ErrorCodes.AUDIT_SHIP_TIMEOUT);
      const took = Date.now() - t0;
      // (it waited for the frozen server for as long as that lasted)
      assert.ok(took < 5000, `close() took ${took} ms`);
    });
    // The cut transaction rolled back; the next shipper sends the rest, nothing twice.
    assert.equal(lines(file), 103);
    await ship(file, table);
    assert.equal(count(table), 103);
    assert.equal(distinct(table), 103);
  });

  it('every statement is cut at the deadline, not only a batch: a shipper connecting to a frozen database ends at once', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeEntries(file, 20);
    // The application's own pool, with one session open and idle: the shipper's first statements (checking the
    // table) go out on it and wait.
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    pool.on('error', () => {});
    await pool.query('SELECT 1');
    await whileFrozen(db, async () => {
      const s = new PostgresShipper({ filename: file, postgres: { pool, table }, follow: false });
      s.start();
      await sleep(300);
      const t0 = Date.now();
      await assert.rejects(s.close(500), (e: { code: string }) => e.code === ErrorCodes.AUDIT_SHIP_TIMEOUT);
      const took = Date.now() - t0;
      // The loop ended with the cut (it did not sit out the grace period on a statement nobody answers), and
      // the cut session left the pool.
      assert.ok(took < 1200, `close() took ${took} ms`);
      assert.equal(pool.totalCount, 0);
      assert.equal(s.lag.bytes, readFileSync(file).length, 'after close() the lag still says what was left');
    });
    await pool.end();
    await ship(file, table);
    assert.equal(count(table), 22);
  });

  it('lag.ms is the age of the oldest line not yet stored: small under steady writes, growing while the store is down', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.url, table } });
    const shipper = log.shipper as NonNullable<typeof log.shipper>;
    let n = 0;
    const writer = setInterval(() => {
      log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/steady/${n++}` });
    }, 20);
    try {
      const seen: number[] = [];
      for (let i = 0; i < 15; i++) {
        await sleep(200);
        seen.push(shipper.lag.ms);
      }
      // The shipper started 3 s ago and never caught up at a look (lines keep coming), yet nothing waits long.
      assert.ok(Math.max(...seen.slice(5)) < 1500, `lag.ms ${seen.join(' ')}`);
      await db.stop();
      try {
        await sleep(2500);
        const down = shipper.lag.ms;
        assert.ok(down >= 2000, `lag.ms ${down} after 2.5 s down`);
      } finally {
        await db.start();
      }
    } finally {
      clearInterval(writer);
    }
    await log.close({ shipTimeout: 30_000 });
    assert.equal(count(table), n + 2);
  });

  it('a database that stops answering mid-batch is an outage after stallTimeout, recovered once it answers; lag keeps counting', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeEntries(file, 10);
    const s = new PostgresShipper({ filename: file, postgres: { connectionString: db.url, table }, stallTimeout: 500 });
    const events: string[] = [];
    s.on('outage', (e: { code: string }) => events.push(`outage ${e.code}`));
    s.on('recovered', () => events.push('recovered'));
    s.start();
    await s.flush(10_000);
    await whileFrozen(db, async () => {
      appendFileSync(file, readFileSync(file)); // (the same lines again: a resend the store ignores)
      await waitFor('the outage', () => events.length > 0, 5000);
      assert.deepEqual(events, [`outage ${ErrorCodes.AUDIT_STORE_UNAVAILABLE}`]);
      assert.equal(s.outage, true);
      const before = s.lag.bytes;
      appendFileSync(file, readFileSync(file).subarray(0, 1000));
      await sleep(300);
      const during = s.lag.bytes;
      assert.ok(during >= before + 1000, `lag ${before} → ${during} while the batch waits`);
      assert.equal(s.stats.failures, 0, 'nothing failed: the statement still waits');
    });
    await waitFor('the recovery', () => events.includes('recovered'), 20_000);
    assert.equal(s.outage, false);
    await s.close(20_000).catch(() => {}); // (the 1000 bytes end mid-line: nothing more to ship)
    assert.equal(distinct(table), 10 + 2);
  });

  it('a connection still being made to a frozen database is abandoned at the deadline: close() ends at once', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeEntries(file, 20);
    // No session open: the shipper's first statement needs a new connection, which the frozen postmaster
    // accepts (the kernel does) and never answers.
    const events: string[] = [];
    await whileFrozen(db, async () => {
      const s = new PostgresShipper({ filename: file, postgres: { connectionString: db.url, table }, follow: false });
      s.on('outage', () => events.push('outage'));
      s.start();
      await sleep(300);
      const t0 = Date.now();
      await assert.rejects(s.close(500), (e: { code: string }) => e.code === ErrorCodes.AUDIT_SHIP_TIMEOUT);
      const took = Date.now() - t0;
      // Not the grace period after the deadline, nor the pool's connectionTimeoutMillis (10 s).
      assert.ok(took < 900, `close() took ${took} ms`);
      assert.deepEqual(events, [], 'the cut at close() is not an outage');
      assert.equal(s.lag.bytes, readFileSync(file).length);
      assert.equal(s.stats.failures, 0);
    });
    await ship(file, table);
    assert.equal(count(table), 22);
  });

  it('flush() and close() with a short deadline resolve when nothing is left, reject when something is; lag after close', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const written = await writeEntries(file, 10);
    const s = new PostgresShipper({ filename: file, postgres: { connectionString: db.url, table } });
    after(() => s.close(1000).catch(() => {})); // (a failure above must not leave it running)
    await s.flush(10_000);
    // Deadlines shorter than the loop's next look (a stat and a read): what counts is what is left.
    for (let i = 0; i < 50; i++) await s.flush(i % 2);
    appendFileSync(file, 'not an entry\n');
    await assert.rejects(s.flush(0), (e: { code: string; lag: { bytes: number } }) => e.code === ErrorCodes.AUDIT_SHIP_TIMEOUT);
    await s.flush(10_000);
    await s.close(1);
    assert.deepEqual(s.lag, { bytes: 0, ms: 0 });
    assert.equal(count(table), written);
    assert.equal(count(`${table}_raw`), 1);
  });

  it('ships past torn fragments and splits a fragment glued to a whole line', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeEntries(file, 5);
    const text = readFileSync(file, 'utf8').split('\n');
    // A torn head glued to the next whole line, and a blank line: what a crash and a restart can leave.
    const damaged = [text[0], `${(text[1] as string).slice(0, 40)}${text[1]}`, '', ...text.slice(2)].join('\n');
    writeFileSync(file, damaged);
    const s = await ship(file, table);
    assert.deepEqual([s.stats.inserted, s.stats.raw], [n, 1]);
    const r = await verifyTable(table);
    assert.equal(r.verdict, 'intact');
    assert.equal(r.fragments, 1);
  });

  it('verifies from the store: intact, an edited row, a deleted row, a killed writer (unsealed), a missing table', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const keyFile = join(dir, 'signing.key');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const pub = publicKey.export({ type: 'spki', format: 'pem' });
    const signedTable = async (n: number) => {
      const table = freshTable();
      await init(table);
      const file = join(dir, `${table}.jsonl`);
      await writeEntries(file, n, { signingKey: privateKey, checkpointEvery: 100 });
      await ship(file, table);
      return table;
    };
    const cases: { name: string; damage?: (t: string) => string; verdict: string; exitCode: number; code?: string }[] = [
      { name: 'intact', verdict: 'intact', exitCode: 0 },
      {
        name: 'a row edited by a superuser',
        damage: (t) => `UPDATE ${t} SET line = replace(line, '"/e/41"', '"/e/14"') WHERE path = '/e/41'`,
        verdict: 'tampered',
        exitCode: 1,
        code: VerifyCodes.HASH_MISMATCH,
      },
      {
        name: 'a row deleted by a superuser',
        damage: (t) => `DELETE FROM ${t} WHERE path = '/e/77'`,
        verdict: 'tampered',
        exitCode: 1,
        code: VerifyCodes.SEQUENCE_GAP,
      },
    ];
    for (const c of cases) {
      const table = await signedTable(300);
      // A superuser can bypass the triggers (replica mode): what verification is there to catch.
      if (c.damage) db.psql(`SET session_replication_role = replica; ${c.damage(table)}`);
      const r = await verifyTable(table, { publicKey: pub });
      assert.equal(r.verdict, c.verdict, `${c.name}: ${JSON.stringify(r.findings)}`);
      assert.equal(r.exitCode, c.exitCode, c.name);
      if (c.code)
        assert.ok(
          r.findings.some((f) => f.code === c.code && f.severity === 'tampered'),
          `${c.name}: ${JSON.stringify(r.findings)}`,
        );
    }

    // A writer killed by SIGKILL: its chain ends without its final checkpoint and nothing witnesses it.
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const child: ChildProcess = fork(WRITER, [file, '250', keyFile, 'kill'], { stdio: 'ignore' });
    await once(child, 'message');
    child.kill('SIGKILL');
    await once(child, 'exit');
    await ship(file, table);
    writeFileSync(join(dir, 'pub.pem'), pub);
    const r = await verifyTable(table, { publicKey: pub });
    assert.equal(r.verdict, 'unsealed', JSON.stringify(r.findings));
    assert.equal(r.exitCode, 3);
    const f = r.findings.find((x) => x.code === VerifyCodes.CHAIN_UNSEALED);
    assert.ok(f);
    assert.equal(r.chainSummaries[0]?.status, 'unsealed');
    const viaCli = await cli(['verify', '--postgres', db.url, '--table', table, '--public-key', join(dir, 'pub.pem')]);
    assert.equal(viaCli.code, 3, viaCli.stdout + viaCli.stderr);
    assert.match(viaCli.stdout, /^UNSEALED/);

    const missing = await verifyTable('no_such_table');
    assert.equal(missing.verdict, 'cannot-verify');
    assert.equal(missing.exitCode, 2);
  });

  it('CLI: pg-init, ship and verify --postgres', async () => {
    const table = freshTable();
    const i1 = await cli(['pg-init', '--postgres', db.url, '--table', table, '--app-role', 'app']);
    assert.equal(i1.code, 0, i1.stderr);
    assert.match(i1.stdout, new RegExp(`${table} ready`));
    assert.equal((await cli(['pg-init', '--postgres', db.url, '--table', table])).code, 0);
    const a = join(dir, `${table}-a.jsonl`);
    const b = join(dir, `${table}-b.jsonl`);
    const n = (await writeEntries(a, 100)) + (await writeEntries(b, 50));
    const s = await cli(['ship', a, b, '--postgres', db.url, '--table', table]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /102 rows inserted, 0 already there/);
    assert.equal(count(table), n);
    const v = await cli(['verify', '--postgres', db.url, '--table', table, '--json']);
    assert.equal(v.code, 0, v.stdout);
    assert.equal(JSON.parse(v.stdout).entries, n);
    const bad = [
      { args: ['ship', a], why: 'no --postgres' },
      { args: ['ship', '--postgres', db.url], why: 'no file' },
      { args: ['verify', a, '--postgres', db.url], why: 'both files and --postgres' },
      { args: ['pg-init'], why: 'no --postgres' },
    ];
    for (const c of bad) assert.equal((await cli(c.args)).code, 2, c.why);
    // No table: a one-off ship stops at once and says what to do (a following one waits for pg-init).
    const none = await cli(['ship', a, '--postgres', db.url, '--table', 'not_initialised']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /pg-init/);
    // What no retry clears (no such database, a role the server does not know): a one-off ship says so and
    // stops instead of waiting for ever.
    const cases = [
      { url: db.url.replace('@/postgres?', '@/no_such_database?'), message: /no_such_database/ },
      { url: db.urlAs('no_such_role'), message: /no_such_role/ },
    ];
    for (const c of cases) {
      const r = await cli(['ship', a, '--postgres', c.url, '--table', table]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, c.message);
    }
  });

  it('CLI: a rotated set named newest first is shipped oldest first, and verifies from the store as from the files', async () => {
    const table = freshTable();
    assert.equal((await cli(['pg-init', '--postgres', db.url, '--table', table])).code, 0);
    const live = join(dir, `${table}-rot.jsonl`);
    const log = createAuditLog({ filename: live });
    const entry = (i: number) => ({ category: 'web', action: 'http-request', outcome: 'success', path: `/r/${i}` }) as const;
    for (let i = 0; i < 20; i++) log.write(entry(i));
    await sleep(50);
    renameSync(live, `${live}.1`); // rotated: the chain goes on in a new file at the same name
    for (let i = 20; i < 40; i++) log.write(entry(i));
    await log.close();
    // The order a shell's glob (and `ls`) gives: the live file before its rotated predecessor.
    const s = await cli(['ship', live, `${live}.1`, '--postgres', db.url, '--table', table]);
    assert.equal(s.code, 0, s.stderr);
    assert.ok(s.stdout.indexOf(`${live}.1:`) < s.stdout.indexOf(`${live}:`), 'the rotated file went first');
    const files = await cli(['verify', live, `${live}.1`, '--json']);
    const store = await cli(['verify', '--postgres', db.url, '--table', table, '--json']);
    assert.equal(files.code, 0, files.stdout);
    assert.equal(store.code, files.code, store.stdout);
    assert.equal(JSON.parse(store.stdout).verdict, JSON.parse(files.stdout).verdict);
    assert.equal(JSON.parse(store.stdout).entries, JSON.parse(files.stdout).entries);
  });
});

describe('the package without PostgreSQL', () => {
  it('importing the main entry does not load pg', async () => {
    const main = join(__dirname, '../../src/index.js');
    const { stdout } = await execFileP(process.execPath, [
      '-e',
      `require(${JSON.stringify(main)}); console.log(Object.keys(require.cache).filter((k) => /node_modules[\\\\/]pg[\\\\/]/.test(k)).length)`,
    ]);
    assert.equal(stdout.trim(), '0');
  });

  it('CLI: ship refuses, before connecting, a missing file, a directory and a gzip-compressed file', async () => {
    const d = tempDir('ppa-ship-refuse-');
    const gz = join(d, 'audit.jsonl.1.gz');
    writeFileSync(gz, gzipSync('{"@timestamp":"2026-12-01T00:00:00.000Z"}\n'));
    const cases = [
      { file: join(d, 'no-such.jsonl'), message: /no such file/ },
      { file: d, message: /not a regular file/ },
      { file: gz, message: /gzip-compressed/ },
    ];
    for (const c of cases) {
      // A port nobody listens on: a refusal that waited for the database would hang instead.
      const r = await cli(['ship', c.file, '--postgres', 'postgres://nobody@127.0.0.1:1/none']);
      assert.equal(r.code, 2, `${c.file}: ${r.stderr}`);
      assert.match(r.stderr, c.message);
    }
  });

  it('rejects bad options with a TypeError at construction', () => {
    const cases = [
      { name: 'no filename', options: { postgres: 'postgres://x' } },
      { name: 'empty connection string', options: { filename: 'x', postgres: '' } },
      { name: 'bad table', options: { filename: 'x', postgres: { connectionString: 'postgres://x', table: 'a;drop' } } },
      { name: 'bad batchSize', options: { filename: 'x', postgres: 'postgres://x', batchSize: 0 } },
      { name: 'bad pool', options: { filename: 'x', postgres: { pool: {} } } },
    ];
    for (const c of cases) assert.throws(() => new PostgresShipper(c.options as never), TypeError, c.name);
    assert.throws(() => createAuditLog({ transports: [], postgres: 'postgres://x' } as never), TypeError);
  });
});
