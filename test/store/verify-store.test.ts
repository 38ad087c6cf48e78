// verify --postgres reads the table with one COPY: lines that COPY escapes, many raw pieces among the rows,
// the plan (the id indexes merged, never a sort of the table), and a session cut in the middle.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAuditLog, PostgresShipper, pgInit, type VerifyResult, verifyAuditLog } from '../../src/index.js';
import { tableNames } from '../../src/store/table.js';
import { rowsSql } from '../../src/store/verify-store.js';
import { sleep, tempDir } from '../helpers.js';
import { needsPostgres, startPostgres, type TestPostgres } from './postgres.js';

describe('verify --postgres through COPY', needsPostgres(), () => {
  let db: TestPostgres;
  let dir: string;
  before(async () => {
    db = await startPostgres();
    dir = tempDir('ppa-verify-store-');
  });
  after(async () => {
    await db?.stop();
  });

  const ship = async (file: string, table: string) => {
    const postgres = { connectionString: db.url, table };
    await pgInit({ postgres });
    const s = new PostgresShipper({ filename: file, postgres, follow: false });
    s.start();
    await s.close(60_000);
    return postgres;
  };
  const codes = (r: VerifyResult) => r.findings.map((f) => f.code);
  /** The file's and the store's results, asserted the same (verdict, every finding's code, counts). */
  const same = async (file: string, postgres: { connectionString: string; table: string }, name: string) => {
    const options = { maxFindings: 100_000 };
    const [fromFile, fromStore] = await Promise.all([verifyAuditLog(file, options), verifyAuditLog({ postgres, ...options })]);
    assert.equal(fromStore.verdict, fromFile.verdict, name);
    assert.deepEqual(codes(fromStore), codes(fromFile), name);
    assert.equal(fromStore.reason, fromFile.reason, name);
    assert.deepEqual(
      [fromStore.entries, fromStore.chains, fromStore.fragments, fromStore.findingsTotal],
      [fromFile.entries, fromFile.chains, fromFile.fragments, fromFile.findingsTotal],
      name,
    );
    return fromStore;
  };

  it('entries with backslashes, quotes, control characters and UTF-8 verify from the store as from the file', async () => {
    const file = join(dir, 'backslashes.jsonl');
    const agents = [
      'Mozilla/5.0 "quoted" \\ back\\slash',
      'tab\there, newline\nthere, \r\b\f\v\u0001\u001f',
      'C:\\\\Windows\\\\ \\N \\. \\x41 \\101',
      'é 日本語 😀 \u2028',
    ];
    const log = createAuditLog({ filename: file });
    for (let i = 0; i < 40; i++) {
      log.write({
        category: 'web',
        action: 'http-request',
        outcome: 'success',
        path: `/b/${i}`,
        userAgent: agents[i % agents.length],
      });
    }
    await log.close();
    assert.ok(readFileSync(file, 'utf8').includes('\\\\ back\\\\slash'), 'the file holds JSON backslashes');
    const postgres = await ship(file, 'backslashes');
    const intact = await same(file, postgres, 'as written');
    assert.equal(intact.verdict, 'intact');
    assert.equal(intact.entries, 42);
    // Every line came back byte for byte: each hash was recomputed from it. An edit next to a backslash is seen.
    db.psql(
      "SET session_replication_role = replica; UPDATE backslashes SET line = replace(line, 'back', 'BACK') WHERE path = '/b/4'",
    );
    const edited = await verifyAuditLog({ postgres });
    assert.equal(edited.verdict, 'tampered');
    assert.deepEqual(codes(edited), ['hash-mismatch']);
  });

  it('many raw pieces among the rows (foreign text, fragments glued to lines, zero bytes): the file’s findings', async () => {
    const file = join(dir, 'pieces.jsonl');
    const log = createAuditLog({ filename: file });
    for (let i = 0; i < 3000; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/p/${i}` });
    await log.close();
    const lines = readFileSync(file, 'utf8').split('\n').slice(0, -1);
    const damaged: string[] = [];
    lines.forEach((l, i) => {
      if (i % 10 === 3) damaged.push(`foreign text ${i} \\ with a backslash\ttab`);
      if (i % 50 === 7)
        damaged.push(`${l.slice(0, 30)}${l}`); // a torn fragment with a whole line glued after it
      else damaged.push(l);
      if (i % 97 === 5) damaged.push('\0'.repeat(20));
    });
    writeFileSync(file, `${damaged.join('\n')}\n`);
    const postgres = await ship(file, 'pieces');
    assert.ok(Number(db.psql('SELECT count(*) FROM pieces_raw')) > 300);
    const r = await same(file, postgres, 'pieces');
    assert.equal(r.verdict, 'tampered');
    assert.ok(r.findingsTotal > 300);
    assert.ok(codes(r).includes('not-an-entry') && codes(r).includes('torn-fragment'));
  });

  it('reads the partitions’ id indexes merged, never sorting the table, even before any statistics', async () => {
    const table = 'planned';
    const postgres = { connectionString: db.url, table };
    await pgInit({ postgres });
    db.psql(`SELECT planned_add_partitions(ARRAY['2026-01', '2026-02', '2026-03'])`);
    const partitions = db.psql(`SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = '${table}'::regclass`).split('\n');
    assert.ok(partitions.length >= 4, partitions.join());
    for (const p of [...partitions, `${table}_raw`]) {
      const indexes = db.psql(`SELECT indexdef FROM pg_indexes WHERE tablename = '${p}'`);
      assert.match(indexes, /USING btree \(id\)/, `${p}: ${indexes}`);
      // No statistics until the test has made them: the planner's guess is what it is just after loading.
      db.psql(`ALTER TABLE ${p} SET (autovacuum_enabled = off)`);
    }
    // 24,000 rows (about 10 MB) made of the 12 lines shipped here, in the default partition.
    const file = join(dir, 'planned.jsonl');
    const log = createAuditLog({ filename: file });
    for (let i = 0; i < 10; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/q/${i}` });
    await log.close();
    await ship(file, 'planned_src');
    db.psql(
      'INSERT INTO planned (chain, sequence, ts, line) SELECT chain, sequence + g * 100, ts, line FROM planned_src, generate_series(1, 2000) AS g',
    );
    const sql = rowsSql(tableNames(table, 'test'));
    const plan = (settings: string) => {
      const nodes: string[] = [];
      const walk = (n: { 'Node Type': string; Plans?: unknown[] }) => {
        nodes.push(n['Node Type']);
        for (const c of n.Plans ?? []) walk(c as typeof n);
      };
      walk(JSON.parse(db.psql(`BEGIN; ${settings} EXPLAIN (FORMAT JSON) ${sql}; COMMIT`))[0].Plan);
      return nodes;
    };
    assert.ok(plan('').includes('Sort'), `left alone, the planner sorts: ${plan('')}`);
    const merged = plan('SET LOCAL enable_sort = off;');
    assert.equal(merged[0], 'Merge Append', merged.join());
    assert.ok(!merged.includes('Sort'), merged.join());
    assert.equal(merged.filter((n) => n === 'Index Scan').length, partitions.length + 1, merged.join());
    // And verification does not sort: with a work_mem the sort would spill from, no temporary file is written.
    const tempFiles = () => Number(db.psql("SELECT temp_files FROM pg_stat_database WHERE datname = 'postgres'"));
    db.psql("ALTER DATABASE postgres SET work_mem = '64kB'");
    try {
      const t0 = tempFiles();
      db.psql(`COPY (${sql}) TO '/dev/null'`);
      await sleep(100);
      const t1 = tempFiles();
      assert.ok(t1 > t0, 'a sort of this table spills to a temporary file');
      const r = await verifyAuditLog({ postgres });
      assert.equal(r.entries, 24_000, JSON.stringify(r.findings.slice(0, 3)));
      await sleep(100);
      assert.equal(tempFiles(), t1, 'verification wrote no temporary file');
    } finally {
      db.psql('ALTER DATABASE postgres RESET work_mem');
    }
  });

  it('a session cut in the middle of the COPY: cannot-verify (unreadable), no uncaught error', async () => {
    const file = join(dir, 'cut.jsonl');
    const log = createAuditLog({ filename: file });
    for (let i = 0; i < 10; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/c/${i}` });
    await log.close();
    const postgres = await ship(file, 'cut');
    // 200,000 more rows made by the server (each a copy of a shipped line: hash mismatches, gaps), so that the
    // COPY is still under way when the session is cut.
    db.psql(
      "INSERT INTO cut (chain, sequence, ts, line) SELECT chain, sequence + g * 100, ts, line FROM cut, generate_series(1, 20000) AS g WHERE path LIKE '/c/%'",
    );
    const result = verifyAuditLog({ postgres });
    let killed = '';
    for (let i = 0; i < 1000 && killed !== 't'; i++) {
      await sleep(5);
      killed = db.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT id, 0, line%'");
    }
    assert.equal(killed, 't', 'the COPY was seen under way and cut');
    const r = await result;
    assert.equal(r.verdict, 'cannot-verify');
    assert.ok(codes(r).includes('unreadable'), JSON.stringify(r.findings.slice(-3)));
    assert.ok(r.entries < 200_010, `${r.entries} entries read before the cut`);
  });
});
