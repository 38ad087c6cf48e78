// PostgreSQL store: shipping an existing file of 200,000 entries (vs psql \copy of the same rows into the
// same table) and verifying from the store (vs verifying the file). A private PostgreSQL is started in a
// temp dir on a Unix socket with its default durability settings. Not run by the tests.
// Knobs: ENTRIES (200000), ROUNDS (2).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { startPostgres } from './pg.mjs';

const require = createRequire(import.meta.url);
const dist = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'dist', 'cjs');
const { createAuditLog, pgInit, PostgresShipper, verifyAuditLog } = require(path.join(dist, 'index.js'));
const { toRow, COLUMNS } = require(path.join(dist, 'store', 'row.js'));

const ENTRIES = Number(process.env.ENTRIES ?? 200_000);
const ROUNDS = Number(process.env.ROUNDS ?? 2);

const pg = startPostgres();
const { dir, url, psql } = pg;

try {
  // The file: request entries as the Express middleware writes them (about 820 bytes each).
  const file = path.join(dir, 'audit.jsonl');
  const log = createAuditLog({ filename: file, maxQueue: ENTRIES + 10 });
  for (let i = 0; i < ENTRIES; i++) {
    log.write({
      category: 'web',
      action: 'http-request',
      outcome: i % 10 ? 'success' : 'failure',
      duration: 1234567,
      method: 'GET',
      path: `/patients/${i % 5000}/record`,
      route: '/patients/:id/record',
      status: i % 10 ? 200 : 403,
      clientIp: `203.0.113.${i % 250}`,
      clientPort: 40000 + (i % 20000),
      peerAddress: '10.0.0.1',
      peerPort: 5000,
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) curl/8.5',
      userId: `user-${i % 700}`,
      requestId: `req-${i}`,
      httpVersion: '1.1',
      domain: 'ehr.example.org',
    });
    if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
  }
  await log.close();
  // The same rows as CSV for \copy (made before the clock starts).
  const csv = path.join(dir, 'rows.csv');
  const q = (v) => (v === null || v === undefined ? '' : `"${String(v).replaceAll('"', '""')}"`);
  const text = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
  writeFileSync(
    csv,
    `${text
      .map((l) => {
        const r = toRow(l);
        return [...COLUMNS.map(([k]) => q(r[k])), q(r.line), q('copy')].join(',');
      })
      .join('\n')}\n`,
  );
  const cols = `${COLUMNS.map(([, c]) => c).join(', ')}, line, source`;
  console.log(`store: ${text.length} entries, ${(readFileSync(file).length / 1e6).toFixed(0)} MB, PostgreSQL ${pg.version}`);
  console.log(
    'round | ship (entries/s) | \\copy (entries/s) | ship/\\copy | verify file (entries/s) | verify --postgres | store/file',
  );
  for (let round = 1; round <= ROUNDS; round++) {
    await pgInit({ postgres: { connectionString: url, table: `ship_${round}` } });
    await pgInit({ postgres: { connectionString: url, table: `copy_${round}` } });
    let t = process.hrtime.bigint();
    const s = new PostgresShipper({
      filename: file,
      postgres: { connectionString: url, table: `ship_${round}` },
      follow: false,
      source: `bench-${round}`,
    });
    s.start();
    await s.close(600_000);
    const shipMs = Number(process.hrtime.bigint() - t) / 1e6;
    if (s.stats.inserted !== text.length) throw new Error(`shipped ${s.stats.inserted} of ${text.length}`);
    const copyMs = psql(['-c', `\\copy copy_${round} (${cols}) FROM '${csv}' CSV`]);
    t = process.hrtime.bigint();
    const vf = await verifyAuditLog(file);
    const fileMs = Number(process.hrtime.bigint() - t) / 1e6;
    t = process.hrtime.bigint();
    const vs = await verifyAuditLog({ postgres: { connectionString: url, table: `ship_${round}` } });
    const storeMs = Number(process.hrtime.bigint() - t) / 1e6;
    if (vf.verdict !== 'intact' || vs.verdict !== 'intact' || vs.entries !== text.length) throw new Error('verification failed');
    const rate = (ms) => Math.round((text.length / ms) * 1000);
    console.log(
      `${round} | ${rate(shipMs)} | ${rate(copyMs)} | ${(copyMs / shipMs).toFixed(2)}x | ${rate(fileMs)} | ${rate(storeMs)} | ${(fileMs / storeMs).toFixed(2)}x`,
    );
  }
} finally {
  pg.stop();
}
