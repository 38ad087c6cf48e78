// verify --postgres reads the table with one COPY: lines that COPY escapes, many raw pieces among the rows,
// the files' order whatever order they were shipped in, and a session cut in the middle.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAuditLog, PostgresShipper, pgInit, type VerifyResult, verifyAuditLog } from '../../src/index.js';
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

  it('reads the rows in the files’ order whatever order the files were shipped in (newest first, by halves, and a copy of a half)', async () => {
    // One writer's file rotated by rename twice, each rotated file renamed out of the shipper's sight (as a
    // sidecar that was down across rotations, or an operator shipping files by hand, meets them); then the
    // files shipped newest first, the oldest in two halves.
    const base = join(dir, 'order.jsonl');
    const log = createAuditLog({ filename: base });
    const parts = [join(dir, 'order-a.jsonl'), join(dir, 'order-b.jsonl')];
    for (const [n, part] of parts.entries()) {
      for (let i = 0; i < 30; i++)
        log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/o/${n}/${i}` });
      await log.drained();
      renameSync(base, part);
      // The log notices the rename at its next batch and reopens the file under its name.
      log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/o/${n}/after` });
      await log.drained();
      while (!existsSync(base)) await sleep(10);
    }
    for (let i = 0; i < 30; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/o/live/${i}` });
    await log.close();
    const files = [...parts, base];
    const fromFiles = await verifyAuditLog(files);
    assert.equal(fromFiles.verdict, 'intact', JSON.stringify(fromFiles.findings));
    assert.equal(fromFiles.chains, 1);
    const table = 'shipped_out_of_order';
    // A copy of the oldest file's first half (as a copy made while it was being written), then the newest
    // file, the middle one, and the oldest in full (its first half already there from the copy).
    const oldest = readFileSync(parts[0] as string);
    const half = join(dir, 'order-half.jsonl');
    writeFileSync(half, oldest.subarray(0, oldest.indexOf(10, oldest.length >> 1) + 1));
    const postgres = await ship(half, table);
    await ship(base, table);
    await ship(parts[1] as string, table);
    await ship(parts[0] as string, table);
    const fromStore = await verifyAuditLog({ postgres });
    assert.equal(fromStore.verdict, 'intact', JSON.stringify(fromStore.findings));
    assert.deepEqual(
      [fromStore.entries, fromStore.chains, codes(fromStore)],
      [fromFiles.entries, fromFiles.chains, codes(fromFiles)],
    );
    // In id order the same rows read as a chain whose later lines come first.
    const byId = db.psql(
      `SELECT count(*) FROM ${table} a JOIN ${table} b ON a.chain = b.chain AND a.sequence < b.sequence AND a.id > b.id`,
    );
    assert.ok(Number(byId) > 0, 'the rows were inserted out of the chain’s order');
  });

  it('a table that does not exist is named as such (not as a missing raw table): cannot-verify', async () => {
    const r = await verifyAuditLog({ postgres: { connectionString: db.url, table: 'no_such_table' } });
    assert.equal(r.verdict, 'cannot-verify');
    assert.match(r.reason ?? '', /there is no audit table "no_such_table": run proxy-protocol-audit pg-init/);
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
      // The client's own backend only: the parallel workers of a sort run the same query.
      killed = db.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'COPY (%' AND backend_type = 'client backend'",
      );
    }
    assert.equal(killed, 't', 'the COPY was seen under way and cut');
    const r = await result;
    assert.equal(r.verdict, 'cannot-verify');
    assert.ok(codes(r).includes('unreadable'), JSON.stringify(r.findings.slice(-3)));
    assert.ok(r.entries < 200_010, `${r.entries} entries read before the cut`);
  });
});
