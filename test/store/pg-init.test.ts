// pg-init against a real PostgreSQL: what it says when PostgreSQL refuses it (and the shipper and verifier
// with the same words), and the append-only guard it puts back on every partition.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAuditLog, ErrorCodes, PostgresShipper, pgInit, RawReasons, VerifyCodes, verifyAuditLog } from '../../src/index.js';
import { cli, close, listen, tempDir } from '../helpers.js';
import { needsPostgres, startPostgres, type TestPostgres } from './postgres.js';

/** A TCP port of 127.0.0.1 that was free a moment ago (PostgreSQL cannot be told to take port 0). */
async function freePort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await close(s);
  return port;
}

/** The rejection of `p`, which must reject. */
async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; cause?: { code?: string } }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string; cause?: { code?: string } };
  }
  throw new Error('expected a rejection');
}

let tables = 0;
const freshTable = () => `i${process.pid}_${++tables}`;

describe('pg-init', needsPostgres(), () => {
  let db: TestPostgres;
  let dir: string;
  const hba = () => join(db.dir, 'data', 'pg_hba.conf');

  before(async () => {
    db = await startPostgres();
    db.psql('CREATE ROLE app LOGIN');
    db.psql("CREATE ROLE pw_user LOGIN PASSWORD 'right'");
    // pw_user logs in with a password (everyone else: trust, as the cluster was made).
    writeFileSync(hba(), `local all pw_user scram-sha-256\n${readFileSync(hba(), 'utf8')}`);
    db.psql('SELECT pg_reload_conf()');
    dir = tempDir('ppa-pginit-');
  });
  after(async () => {
    await db?.stop();
  });

  describe('refusals: a typed code, what to do, and the pg error as cause', () => {
    const url = (role: string, database = 'postgres', extra = '') =>
      `postgresql://${role}@/${database}?host=${encodeURIComponent(db.dir)}&port=5432${extra}`;
    const cases: {
      name: string;
      url: () => string;
      code: string;
      cause: string | undefined;
      says: RegExp;
    }[] = [
      {
        name: 'wrong password',
        url: () => url('pw_user:wrong'),
        code: ErrorCodes.AUDIT_STORE_ACCESS,
        cause: '28P01',
        says: /wrong password/,
      },
      {
        name: 'no such role',
        url: () => url('nobody_here'),
        code: ErrorCodes.AUDIT_STORE_ACCESS,
        cause: '28000',
        says: /no such role.*CREATE ROLE/,
      },
      {
        name: 'no such database',
        url: () => url('postgres', 'no_such_db'),
        code: ErrorCodes.AUDIT_STORE_ACCESS,
        cause: '3D000',
        says: /no such database.*createdb/,
      },
      {
        name: 'permission denied to create (the app role)',
        url: () => url('app'),
        code: ErrorCodes.AUDIT_STORE_ACCESS,
        cause: '42501',
        says: /permission denied: run pg-init as the owner/,
      },
      {
        name: 'no server at the socket',
        url: () => `postgresql://postgres@/postgres?host=${encodeURIComponent(dir)}&port=5432`,
        code: ErrorCodes.AUDIT_STORE_UNAVAILABLE,
        cause: 'ENOENT',
        says: /no PostgreSQL socket .*is PostgreSQL running/,
      },
      {
        name: 'TLS asked of a server that offers none',
        url: () => url('postgres', 'postgres', '&sslmode=verify-full'),
        code: ErrorCodes.AUDIT_STORE_ACCESS,
        cause: undefined,
        says: /offers none/,
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const err = await rejection(pgInit({ postgres: { connectionString: c.url(), table: freshTable() } }));
        assert.equal(err.code, c.code, err.message);
        assert.match(err.message, c.says);
        assert.ok(err.cause instanceof Error, 'the pg error is the cause');
        assert.equal(err.cause.code, c.cause);
        // The CLI: the same message, exit 1.
        const r = await cli(['pg-init', '--postgres', c.url(), '--table', freshTable()]);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, c.says);
        assert.doesNotMatch(r.stderr, /Usage:/);
      });
    }

    it('an application role that does not exist: what to do, not "unavailable"', async () => {
      const table = freshTable();
      const err = await rejection(pgInit({ postgres: { connectionString: db.url, table }, appRole: 'no_such_app' }));
      assert.equal(err.code, ErrorCodes.AUDIT_STORE_ACCESS, err.message);
      assert.match(err.message, /no such role for --app-role.*CREATE ROLE/);
      assert.equal(err.cause?.code, '42704');
      const r = await cli(['pg-init', '--postgres', db.url, '--table', table, '--app-role', 'no_such_app']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /no such role for --app-role/);
    });

    it('connection refused and a server that never answers (TCP)', async () => {
      const port = await freePort();
      const refused = await rejection(
        pgInit({ postgres: { connectionString: `postgresql://postgres@127.0.0.1:${port}/postgres`, table: freshTable() } }),
      );
      assert.equal(refused.code, ErrorCodes.AUDIT_STORE_UNAVAILABLE);
      assert.match(refused.message, new RegExp(`nothing listens at 127\\.0\\.0\\.1:${port}`));
      assert.equal(refused.cause?.code, 'ECONNREFUSED');
      const r = await cli(['pg-init', '--postgres', `postgresql://postgres@127.0.0.1:${port}/postgres`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /nothing listens/);

      const sockets = new Set<Socket>();
      const silent: Server = createServer((s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      const p = await listen(silent);
      try {
        const started = Date.now();
        const timeout = await rejection(
          pgInit({
            postgres: {
              connectionString: `postgresql://postgres@127.0.0.1:${p}/postgres`,
              table: freshTable(),
              poolConfig: { connectionTimeoutMillis: 300 },
            },
          }),
        );
        assert.equal(timeout.code, ErrorCodes.AUDIT_STORE_UNAVAILABLE);
        assert.match(timeout.message, /no answer within the connection timeout/);
        assert.ok(Date.now() - started < 5000, 'it gave up at the timeout');
      } finally {
        for (const s of sockets) s.destroy();
        await close(silent);
      }
    });

    it('a server that accepts this connection only over TLS', async () => {
      const port = await freePort();
      const tcp = await startPostgres({ listen_addresses: "'127.0.0.1'", port: String(port) });
      try {
        const file = join(tcp.dir, 'data', 'pg_hba.conf');
        writeFileSync(file, `local all all trust\nhostnossl all all 127.0.0.1/32 reject\n${readFileSync(file, 'utf8')}`);
        tcp.psql('SELECT pg_reload_conf()');
        const u = `postgresql://postgres@127.0.0.1:${port}/postgres`;
        const err = await rejection(pgInit({ postgres: { connectionString: u, table: freshTable() } }));
        assert.equal(err.code, ErrorCodes.AUDIT_STORE_ACCESS);
        assert.match(err.message, /only over TLS: add sslmode=verify-full/);
        assert.equal(err.cause?.code, '28000');
        const r = await cli(['pg-init', '--postgres', u]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /only over TLS/);
      } finally {
        await tcp.stop();
      }
    });

    it('shipping and verifying say the same: the one-off ship exits 1, the shipper keeps retrying, verify cannot verify', async () => {
      const table = freshTable();
      await pgInit({ postgres: { connectionString: db.url, table }, appRole: 'app' });
      const file = join(dir, `${table}.jsonl`);
      const log = createAuditLog({ filename: file });
      log.write({ category: 'web', action: 'http-request', outcome: 'success' });
      await log.close();
      const wrong = url('pw_user:wrong');
      const ship = await cli(['ship', file, '--postgres', wrong, '--table', table]);
      assert.equal(ship.code, 1, ship.stderr);
      assert.match(ship.stderr, /wrong password/);

      const s = new PostgresShipper({ filename: file, postgres: { connectionString: wrong, table }, retryMax: 50 });
      const codes: string[] = [];
      s.on('error', (e: { code: string }) => codes.push(e.code));
      s.start();
      while (codes.length < 2) await new Promise((r) => setTimeout(r, 20));
      assert.equal(s.outage, true);
      assert.deepEqual([...new Set(codes)], [ErrorCodes.AUDIT_STORE_ACCESS]);
      await rejection(s.close(100));

      const v = await verifyAuditLog({ postgres: { connectionString: wrong, table } });
      assert.equal(v.verdict, 'cannot-verify');
      assert.match(v.findings[0]?.message ?? '', /wrong password/);
      const cv = await cli(['verify', '--postgres', wrong, '--table', table]);
      assert.equal(cv.code, 2);
    });
  });

  describe('the append-only guard on every partition', () => {
    const refused = (sql: string) => {
      assert.throws(() => db.psql(sql), /append-only/, sql);
    };

    it('is put back where it was dropped, disabled or changed, and pg-init says where', async () => {
      const table = freshTable();
      const init = () => pgInit({ postgres: { connectionString: db.url, table }, appRole: 'app' });
      const first = await init();
      assert.deepEqual(first.repaired, [], 'a new table: creation, nothing repaired');
      assert.deepEqual((await init()).repaired, [], 'run again: nothing to repair');
      // A store of the previous pg-init: the same objects but the check function, added by the next run.
      db.psql(`DROP FUNCTION ${table}_check_append_only(boolean)`);
      assert.deepEqual((await init()).repaired, [], 'upgraded: nothing to repair');
      assert.equal(db.psql(`SELECT count(*) FROM ${table}_check_append_only()`), '0');
      const [m1, m2] = first.partitions.filter((p) => /_\d{6}$/.test(p)) as [string, string];
      const insert = (part: string) => {
        const month = `${part.slice(-6, -2)}-${part.slice(-2)}`;
        db.psql(
          `INSERT INTO ${table} (chain, sequence, ts, line) VALUES ('c', ${Date.now() % 1e9}, '${month}-15T00:00:00Z', 'x')`,
        );
      };
      insert(m1);
      insert(m2);
      db.psql(`INSERT INTO ${table} (chain, sequence, ts, line) VALUES ('c', 1, '3000-01-01T00:00:00Z', 'x')`);
      db.psql(
        `INSERT INTO ${table}_raw (file_id, "offset", length, digest, bytes, reason, path, source) VALUES ('f', 0, 1, 'd', 'x', 'r', 'p', 's')`,
      );
      // PostgreSQL refuses to drop the row trigger's clone on one partition, but it can be disabled there,
      // and TRUNCATE triggers are each partition's own.
      assert.throws(() => db.psql(`DROP TRIGGER ${table}_append_only ON ${m1}`), /requires it/);
      db.psql(`ALTER TABLE ${m1} DISABLE TRIGGER ${table}_append_only`);
      db.psql(`ALTER TABLE ${m2} ENABLE REPLICA TRIGGER ${table}_append_only`);
      db.psql(`DROP TRIGGER ${table}_no_truncate ON ${m2}`);
      db.psql(`DROP TRIGGER ${table}_no_truncate ON ${table}_default`);
      db.psql(`DROP TRIGGER ${table}_append_only ON ${table}_raw`);
      // A partition made by hand has the row trigger's clone, not a TRUNCATE trigger.
      db.psql(`CREATE TABLE ${table}_209901 PARTITION OF ${table} FOR VALUES FROM ('2099-01-01Z') TO ('2099-02-01Z')`);
      // The damage is real: each of these goes through.
      db.psql(`UPDATE ${m1} SET line = 'y'`);
      db.psql(`DELETE FROM ${m2}`);
      db.psql(`TRUNCATE ${table}_default`);
      db.psql(`UPDATE ${table}_raw SET reason = 'edited'`);
      const health = db.psql(`SELECT relation || ' ' || trigger_name || ' ' || problem FROM ${table}_check_append_only()`);
      assert.equal(health.split('\n').length, 6, health);
      // verify --postgres says so, as notes: the verdict is the rows' (edited rows: tampered, whatever the guard).
      const unguarded = async () =>
        (await verifyAuditLog({ postgres: { connectionString: db.url, table } })).findings
          .filter((f) => f.code === VerifyCodes.STORE_UNGUARDED)
          .map((f) => f.message.slice(0, f.message.indexOf(':', f.message.indexOf(':') + 1)))
          .sort();
      assert.deepEqual(
        await unguarded(),
        [
          `public.${m1}: append-only trigger ${table}_append_only disabled`,
          `public.${m2}: append-only trigger ${table}_append_only disabled`,
          `public.${m2}: append-only trigger ${table}_no_truncate missing`,
          `public.${table}_209901: append-only trigger ${table}_no_truncate missing`,
          `public.${table}_default: append-only trigger ${table}_no_truncate missing`,
          `public.${table}_raw: append-only trigger ${table}_append_only missing`,
        ].sort(),
      );

      const r = await cli(['pg-init', '--postgres', db.url, '--table', table, '--app-role', 'app']);
      assert.equal(r.code, 0, r.stderr);
      const expected = [
        `public.${m1}: ${table}_append_only disabled`,
        `public.${m2}: ${table}_append_only disabled`,
        `public.${m2}: ${table}_no_truncate missing`,
        `public.${table}_209901: ${table}_no_truncate missing`,
        `public.${table}_default: ${table}_no_truncate missing`,
        `public.${table}_raw: ${table}_append_only missing`,
      ];
      assert.deepEqual(
        r.stderr
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => l.replace('proxy-protocol-audit pg-init: append-only guard put back: ', ''))
          .sort(),
        expected.sort(),
      );
      assert.equal(db.psql(`SELECT count(*) FROM ${table}_check_append_only()`), '0');
      assert.deepEqual(await unguarded(), []);
      // (a row trigger fires only for rows: every partition gets one again)
      insert(m1);
      insert(m2);
      insert(`${table}_209901`);
      db.psql(`INSERT INTO ${table} (chain, sequence, ts, line) VALUES ('c', 2, '3000-01-01T00:00:00Z', 'x')`);
      for (const part of [m1, m2, `${table}_default`, `${table}_209901`, table]) {
        refused(`UPDATE ${part} SET line = 'z'`);
        refused(`DELETE FROM ${part}`);
        refused(`TRUNCATE ${part}`);
      }
      refused(`UPDATE ${table}_raw SET reason = 'z'`);
      refused(`DELETE FROM ${table}_raw`);
      refused(`TRUNCATE ${table}_raw`);
      assert.deepEqual((await init()).repaired, [], 'repaired once, clean after');
    });

    it('puts back the trigger function, and the table trigger dropped or replaced (its partitions with it)', async () => {
      const table = freshTable();
      const init = () => pgInit({ postgres: { connectionString: db.url, table } });
      const { partitions } = await init();
      const month = partitions.find((p) => /_\d{6}$/.test(p)) as string;
      db.psql(`CREATE OR REPLACE FUNCTION ${table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`);
      db.psql(`INSERT INTO ${table} (chain, sequence, ts, line) VALUES ('c', 1, now(), 'x')`);
      db.psql(`UPDATE ${table} SET line = 'y'`);
      assert.deepEqual((await init()).repaired, [`"public"."${table}_append_only"(): function altered`]);
      refused(`UPDATE ${table} SET line = 'z'`);

      db.psql(`DROP TRIGGER ${table}_append_only ON ${table}`);
      // A same-named trigger of its own on a partition (that does nothing) must not keep the clone away.
      db.psql('CREATE OR REPLACE FUNCTION pass_through() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$');
      db.psql(`CREATE TRIGGER ${table}_append_only BEFORE INSERT ON ${month} FOR EACH ROW EXECUTE FUNCTION pass_through()`);
      db.psql(`DELETE FROM ${month}`);
      assert.deepEqual((await init()).repaired, [`public.${table}: ${table}_append_only missing`]);
      db.psql(`INSERT INTO ${table} (chain, sequence, ts, line) VALUES ('c', 2, now(), 'x')`);
      refused(`DELETE FROM ${month}`);

      db.psql(
        `CREATE OR REPLACE TRIGGER ${table}_append_only BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION pass_through()`,
      );
      assert.deepEqual((await init()).repaired, [`public.${table}: ${table}_append_only altered`]);
      refused(`UPDATE ${month} SET line = 'z'`);
      assert.deepEqual((await init()).repaired, []);
    });
  });

  it('an @timestamp with an offset lands as its instant, in its month partition', async () => {
    const table = freshTable();
    await pgInit({ postgres: { connectionString: db.url, table }, monthsAhead: 0 });
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file });
    for (let i = 0; i < 3; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/${i}` });
    await log.close();
    const lines = readFileSync(file, 'utf8').split('\n');
    // Lines of other writers (their hashes then do not match: verification says so, from the file and the store).
    const set = (n: number, at: string) => {
      lines[n] = (lines[n] as string).replace(/"@timestamp":"[^"]*"/, `"@timestamp":"${at}"`);
    };
    set(1, '2026-12-01T00:30:00.000+01:00');
    set(2, '2026-12-01T10:00:00.1234567-05:30');
    set(3, '2026-02-29T10:00:00Z');
    writeFileSync(file, lines.join('\n'));
    const s = new PostgresShipper({ filename: file, postgres: { connectionString: db.url, table }, follow: false });
    const raw: string[] = [];
    s.on('raw', (l: { reason: string }) => raw.push(l.reason));
    s.start();
    await s.close(30_000);
    assert.deepEqual(raw, [RawReasons.TIMESTAMP_INVALID]);
    const rows = db.psql(
      `SET TimeZone = 'UTC'; SELECT sequence || ' ' || to_char(ts, 'YYYY-MM-DD HH24:MI:SS.US') || ' ' || tableoid::regclass FROM ${table} WHERE sequence IN (2, 3) ORDER BY sequence`,
    );
    assert.equal(
      rows,
      [`2 2026-11-30 23:30:00.000000 ${table}_202611`, `3 2026-12-01 15:30:00.123456 ${table}_202612`].join('\n'),
    );
    assert.equal(db.psql(`SELECT count(*) FROM ${table} WHERE ts = '-infinity'`), '0');
    const fromStore = await verifyAuditLog({ postgres: { connectionString: db.url, table } });
    const fromFile = await verifyAuditLog(file);
    assert.equal(fromStore.verdict, 'tampered');
    assert.equal(fromFile.verdict, 'tampered');
    assert.deepEqual(
      fromStore.findings.map((f) => f.code),
      fromFile.findings.map((f) => f.code),
    );
  });
});
