// The audited Express app shipping its file to PostgreSQL in process (createAuditLog({ filename, postgres }))
// against the same app writing the file only; keep-alive load from a separate process, the method of
// bench/audit.mjs. A private PostgreSQL (bench/pg.mjs) runs on the load generator's core, away from the
// servers' (as a database on its own host would). Every round ships to a fresh table, and after it the table
// must hold every line of the shipping server's file. Then the same two apps at the same time, by
// bench/ab.mjs (server CPU per request; drift of the host hits both alike). Not part of `npm run bench`: it
// needs PostgreSQL. Knobs: ROUNDS (3), PAIRS (11), MS (800), WARMUP; AB=0 skips the second comparison, SEQ=0
// the first; APP_PG=1 gives both apps a pg pool of their own (bench/server.mjs), as an app that keeps its
// data in PostgreSQL has. `node bench/store-app.mjs <kindA> <distA> <kindB> <distB>` runs only bench/ab.mjs on those (two
// builds head to head, e.g. express-audit-ship of this build against express-audit-ship of a copy).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { compareRounds, comparisonTable, ROUNDS, startLoad } from './lib.mjs';
import { startPostgres } from './pg.mjs';

const require = createRequire(import.meta.url);
const { pgInit } = require('../dist/cjs/index.js');
const PAIRS = Number(process.env.PAIRS ?? 11);
const MS = Number(process.env.MS ?? 800);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-'));
const db = startPostgres({ core: 1 });
process.env.BENCH_PG = db.url;

const load = startLoad();
const params = { mode: 'keepalive', ms: MS, concurrency: 32, header: '', path: '/patients/12', marker: '"id":"12"}' };
let shipped = 0;
let round = 0;
let tableName = '';
const run = async (a, b) => {
  const r = await compareRounds(load, a, b, {
    pairs: PAIRS,
    params,
    roundDir: () => {
      tableName = `app_${++round}`;
      process.env.BENCH_PG_TABLE = tableName;
      return fs.mkdtempSync(path.join(dir, 'round-'));
    },
    afterRound: (roundDir) => {
      const file = path.join(roundDir, 'audit-ship.jsonl');
      if (fs.existsSync(file)) {
        // close() resolved only once every line was in PostgreSQL: check by counting.
        const lines = fs.readFileSync(file, 'utf8').split('\n').length - 1;
        const rows = Number(db.query(`SELECT count(*) FROM ${tableName}`));
        if (rows !== lines) throw new Error(`${tableName}: ${rows} rows for ${lines} lines`);
        shipped += rows;
      }
      fs.rmSync(roundDir, { recursive: true, force: true });
    },
  });
  return r;
};
// Tables for every round, made before the clock starts (pg-init is a one-off of the deployment).
for (let i = 1; i <= 2 * ROUNDS; i++) await pgInit({ postgres: { connectionString: db.url, table: `app_${i}` } });
let ship;
let aa;
const abArgs = process.argv.slice(2);
if (abArgs.length !== 0 && abArgs.length !== 4) throw new Error('usage: node bench/store-app.mjs [kindA distA kindB distB]');
try {
  if (process.env.SEQ !== '0' && abArgs.length === 0) {
    ship = await run('express-audit-ship', 'express-audit');
    aa = await run('express-audit', 'express-audit');
  }
  if (process.env.AB !== '0') {
    await pgInit({ postgres: { connectionString: db.url, table: 'app_ab' } });
    const bench = path.dirname(new URL(import.meta.url).pathname);
    const dist = path.join(bench, '..', 'dist', 'cjs');
    const args = abArgs.length === 4 ? abArgs : ['express-audit-ship', dist, 'express-audit', dist];
    spawnSync(process.execPath, [path.join(bench, 'ab.mjs'), ...args], {
      env: { ...process.env, BENCH_PG_TABLE: 'app_ab', ROUNDS: process.env.AB_ROUNDS ?? '4' },
      stdio: 'inherit',
    });
  }
} finally {
  load.kill();
  db.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

if (ship) {
  console.log(
    `\nIn-process shipping to PostgreSQL (keep-alive, 32 connections; each app alone in its own process, load from another; PostgreSQL ${db.pinned ? 'pinned to the load generator core' : 'not pinned'}; ${ROUNDS} rounds of fresh processes × ${PAIRS} alternating pairs of ${MS} ms, median of all pairs)\n`,
  );
  comparisonTable([
    ['Express + clientIp + auditLog shipping to PostgreSQL vs the same writing the file only', ship],
    ['method check (A/A): file only vs file only', aa],
  ]);
  console.log(`\n${shipped} entries shipped and counted in PostgreSQL.`);
}
