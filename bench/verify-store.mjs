// verify --postgres against verifying the same file: one table loaded once (shipped by PostgresShipper from
// a file of request entries), then the file and the table verified alternately, ROUNDS rounds. Besides the
// rates, CPU time per entry of this process (the verifier) and of the cluster (every postgres process), read
// from /proc. A private PostgreSQL in a temp dir on a Unix socket. Not run by the tests.
// Knobs: ENTRIES (200000), ROUNDS (4); BEFORE=<another build's dist/cjs> also verifies the table with that
// build's verifyAuditLog in every round (head to head); VACUUM=1, COLD=1 (below); EXPLAIN=1 prints EXPLAIN
// ANALYZE of verify --postgres's query.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { table, writeRequestLog } from './lib.mjs';
import { startPostgres } from './pg.mjs';

const require = createRequire(import.meta.url);
const dist = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'dist', 'cjs');
const { createAuditLog, pgInit, PostgresShipper, verifyAuditLog } = require(path.join(dist, 'index.js'));
const { rowsSql } = require(path.join(dist, 'store', 'verify-store.js'));
const { tableNames } = require(path.join(dist, 'store', 'table.js'));

const ENTRIES = Number(process.env.ENTRIES ?? 200_000);
const ROUNDS = Number(process.env.ROUNDS ?? 4);
const BEFORE = process.env.BEFORE ? require(path.join(path.resolve(process.env.BEFORE), 'index.js')).verifyAuditLog : undefined;

/** CPU ms of the cluster (db.cpuMs) and of this process. */
function cpuMs() {
  const u = process.cpuUsage();
  return { db: db.cpuMs(), node: (u.user + u.system) / 1000 };
}

const db = startPostgres();
try {
  // The file of bench/store.mjs.
  const file = path.join(db.dir, 'audit.jsonl');
  await writeRequestLog(createAuditLog, file, ENTRIES);
  const postgres = { connectionString: db.url, table: 'audit_log' };
  await pgInit({ postgres });
  const shipper = new PostgresShipper({ filename: file, postgres, follow: false });
  shipper.start();
  await shipper.close(600_000);
  // VACUUM=1 vacuums the table first (as autovacuum would have, some time after loading).
  if (process.env.VACUUM) for (const t of ['audit_log', 'audit_log_raw']) db.query(`VACUUM ANALYZE ${t}`);
  const entries = shipper.stats.inserted;
  console.log(`verify-store: ${entries} entries, ${(readFileSync(file).length / 1e6).toFixed(0)} MB, ${db.version}`);
  if (process.env.EXPLAIN) {
    // verify --postgres's query, with the settings verifyStore runs it with.
    const q = rowsSql(tableNames('audit_log', 'bench'));
    console.log(db.query(`SET work_mem = '256MB'; SET jit = off; EXPLAIN (ANALYZE, BUFFERS) ${q}`));
  }
  const run = async (verify) => {
    const target = await verify.target();
    const c = cpuMs();
    const t = process.hrtime.bigint();
    const r = await verify.run(target);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    // The session's process has exited: its CPU time reaches the postmaster's once it has been reaped.
    await new Promise((r) => setTimeout(r, 300));
    const c1 = cpuMs();
    if (r.verdict !== 'intact' || r.entries !== entries) throw new Error(`${r.verdict}, ${r.entries} entries`);
    const us = (v) => ((v * 1000) / entries).toFixed(1);
    return { rate: Math.round((entries / ms) * 1000), cpu: `${us(c1.node - c.node)} + ${us(c1.db - c.db)}` };
  };
  // COLD=1: each store verification reads a copy of the table made just before (INSERT … SELECT, not
  // timed), as bench/store.mjs verifies a table just shipped: the first read of its rows.
  let copies = 0;
  const fresh = async () => {
    if (!process.env.COLD) return postgres;
    const t = `fresh_${++copies}`;
    await pgInit({ postgres: { connectionString: db.url, table: t } });
    db.query(`INSERT INTO ${t} SELECT * FROM audit_log; INSERT INTO ${t}_raw SELECT * FROM audit_log_raw`);
    return { connectionString: db.url, table: t };
  };
  const steps = {
    file: { target: () => file, run: (f) => verifyAuditLog(f) },
    store: { target: fresh, run: (p) => verifyAuditLog({ postgres: p }) },
    before: BEFORE ? { target: fresh, run: (p) => BEFORE({ postgres: p }) } : undefined,
  };
  if (!process.env.COLD) {
    // The first read of the table just shipped sets its rows' hint bits: timed apart, so that no build of a
    // head to head is the only one to pay for it.
    const first = await run(steps.store);
    console.log(`first read of the table (this build): ${first.rate}/s, CPU us/entry ${first.cpu}`);
  }
  const rows = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate the order: the first of a round may find a colder (or busier) machine.
    const order = round % 2 ? ['file', 'store', 'before'] : ['before', 'store', 'file'];
    const r = {};
    for (const k of order) if (steps[k]) r[k] = await run(steps[k]);
    rows.push([
      round,
      r.file.rate,
      r.store.rate,
      `${(r.store.rate / r.file.rate).toFixed(2)}x`,
      r.file.cpu,
      r.store.cpu,
      ...(BEFORE ? [r.before.rate, `${(r.before.rate / r.file.rate).toFixed(2)}x`, r.before.cpu] : []),
    ]);
  }
  table([
    [
      'round',
      'file /s',
      'store /s',
      'store/file',
      'file CPU us/entry',
      'store CPU us/entry (node + db)',
      ...(BEFORE ? ['before /s', 'before/file', 'before CPU'] : []),
    ],
    ...rows,
  ]);
} finally {
  db.stop();
}
