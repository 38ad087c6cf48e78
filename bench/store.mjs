// PostgreSQL store: shipping an existing file of 200,000 entries (vs psql \copy of the same rows into the
// same table) and verifying from the store (vs verifying the file). A private PostgreSQL is started in a
// temp dir on a Unix socket with its default durability settings. Not run by the tests.
// Besides the rates, CPU time per entry: this process's (the shipper, the verifier) and the cluster's (its
// postgres processes, and psql), which the machine's other work disturbs less than wall-clock rates.
// Knobs: ENTRIES (200000), ROUNDS (3); BEFORE=<another build's dist/cjs> also ships with that build's
// PostgresShipper in every round (head to head).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { table, writeRequestLog } from './lib.mjs';
import { startPostgres } from './pg.mjs';

const require = createRequire(import.meta.url);
const dist = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'dist', 'cjs');
const { createAuditLog, pgInit, PostgresShipper, verifyAuditLog } = require(path.join(dist, 'index.js'));
const { toRow, COLUMNS } = require(path.join(dist, 'store', 'row.js'));

const ENTRIES = Number(process.env.ENTRIES ?? 200_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const BEFORE = process.env.BEFORE ? require(path.join(path.resolve(process.env.BEFORE), 'index.js')).PostgresShipper : undefined;

/** CPU ms of the cluster (db.cpuMs) and of this process's children that have exited (psql). */
function clusterCpuMs() {
  const self = readFileSync('/proc/self/stat', 'utf8');
  const f = self.slice(self.lastIndexOf(')') + 2).split(' ');
  return db.cpuMs() + (Number(f[13]) + Number(f[14])) * 10;
}

/** Runs fn; returns its wall-clock ms and CPU ms of this process and of the cluster. */
async function timed(fn) {
  const c0 = clusterCpuMs();
  const n0 = process.cpuUsage();
  const t = process.hrtime.bigint();
  await fn();
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  const n = process.cpuUsage(n0);
  return { ms, node: (n.user + n.system) / 1000, db: clusterCpuMs() - c0 };
}

const db = startPostgres();
const { url, dir } = db;

try {
  // The file: request entries as the Express middleware writes them (about 820 bytes each).
  const file = path.join(dir, 'audit.jsonl');
  await writeRequestLog(createAuditLog, file, ENTRIES);
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
  console.log(`store: ${text.length} entries, ${(readFileSync(file).length / 1e6).toFixed(0)} MB, ${db.version}`);
  const rate = (r) => Math.round((text.length / r.ms) * 1000);
  const perEntry = (ms) => ((ms * 1000) / text.length).toFixed(1);
  const rows = [];
  const ship = async (Shipper, table, source) => {
    const s = new Shipper({ filename: file, postgres: { connectionString: url, table }, follow: false, source });
    const r = await timed(async () => {
      s.start();
      await s.close(600_000);
    });
    if (s.stats.inserted !== text.length) throw new Error(`shipped ${s.stats.inserted} of ${text.length}`);
    return r;
  };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const t of ['ship', 'before', 'copy']) await pgInit({ postgres: { connectionString: url, table: `${t}_${round}` } });
    // Alternate the order: the first of a round may find a colder (or busier) machine.
    const steps = {
      ship: () => ship(PostgresShipper, `ship_${round}`, `bench-${round}`),
      before: BEFORE ? () => ship(BEFORE, `before_${round}`, `before-${round}`) : undefined,
      copy: () => timed(() => db.psql(['-c', `\\copy copy_${round} (${cols}) FROM '${csv}' CSV`])),
    };
    const order = round % 2 ? ['ship', 'before', 'copy'] : ['copy', 'before', 'ship'];
    const r = {};
    for (const k of order) if (steps[k]) r[k] = await steps[k]();
    const vf = await timed(async () => {
      if ((await verifyAuditLog(file)).verdict !== 'intact') throw new Error('the file does not verify');
    });
    const vs = await timed(async () => {
      const v = await verifyAuditLog({ postgres: { connectionString: url, table: `ship_${round}` } });
      if (v.verdict !== 'intact' || v.entries !== text.length) throw new Error('the store does not verify');
    });
    rows.push([
      round,
      rate(r.ship),
      r.before ? rate(r.before) : '',
      rate(r.copy),
      `${(r.copy.ms / r.ship.ms).toFixed(2)}x`,
      `${perEntry(r.ship.node)} + ${perEntry(r.ship.db)}`,
      r.before ? `${perEntry(r.before.node)} + ${perEntry(r.before.db)}` : '',
      perEntry(r.copy.db),
      rate(vf),
      rate(vs),
      `${(vf.ms / vs.ms).toFixed(2)}x`,
    ]);
  }
  table([
    [
      'round',
      'ship /s',
      'before /s',
      '\\copy /s',
      'ship/\\copy',
      'ship CPU us/entry (node + db)',
      'before CPU',
      '\\copy CPU (psql + db)',
      'verify file /s',
      'verify --postgres /s',
      'store/file',
    ],
    ...rows,
  ]);
} finally {
  db.stop();
}
