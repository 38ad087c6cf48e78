// Where a shipper resumes: only at a point the store backs. Files truncated in place and written again (with
// or without the shipper looking in between), rotation by rename and by copytruncate, and resume points moved
// by the application's role: every line in the store once, and verification from the store as from the file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, existsSync, readFileSync, renameSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createAuditLog, ErrorCodes, PostgresShipper, pgInit, type VerifyResult, verifyAuditLog } from '../../src/index.js';
import { sleep, tempDir } from '../helpers.js';
import { insertAfter, linesOf, writeLog } from './log-files.js';
import { needsPostgres, startPostgres, type TestPostgres } from './postgres.js';

let tables = 0;
const freshTable = () => `r${process.pid}_${++tables}`;

const codes = (r: VerifyResult) => r.findings.map((f) => f.code);

describe('PostgreSQL store: resume points', needsPostgres(), () => {
  let db: TestPostgres;
  let dir: string;
  let app: pg.Client;
  const init = (table: string) => pgInit({ postgres: { connectionString: db.url, table }, appRole: 'app' });
  const count = (table: string) => Number(db.psql(`SELECT count(*) FROM ${table}`));
  const distinct = (table: string) => Number(db.psql(`SELECT count(DISTINCT (chain, sequence)) FROM ${table}`));
  const verifyTable = (table: string) => verifyAuditLog({ postgres: { connectionString: db.url, table } });
  /** Locks `table` in a transaction of its own (a shipper's next batch waits); the returned function lets go. */
  const holdTable = async (table: string) => {
    const lock = new pg.Client({ connectionString: db.url });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    return async () => {
      await lock.query('COMMIT');
      await lock.end();
    };
  };
  /** A shipper connecting as the application's role. */
  const shipper = (file: string, table: string, extra: Record<string, unknown> = {}) =>
    new PostgresShipper({ filename: file, postgres: { connectionString: db.urlAs('app'), table }, follow: false, ...extra });
  /** Ships `file` to its end and stops; the warnings it gave. */
  const ship = async (file: string, table: string, extra: Record<string, unknown> = {}) => {
    const s = shipper(file, table, extra);
    const warnings: string[] = [];
    s.on('warning', (e: { code: string }) => warnings.push(e.code));
    s.start();
    await s.close(30_000);
    return { s, warnings };
  };
  /** A log of `n` entries of a writer of its own, written elsewhere: the bytes another file will be given. */
  const otherLog = async (n: number) => {
    const f = join(dir, `other-${++tables}.jsonl`);
    await writeLog(f, n);
    return readFileSync(f);
  };

  before(async () => {
    db = await startPostgres();
    db.psql('CREATE ROLE app LOGIN');
    dir = tempDir('ppa-resume-');
    app = new pg.Client({ connectionString: db.urlAs('app') });
    await app.connect();
  });
  after(async () => {
    await app?.end();
    await db?.stop();
  });

  for (const rotation of ['copytruncate', 'rename and create'] as const) {
    it(`${rotation} with the new file grown past the resume point before the next look: shipped from its beginning`, async () => {
      const table = freshTable();
      await init(table);
      const file = join(dir, `${table}.jsonl`);
      const first = await writeLog(file, 10);
      // Looks only when flushed: the file is replaced and written again between two looks.
      const s = shipper(file, table, { follow: true, pollInterval: 60_000, rotationGrace: 0 });
      s.start();
      await s.flush(20_000);
      assert.equal(count(table), first);
      const ino = statSync(file).ino;
      const next = await otherLog(30);
      assert.ok(next.length > readFileSync(file).length, 'grown past the resume point');
      if (rotation === 'copytruncate') {
        copyFileSync(file, `${file}.1`);
        writeFileSync(file, next); // truncated in place and written again: the same inode
        assert.equal(statSync(file).ino, ino);
      } else {
        renameSync(file, `${file}.1`);
        writeFileSync(file, next);
        assert.notEqual(statSync(file).ino, ino);
      }
      await s.flush(20_000);
      await s.close(20_000);
      assert.equal(count(table), first + 32);
      assert.equal(distinct(table), first + 32);
      const r = await verifyTable(table);
      assert.equal(r.verdict, 'intact', JSON.stringify(r.findings));
      assert.equal(r.entries, first + 32);
      // The rotated file shipped as well (a sidecar given both): nothing of it is stored twice.
      const again = await ship(`${file}.1`, table);
      assert.deepEqual([again.s.stats.inserted, again.s.stats.raw, again.s.stats.duplicates], [0, 0, first]);
      assert.equal(count(table), first + 32);
      assert.equal((await verifyTable(table)).verdict, 'intact');
    });
  }

  it('a file cut after its first lines and written again past the resume point while no shipper ran: the rest is shipped', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const first = await writeLog(file, 10);
    assert.equal((await ship(file, table)).s.stats.inserted, first);
    // The same inode and the same first line (the same file to the store), other bytes past byte 0.
    const kept = linesOf(file).slice(0, 4);
    writeFileSync(file, Buffer.concat([Buffer.from(`${kept.join('\n')}\n`), await otherLog(30)]));
    const { s, warnings } = await ship(file, table);
    assert.deepEqual(warnings, [ErrorCodes.AUDIT_SPOOL_CHANGED]);
    assert.deepEqual([s.stats.inserted, s.stats.duplicates, s.stats.raw], [32, 4, 0]);
    assert.equal(count(table), first + 32);
    assert.equal(distinct(table), first + 32);
    // The store holds the whole first log, the file only its first lines (an open chain there).
    const [fromFile, fromStore] = await Promise.all([verifyAuditLog(file), verifyTable(table)]);
    assert.deepEqual([fromFile.verdict, codes(fromFile)], ['intact', ['chain-open']]);
    assert.deepEqual([fromStore.verdict, codes(fromStore)], ['intact', []]);
    // Resumed at its end next time: nothing sent again.
    const next = await ship(file, table);
    assert.deepEqual([next.warnings, next.s.stats.inserted, next.s.stats.duplicates], [[], 0, 0]);
  });

  it('a file cut in place (copytruncate) and written again while no shipper ran: the copy is shipped, and no file is reported missing', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const first = await writeLog(file, 300);
    assert.equal((await ship(file, table)).s.stats.inserted, first);
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
    const second = await writeLog(file, 50);
    await writeLog(`${file}.1`, 20); // (lines written to the copy after the cut: the writer's handle)
    const { s, warnings } = await ship(file, table);
    assert.deepEqual(warnings, []);
    assert.equal(s.stats.inserted, second + 22);
    assert.equal(count(table), first + second + 22);
    assert.equal(distinct(table), first + second + 22);
    assert.equal((await verifyTable(table)).verdict, 'intact');
  });

  it('a copy that ends before the resume point (a copy cut short) is no copy of what was not shipped: the file is reported missing', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 300);
    await ship(file, table);
    await writeLog(file, 300); // (not shipped)
    const whole = readFileSync(file);
    writeFileSync(`${file}.1`, whole.subarray(0, whole.indexOf(10, whole.length >> 2) + 1));
    truncateSync(file, 0);
    await writeLog(file, 50);
    const { warnings } = await ship(file, table);
    assert.deepEqual(warnings, [ErrorCodes.AUDIT_SPOOL_MISSING]);
  });

  it('a resume point the application moved forward, to a line boundary or into a line, is not trusted', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    let total = await writeLog(file, 10);
    await ship(file, table);
    for (const to of ['end', 'mid-line'] as const) {
      total += await writeLog(file, 10);
      const size = statSync(file).size;
      const r = await app.query(`UPDATE ${table}_cursor SET "offset" = $1`, [to === 'end' ? size : size - 30]);
      assert.equal(r.rowCount, 1);
      const { s, warnings } = await ship(file, table);
      assert.deepEqual(warnings, [ErrorCodes.AUDIT_SPOOL_CHANGED], to);
      assert.equal(s.stats.inserted, 12, to);
      assert.equal(count(table), total, to);
      assert.equal(distinct(table), total, to);
    }
    assert.equal((await verifyTable(table)).verdict, 'intact');
  });

  it('a resume point the application moved back only makes the shipper send again what the store holds', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 10);
    insertAfter(file, 3, 'foreign text');
    await ship(file, table);
    const total = 12 + (await writeLog(file, 10));
    await ship(file, table);
    assert.deepEqual([count(table), count(`${table}_raw`)], [total, 1]);
    const third = Buffer.byteLength(`${linesOf(file).slice(0, 3).join('\n')}\n`);
    for (const [back, resent] of [
      [0, total + 1],
      [third, total + 1 - 3],
    ] as const) {
      await app.query(`UPDATE ${table}_cursor SET "offset" = $1`, [back]);
      const { s, warnings } = await ship(file, table);
      assert.deepEqual(warnings, []);
      assert.deepEqual([s.stats.inserted, s.stats.raw, s.stats.duplicates], [0, 0, resent]);
      assert.deepEqual([count(table), count(`${table}_raw`)], [total, 1]);
    }
    const r = await verifyTable(table);
    assert.deepEqual([r.verdict, codes(r)], ['tampered', ['not-an-entry']]);
  });

  it('a rotated file the application marked done is still shipped to its end', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    let total = await writeLog(file, 10);
    await ship(file, table);
    total += await writeLog(file, 10);
    renameSync(file, `${file}.1`);
    total += await writeLog(file, 5);
    await app.query(`UPDATE ${table}_cursor SET done = true`);
    const { s } = await ship(file, table);
    assert.equal(s.stats.inserted, 12 + 7);
    assert.equal(count(table), total);
    assert.equal(distinct(table), total);
    assert.equal((await verifyTable(table)).verdict, 'intact');
  });

  it('to make the shipper skip lines the application must store the line before the skip itself: verification reports the skip', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const first = await writeLog(file, 10);
    await ship(file, table);
    await writeLog(file, 10);
    // The sixth line of the second writer, inserted as the app at its place, and the resume point after it.
    const l = linesOf(file);
    const victim = l[first + 5] as string;
    const at = Buffer.byteLength(`${l.slice(0, first + 5).join('\n')}\n`);
    const e = JSON.parse(victim);
    const fileId = `${statSync(file).ino}:${createHash('sha256')
      .update(l[0] as string)
      .digest('hex')
      .slice(0, 32)}`;
    await app.query(`INSERT INTO ${table} (chain, sequence, ts, line, file_id, "offset") VALUES ($1, $2, $3, $4, $5, $6)`, [
      e.audit.chain,
      e.event.sequence,
      e['@timestamp'],
      victim,
      fileId,
      at,
    ]);
    await app.query(`UPDATE ${table}_cursor SET "offset" = $1`, [at + Buffer.byteLength(victim) + 1]);
    const { s, warnings } = await ship(file, table);
    assert.deepEqual(warnings, []);
    assert.equal(s.stats.inserted, 6);
    assert.equal(count(table), l.length - 5);
    const r = await verifyTable(table);
    assert.equal(r.verdict, 'tampered');
    assert.deepEqual(codes(r), ['start-missing']);
  });

  /**
   * After `file` was copied to `<file>.1` and cut in place: every line of both is in the table once, and the
   * table verifies.
   */
  const assertCutShipped = (file: string, table: string) =>
    // (the lines not shipped before the cut are in the copy: found beside the file and shipped too)
    assertAllStored(table, [file, `${file}.1`]);
  /** Every line of `files` is in the table, once, and the table verifies. */
  const assertAllStored = async (table: string, files: string[]) => {
    const stored = new Set((await app.query(`SELECT line FROM ${table}`)).rows.map((r) => r.line as string));
    for (const f of files) {
      assert.deepEqual(
        linesOf(f).filter((l) => !stored.has(l)),
        [],
        `every line of ${f} is in the store`,
      );
    }
    assert.equal(count(table), distinct(table));
    assert.equal((await verifyTable(table)).verdict, 'intact');
  };
  /** As logrotate's copytruncate with `rotate 9`: the older copies move up a number, the newest is .1. */
  const copytruncate = (file: string) => {
    for (let m = 9; m >= 1; m--) if (existsSync(`${file}.${m}`)) renameSync(`${file}.${m}`, `${file}.${m + 1}`);
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
  };

  it('in process: a file cut in place while rows handed over wait is shipped from the file (no stale rows)', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.urlAs('app'), table }, maxQueue: 100_000 });
    const write = async (n: number, tag: string) => {
      for (let i = 0; i < n; i++) {
        log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/${tag}/${i}` });
        if (i % 500 === 499) await log.drained();
      }
      await log.drained();
    };
    await write(100, 'a');
    await log.shipper?.flush(20_000);
    // The table held: the shipper's next batch waits, with more rows handed over than one batch takes.
    const release = await holdTable(table);
    await write(12_000, 'b');
    await sleep(500);
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
    await write(16_000, 'c'); // past where the rows handed over before the cut would begin
    await release();
    await log.close();
    assert.ok(linesOf(file).length >= 16_000);
    await assertCutShipped(file, table);
  });

  it('a sidecar shipping a backlog two batches at a time: a file cut in place meanwhile is shipped from its new beginning', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 6_000);
    // The table held: the shipper's first batches of the backlog wait, the ones after them are read.
    const release = await holdTable(table);
    const s = shipper(file, table, { follow: true, batchSize: 500, pollInterval: 20 });
    s.start();
    await sleep(500);
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
    await writeLog(file, 7_000); // past where the batches read before the cut end
    await release();
    await s.flush(30_000);
    await s.close(30_000);
    await assertCutShipped(file, table);
  });

  /**
   * Holds the lock a shipper takes to make a month's partition (in a transaction of its own): a batch with a
   * line of a month the table has no partition for waits after it was read, before its resume point's bytes
   * are. The returned function lets go.
   */
  const holdPartitions = async (table: string) => {
    const lock = new pg.Client({ connectionString: db.url });
    await lock.connect();
    await lock.query('BEGIN');
    await lock.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`proxy-protocol-audit partitions "public"."${table}"`]);
    return async () => {
      await lock.query('COMMIT');
      await lock.end();
    };
  };
  /** A month no table has a partition for yet (lines written with a timestamp in it). */
  const LATER = Date.UTC(2031, 4, 15, 12);

  for (const [what, entries] of [
    ['its one batch', 300],
    ['the first batch of a backlog', 1_500],
  ] as const) {
    it(`a sidecar: a file cut in place between the read of ${what} and its resume point's bytes is shipped from its new beginning`, async () => {
      const table = freshTable();
      await init(table);
      const file = join(dir, `${table}.jsonl`);
      await writeLog(file, entries, { timestamp: LATER });
      const release = await holdPartitions(table);
      const s = shipper(file, table, { follow: true, batchSize: 500, pollInterval: 20 });
      let shipped = 0;
      s.on('shipped', () => shipped++);
      s.start();
      await sleep(500);
      assert.equal(shipped, 0, 'the batch waits for its partition');
      copyFileSync(file, `${file}.1`);
      truncateSync(file, 0);
      await writeLog(file, 2 * entries); // past where the batch read before the cut ends
      await release();
      await s.flush(30_000);
      await s.close(30_000);
      await assertCutShipped(file, table);
    });
  }

  it("in process: a file cut in place between the read of a batch and its resume point's bytes is shipped from its new beginning", async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const release = await holdPartitions(table);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.urlAs('app'), table }, maxQueue: 100_000 });
    let shipped = 0;
    log.shipper?.on('shipped', () => shipped++);
    for (let i = 0; i < 300; i++)
      log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/a/${i}`, timestamp: LATER });
    await log.drained();
    await sleep(500);
    assert.equal(shipped, 0, 'the batch waits for its partition');
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
    for (let i = 0; i < 600; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/b/${i}` });
    await log.drained();
    await release();
    await log.close();
    await assertCutShipped(file, table);
  });

  it('in process: a file cut in place twice while the shipper was busy with the first copy: the second copy is shipped too', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.urlAs('app'), table }, maxQueue: 100_000 });
    let n = 0;
    const write = async () => {
      for (let i = 0; i < 1_000; i++)
        log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/p/${n++}` });
      await log.drained();
    };
    await write();
    await log.shipper?.flush(20_000);
    // The table held: the shipper finds the first copy at its next look and waits to ship it.
    const release = await holdTable(table);
    copytruncate(file);
    await sleep(500);
    // Lines written and cut away again before the shipper shipped anything of the file since the first cut:
    // the file shows no sign of the second cut (nothing shipped from it to compare), the new copy does.
    await write();
    copytruncate(file);
    await write();
    await release();
    await log.close();
    await assertAllStored(table, [file, `${file}.1`, `${file}.2`]);
  });

  it('a sidecar: a file cut in place twice while it was busy with the first copy: the second copy is shipped too', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 1_000);
    const s = shipper(file, table, { follow: true, pollInterval: 20 });
    s.start();
    await s.flush(20_000);
    const release = await holdTable(table);
    copytruncate(file);
    await sleep(500);
    await writeLog(file, 1_000);
    copytruncate(file);
    await writeLog(file, 1_000);
    await release();
    await s.flush(30_000);
    await s.close(30_000);
    await assertAllStored(table, [file, `${file}.1`, `${file}.2`]);
  });

  it('the first shipper of a file that was rotated already ships the rotated files too, oldest first', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    let total = 0;
    for (const k of [3, 2, 1]) {
      total += await writeLog(file, 20 + k);
      renameSync(file, `${file}.${k}`);
      await sleep(20); // (distinct modification times)
    }
    total += await writeLog(file, 5);
    const { s } = await ship(file, table);
    assert.equal(s.stats.inserted, total);
    assert.equal(count(table), total);
    const r = await verifyTable(table);
    assert.equal(r.verdict, 'intact', JSON.stringify(r.findings));
    assert.equal(r.entries, total);
  });

  it('a sidecar: a file created, written and rotated on between two of its looks is shipped too', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 10);
    // Looks only when flushed.
    const s = shipper(file, table, { follow: true, pollInterval: 60_000, rotationGrace: 0 });
    s.start();
    await s.flush(20_000);
    // Between two looks: the file renamed (.1), a new one written (the one the shipper never sees at the
    // name), the rotation shifting (.1 to .2, the new one to .1), and a third file written.
    renameSync(file, `${file}.1`);
    await writeLog(file, 20);
    renameSync(`${file}.1`, `${file}.2`);
    renameSync(file, `${file}.1`);
    await writeLog(file, 30);
    await s.flush(20_000);
    await s.close(20_000);
    const all = [`${file}.2`, `${file}.1`, file].flatMap((f) => linesOf(f));
    assert.equal(all.length, 12 + 22 + 32);
    assert.equal(count(table), all.length);
    assert.equal(distinct(table), all.length);
    const r = await verifyTable(table);
    assert.equal(r.verdict, 'intact', JSON.stringify(r.findings.slice(0, 3)));
  });

  it('in process, while the store is held: 30 renames to names of any kind are all shipped; a file deleted unshipped is reported', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.urlAs('app'), table }, maxQueue: 100_000 });
    const shipper = log.shipper as NonNullable<typeof log.shipper>;
    const warnings: string[] = [];
    shipper.on('warning', (e: { code: string }) => warnings.push(e.code));
    const write = async (n: number, tag: string) => {
      for (let i = 0; i < n; i++)
        log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/${tag}/${i}` });
      await log.drained();
    };
    await write(10, 'first');
    await shipper.flush(20_000);
    // The table held: the shipper waits in its next batch and looks at nothing meanwhile.
    const release = await holdTable(table);
    await write(10, 'held');
    await sleep(300);
    const kept: string[] = [];
    for (let k = 1; k <= 30; k++) {
      // Names no rotation scheme makes: found by the files the log wrote to, not by their names.
      const to = `${file}.rotated-by-hand-${k}`;
      renameSync(file, to);
      kept.push(to);
      await write(20, `r${k}`);
    }
    // One of them deleted before the shipper saw it (after the last write: no new file may take its inode).
    const deleted = kept.splice(14, 1)[0] as string;
    const lost = linesOf(deleted).length;
    unlinkSync(deleted);
    await release();
    await log.close();
    const all = [...kept, file].flatMap((f) => linesOf(f));
    const stored = new Set((await app.query(`SELECT line FROM ${table}`)).rows.map((r) => r.line as string));
    assert.deepEqual(
      all.filter((l) => !stored.has(l)),
      [],
      'every line of every file that is still there is in the store',
    );
    assert.equal(count(table), distinct(table));
    assert.ok(lost > 0);
    assert.ok(warnings.includes(ErrorCodes.AUDIT_SPOOL_MISSING), `warnings: ${warnings.join(', ')}`);
  });

  it('flush(0) after the live file was renamed away (and not written again) resolves when nothing is left', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.urlAs('app'), table } });
    const shipper = log.shipper as NonNullable<typeof log.shipper>;
    for (let i = 0; i < 50; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/x/${i}` });
    await log.drained();
    await shipper.flush(20_000);
    renameSync(file, `${file}.1`);
    await shipper.flush(20_000);
    for (let i = 0; i < 30; i++) await shipper.flush(i % 2);
    await log.close({ shipTimeout: 20_000 });
    assert.equal(count(table), [`${file}.1`, file].filter((f) => existsSync(f)).flatMap((f) => linesOf(f)).length);
  });

  it('in process, rotated by rename again and again while it writes and ships: every line of every file once', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file, postgres: { connectionString: db.urlAs('app'), table }, maxQueue: 100_000 });
    const rotated: string[] = [];
    let written = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        for (let i = 0; i < 200; i++) {
          log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/r/${written++}` });
        }
        await sleep(2);
      }
    })();
    // Renamed mid-write and mid-batch, as logrotate does without copytruncate: the log notices at its next
    // batch and opens a new file; the shipper drains each renamed file and goes on with the new one.
    for (let k = 1; k <= 8; k++) {
      await sleep(120 + 37 * k);
      const to = `${file}.${k}`;
      renameSync(file, to);
      rotated.push(to);
    }
    writing = false;
    await writer;
    await log.close({ shipTimeout: 60_000 });
    // (the last entries may have gone to the last renamed file, when no batch came between the rename and them)
    const files = existsSync(file) ? [...rotated, file] : rotated;
    const all = files.flatMap((f) => linesOf(f));
    assert.ok(written >= 2_000, `${written} written`);
    // Every entry written, plus the log's own (start, one reopen per rotation, stop).
    assert.equal(all.filter((l) => l.includes('"action":"http-request"')).length, written);
    assert.equal(count(table), all.length);
    assert.equal(distinct(table), all.length);
    const stored = new Set((await app.query(`SELECT line FROM ${table}`)).rows.map((r) => r.line as string));
    assert.deepEqual(
      all.filter((l) => !stored.has(l)),
      [],
    );
    const fromStore = await verifyTable(table);
    assert.equal(fromStore.verdict, 'intact', JSON.stringify(fromStore.findings.slice(0, 3)));
    assert.equal(fromStore.entries, all.length);
    const fromFiles = await verifyAuditLog(files);
    assert.equal(fromFiles.verdict, 'intact');
    assert.deepEqual(codes(fromStore).sort(), codes(fromFiles).sort());
  });

  it('several writers append to one file, each with its own shipper of it: every line once, no duplicate', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 5);
    // (one source for all, as processes of one host: each shipper resends what another stored)
    const logs = [0, 1, 2].map(() =>
      createAuditLog({ filename: file, postgres: { connectionString: db.urlAs('app'), table }, maxQueue: 100_000 }),
    );
    for (let i = 0; i < 3000; i++) {
      (logs[i % 3] as (typeof logs)[number]).write({
        category: 'web',
        action: 'http-request',
        outcome: 'success',
        path: `/w/${i}`,
      });
      if (i % 100 === 99) await sleep(2);
    }
    await Promise.all(logs.map((l) => l.close()));
    const n = linesOf(file).length;
    assert.equal(n, 7 + 3000 + 6);
    assert.equal(count(table), n);
    assert.equal(distinct(table), n);
    assert.equal(count(`${table}_raw`), 0);
    const [fromFile, fromStore] = await Promise.all([verifyAuditLog(file), verifyTable(table)]);
    assert.deepEqual([fromStore.verdict, codes(fromStore)], [fromFile.verdict, codes(fromFile)]);
    assert.equal(fromStore.verdict, 'intact');
  });

  it('a table from before rows kept their place: shipping says to run pg-init, which adds the columns; old rows are not stored twice', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const first = await writeLog(file, 10);
    await ship(file, table);
    // The previous version's rows: no place.
    db.psql(`SET session_replication_role = replica; UPDATE ${table} SET file_id = NULL, "offset" = NULL`);
    db.psql(`ALTER TABLE ${table} DROP COLUMN file_id, DROP COLUMN "offset"`);
    const more = await writeLog(file, 10);
    const s = shipper(file, table, { retryMax: 200 });
    const outage = once(s, 'outage');
    s.start();
    const [err] = (await outage) as [{ code: string; message: string }];
    assert.equal(err.code, ErrorCodes.AUDIT_STORE_SCHEMA);
    assert.match(err.message, /pg-init again/);
    await init(table);
    await s.close(30_000);
    assert.equal(s.stats.inserted, more);
    // The rows of before have no place; the new ones have theirs.
    assert.equal(Number(db.psql(`SELECT count(*) FROM ${table} WHERE file_id IS NULL`)), first);
    assert.equal(Number(db.psql(`SELECT count(*) FROM ${table} WHERE "offset" IS NOT NULL`)), more);
    // Shipped again from a lost resume point: the rows of before are held (the same lines), not stored twice.
    db.psql(`SET session_replication_role = replica; DELETE FROM ${table}_cursor`);
    const again = await ship(file, table);
    assert.deepEqual([again.s.stats.inserted, again.s.stats.raw, again.s.stats.duplicates], [0, 0, first + more]);
    assert.equal(count(table), first + more);
    assert.equal((await verifyTable(table)).verdict, 'intact');
  });
});
