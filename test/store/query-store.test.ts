import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { type AuditFields, auditReport, PostgresShipper, pgInit, type QueryFilters, queryAuditLog } from '../../src/index.js';
import { storeQuerySql } from '../../src/store/query-sql.js';
import { DAY, request, writeLog } from '../query/util.js';
import { needsPostgres, startPostgres, type TestPostgres } from './postgres.js';

const CLI = join(__dirname, '../../src/cli/index.js');
const exec = promisify(execFile);

async function lines(source: Parameters<typeof queryAuditLog>[0], filters: QueryFilters, options = {}) {
  const q = queryAuditLog(source, filters, options);
  const out: string[] = [];
  const verified: boolean[] = [];
  for await (const m of q) {
    out.push(m.line);
    verified.push(m.verified);
  }
  return { lines: out, verified, result: await q.result };
}

describe('query --postgres', needsPostgres(), () => {
  let db: TestPostgres;
  let file: string;
  let n = 0;
  const fresh = () => `q${process.pid}_${++n}`;
  const store = (table: string) => ({ postgres: { connectionString: db.url, table } });

  async function load(table: string, entries: AuditFields[]): Promise<string> {
    const log = await writeLog(entries);
    await pgInit({ postgres: { connectionString: db.url, table } });
    const s = new PostgresShipper({ filename: log.file, postgres: { connectionString: db.url, table }, follow: false });
    s.start();
    await s.close(60_000);
    return log.file;
  }

  before(async () => {
    db = await startPostgres();
    file = await load('audit_log', DAY);
  });
  after(async () => {
    await db?.stop();
  });

  const cases: { name: string; filters: QueryFilters }[] = [
    { name: 'everything', filters: {} },
    { name: 'an address', filters: { ip: '203.0.113.7' } },
    { name: 'a CIDR and a named range', filters: { ip: ['203.0.113.0/24', 'uniquelocal'] } },
    { name: 'IPv6 written another way', filters: { ip: '2001:0DB8::7' } },
    { name: 'not from our network', filters: { notIp: 'uniquelocal' } },
    { name: 'peer', filters: { peer: '198.51.100.9' } },
    { name: 'user', filters: { user: 'nurse-kim' } },
    { name: 'path by segments', filters: { path: '/patients/42' } },
    { name: 'route', filters: { route: '/patients/:id' } },
    { name: 'status class and code', filters: { status: ['4xx', 500] } },
    { name: 'outcome and action', filters: { outcome: 'failure', action: 'http-request' } },
    { name: 'a time range', filters: { from: '2024-03-01T09:00:00Z', to: '2024-03-02T10:30:00Z' } },
  ];
  for (const c of cases) {
    it(`answers as the files do: ${c.name}`, async () => {
      const fromFile = await lines(file, c.filters);
      const fromStore = await lines(store('audit_log'), c.filters);
      // The same entries, byte for byte; the file answer is in file order, the store's in time order.
      assert.deepEqual([...fromStore.lines].sort(), [...fromFile.lines].sort());
      assert.ok(fromStore.verified.every((v) => v));
      assert.equal(fromStore.result.verdict, 'intact');
      assert.ok(fromStore.result.findings.some((f) => f.code === 'chains-not-verified'));
    });
  }

  it('a row edited in the database: marked, tampered, exit 1', async () => {
    const table = fresh();
    await load(table, DAY);
    db.psql(`ALTER TABLE ${table}_default DISABLE TRIGGER USER`);
    for (const p of db.psql(`SELECT tableoid::regclass FROM ${table} WHERE user_id = 'nurse-kim' LIMIT 1`).split('\n')) {
      db.psql(`ALTER TABLE ${p} DISABLE TRIGGER USER`);
      db.psql(`UPDATE ${p} SET line = replace(line, '"status_code":403', '"status_code":200') WHERE user_id = 'nurse-kim'`);
    }
    const r = await lines(store(table), { user: 'nurse-kim' });
    assert.deepEqual(r.verified, [true, false]);
    assert.equal(r.result.verdict, 'tampered');
    const cli = await exec(process.execPath, [
      CLI,
      'query',
      '--postgres',
      db.url,
      '--table',
      table,
      '--user',
      'nurse-kim',
      '--json',
    ]).catch((e) => e);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /tampered: hash-mismatch/);
  });

  it('a row whose line was edited out of the answer (its columns still match): tampered, not intact', async () => {
    const table = fresh();
    await load(table, DAY);
    const before = await lines(store(table), { user: 'nurse-kim' });
    assert.equal(before.lines.length, 2);
    for (const p of db.psql(`SELECT DISTINCT tableoid::regclass FROM ${table} WHERE user_id = 'nurse-kim'`).split('\n')) {
      db.psql(`ALTER TABLE ${p} DISABLE TRIGGER USER`);
      db.psql(`UPDATE ${p} SET line = replace(line, '"nurse-kim"', '"nurse-kip"') WHERE user_id = 'nurse-kim'`);
    }
    const r = await lines(store(table), { user: 'nurse-kim' });
    assert.equal(r.lines.length, 0, 'judged by their text, the rows no longer match');
    assert.equal(r.result.entries, 2);
    assert.equal(r.result.verdict, 'tampered');
    assert.ok(r.result.findings.some((f) => f.code === 'hash-mismatch'));
  });

  it('the CLI: --postgres with --table, every format; report over the store', async () => {
    const { stdout, stderr } = await exec(process.execPath, [CLI, 'query', '--postgres', db.url, '--user', 'dr-lee', '--json']);
    assert.equal(stdout.trimEnd().split('\n').length, 4);
    assert.match(stderr, /INTACT/);
    assert.match(stderr, /chains-not-verified/);
    const csv = await exec(process.execPath, [
      CLI,
      'query',
      '--postgres',
      db.url,
      '--table',
      'audit_log',
      '--user',
      'dr-lee',
      '--csv',
    ]);
    assert.equal(csv.stdout.split('\r\n').length, 6);
    const rep = await auditReport(store('audit_log'));
    assert.deepEqual(rep.requests, { requests: 7, failures: 3 });
    const usage = await exec(process.execPath, [CLI, 'query', file, '--postgres', db.url]).catch((e) => e);
    assert.equal(usage.code, 2);
  });

  it('a database that cannot be reached: cannot-verify, exit 2', async () => {
    const r = await lines({ postgres: { connectionString: `${db.url.replace('5432', '5999')}&connect_timeout=2` } }, {});
    assert.equal(r.result.verdict, 'cannot-verify');
    assert.ok(r.result.findings.some((f) => f.code === 'unreadable'));
  });

  describe('the plan uses the indexes', () => {
    const table = 'plan_log';
    before(async () => {
      // 60,000 entries over 60 days, 600 addresses and 60 users: enough rows that a scan of the table would
      // cost the planner more than an index.
      const entries = Array.from({ length: 60_000 }, (_, i) =>
        request(i / 41.7, { clientIp: `10.9.${(i >> 8) % 3}.${i & 255}`, userId: `u${i % 60}`, path: `/patients/${i % 5000}` }),
      );
      await load(table, entries);
      db.psql(`ANALYZE ${table}`);
    });
    const plans: { name: string; filters: QueryFilters; index: RegExp; only?: string }[] = [
      {
        name: 'client address and time',
        filters: { ip: '10.9.1.7', from: '2024-03-10', to: '2024-03-20' },
        index: /_client_ip_ts_idx$/,
      },
      { name: 'a CIDR', filters: { ip: '10.9.2.0/28' }, index: /_client_ip_ts_idx$/ },
      { name: 'user', filters: { user: 'u7' }, index: /_user_id_ts_idx$/ },
      { name: 'path', filters: { path: '/patients/4242' }, index: /_path_ts_idx$/ },
      {
        name: 'time alone: the other months are pruned, the month read through an index',
        filters: { from: '2024-03-05T00:00:00Z', to: '2024-03-05T06:00:00Z' },
        index: /^plan_log_202403_/,
      },
    ];
    for (const p of plans) {
      it(p.name, () => {
        const { text, values } = storeQuerySql(`"${table}"`, p.filters);
        let sql = text;
        values.forEach((v, i) => {
          const literal = Array.isArray(v) ? `'{${v.join(',')}}'` : `'${String(v).replace(/'/g, "''")}'`;
          sql = sql.replace(new RegExp(`\\$${i + 1}(?!\\d)`), literal);
        });
        const plan = db.psql(`EXPLAIN (FORMAT JSON) ${sql}`);
        const nodes: { 'Node Type': string; 'Index Name'?: string; 'Relation Name'?: string }[] = [];
        const walk = (n: Record<string, unknown>) => {
          nodes.push(n as (typeof nodes)[number]);
          for (const c of (n.Plans as Record<string, unknown>[] | undefined) ?? []) walk(c);
        };
        walk((JSON.parse(plan) as { Plan: Record<string, unknown> }[])[0]?.Plan as Record<string, unknown>);
        const scans = nodes.filter((x) => /Scan/.test(x['Node Type']));
        assert.ok(scans.length > 0, plan);
        // The months holding the 60,000 rows (March and April 2024) are read through an index; the planner may
        // scan the nearly empty partitions of the writers' own start and stop entries, as it should.
        const big = (x: (typeof nodes)[number]) => /_20240[34]$/.test(x['Relation Name'] ?? '');
        assert.ok(!scans.some((x) => x['Node Type'] === 'Seq Scan' && big(x)), `a sequential scan of a full partition:\n${plan}`);
        assert.ok(
          scans.some((x) => p.index.test(x['Index Name'] ?? '')),
          `no ${p.index} index in the plan:\n${plan}`,
        );
      });
    }
  });
});
