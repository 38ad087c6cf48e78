// PostgreSQL store: a file shipped again after its resume point was lost (a new `source`, as a shipper
// whose cursor row is gone), against shipping it the first time. Every batch then meets rows the store
// holds and is re-checked (which rows are held, and whether they are the rows their lines make) before only
// the rest is copied. Prints both times and, per kind of statement, how often it ran and its time (from the
// call to its answer, the client's encoding included). A private PostgreSQL (bench/pg.mjs). Not part of
// `npm run bench`: it needs PostgreSQL. Knobs: ENTRIES (50000), ROUNDS (2).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { writeRequestLog } from './lib.mjs';
import { startPostgres } from './pg.mjs';

const require = createRequire(import.meta.url);
const dist = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'dist', 'cjs');
const { createAuditLog, pgInit, PostgresShipper } = require(path.join(dist, 'index.js'));
const pg = require('pg');

const ENTRIES = Number(process.env.ENTRIES ?? 50_000);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const db = startPostgres({ core: 1 });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-recheck-'));
const file = path.join(dir, 'audit.jsonl');

/** A pool whose sessions time every statement, by its first words. */
function timedPool(times) {
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  const connect = pool.connect.bind(pool);
  const seen = new WeakSet();
  pool.connect = async () => {
    const c = await connect();
    if (seen.has(c)) return c;
    seen.add(c);
    const query = c.query.bind(c);
    c.query = (...a) => {
      const sql = typeof a[0] === 'string' ? a[0] : (a[0]?.text ?? a[0]?.constructor?.name ?? '?');
      const key = sql.replace(/\s+/g, ' ').slice(0, 48);
      const t = performance.now();
      const r = query(...a);
      const done = () => {
        const v = times.get(key) ?? [0, 0];
        v[0]++;
        v[1] += performance.now() - t;
        times.set(key, v);
      };
      if (typeof r?.then === 'function') r.then(done, done);
      else if (typeof r?.on === 'function') {
        r.on('finish', done);
        r.on('error', done);
      }
      return r;
    };
    return c;
  };
  return pool;
}

async function ship(table, source) {
  const times = new Map();
  const pool = timedPool(times);
  const s = new PostgresShipper({ filename: file, postgres: { pool, table }, follow: false, source });
  const t = performance.now();
  s.start();
  await s.close(600_000);
  const seconds = (performance.now() - t) / 1000;
  await pool.end();
  return { seconds, times };
}

try {
  await writeRequestLog(createAuditLog, file, ENTRIES);
  for (let r = 1; r <= ROUNDS; r++) {
    const table = `recheck_${r}`;
    await pgInit({ postgres: { connectionString: db.url, table } });
    const first = await ship(table, 'first');
    const again = await ship(table, 'again');
    const rows = Number(db.query(`SELECT count(*) FROM ${table}`));
    if (rows !== ENTRIES + 2) throw new Error(`${rows} rows for ${ENTRIES + 2} lines`);
    console.log(
      `round ${r}: ${ENTRIES} entries shipped in ${first.seconds.toFixed(2)} s; again, resume point lost: ${again.seconds.toFixed(2)} s (${(again.seconds / first.seconds).toFixed(2)}x)`,
    );
    for (const [key, [n, ms]] of [...again.times].sort((a, b) => b[1][1] - a[1][1]).slice(0, 4)) {
      console.log(`  ${String(n).padStart(4)} × ${key}…  ${ms.toFixed(0)} ms`);
    }
  }
} finally {
  db.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
