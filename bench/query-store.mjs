// `query --postgres URL --ip X --from … --to …` over ENTRIES rows (default 1,000,000) in the audit table made
// by pg-init: the rows of a file written by the real writer, loaded with psql \copy (the loading is not
// timed), then ANALYZE. Timed: the query through the API on an open pool (ROUNDS runs, median), and the CLI as
// a child process (includes starting Node), each verifying every answered row's hash; and the plan. Needs
// PostgreSQL; not run by the tests.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPostgres } from './pg.mjs';
import { clientOf, T0, writeRequests } from './requests.mjs';

const require = createRequire(import.meta.url);
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist', 'cjs');
const { pgInit, queryAuditLog, storeQuerySql } = require(path.join(dist, 'index.js'));
const { toRow, COLUMNS } = require(path.join(dist, 'store', 'row.js'));
const { lineBatches } = require(path.join(dist, 'audit', 'line-reader.js'));
const pg = require('pg');

const ENTRIES = Number(process.env.ENTRIES ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 9);
const db = startPostgres();
try {
  const file = path.join(db.dir, 'audit.jsonl');
  await writeRequests(file, ENTRIES);
  // Rows as CSV for \copy, written as they are made (1,000,000 rows do not fit in one string).
  const csv = path.join(db.dir, 'rows.csv');
  const out = fs.openSync(csv, 'w');
  const q = (v) => (v === null || v === undefined ? '' : `"${String(v).replaceAll('"', '""')}"`);
  let rows = 0;
  let chunk = '';
  for await (const batch of lineBatches(file)) {
    if (!Array.isArray(batch)) break;
    for (const line of batch) {
      const r = toRow(line);
      chunk += `${[...COLUMNS.map(([k]) => q(r[k])), q(r.line), q('bench')].join(',')}\n`;
      rows++;
    }
    if (chunk.length > 1 << 22) {
      fs.writeSync(out, chunk);
      chunk = '';
    }
  }
  fs.writeSync(out, chunk);
  fs.closeSync(out);
  await pgInit({ postgres: { connectionString: db.url } });
  const cols = `${COLUMNS.map(([, c]) => c).join(', ')}, line, source`;
  const loadMs = db.psql(['-c', `\\copy audit_log (${cols}) FROM '${csv}' CSV`]);
  db.psql(['-c', 'ANALYZE audit_log']);

  // One client address, over one day around its requests: i = 66,051 is 2024-03-01T18:20:51Z.
  const i = 66_051;
  const filters = {
    ip: clientOf(i),
    from: new Date(T0 + (i - 43_200) * 1000).toISOString(),
    to: new Date(T0 + (i + 43_200) * 1000).toISOString(),
  };
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  const once = async () => {
    const t = process.hrtime.bigint();
    const query = queryAuditLog({ postgres: { pool } }, filters);
    const found = [];
    for await (const m of query) found.push(m);
    const r = await query.result;
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.verdict !== 'intact' || found.length !== 1 || !found.every((m) => m.verified))
      throw new Error(`unexpected answer: ${r.verdict}, ${found.length}`);
    return ms;
  };
  await once(); // connects the pool
  const api = [];
  for (let k = 0; k < ROUNDS; k++) api.push(await once());
  await pool.end();
  const cli = [];
  for (let k = 0; k < 3; k++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(
      process.execPath,
      [
        path.join(dist, 'cli', 'index.js'),
        'query',
        '--postgres',
        db.url,
        '--ip',
        filters.ip,
        '--from',
        filters.from,
        '--to',
        filters.to,
        '--json',
      ],
      { encoding: 'utf8' },
    );
    cli.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (r.status !== 0 || r.stdout.trimEnd().split('\n').length !== 1) throw new Error(`CLI failed: ${r.status} ${r.stderr}`);
  }
  const start = Number(process.hrtime.bigint());
  spawnSync(process.execPath, ['-e', '0']);
  const nodeMs = (Number(process.hrtime.bigint()) - start) / 1e6;
  const { text: sql, values } = storeQuerySql('audit_log', filters);
  let literal = sql;
  values.forEach((v, k) => {
    literal = literal.replace(new RegExp(`\\$${k + 1}(?!\\d)`), `'${v}'`);
  });
  const plan = execFileSync(
    'psql',
    ['-X', '-q', '-A', '-t', '-h', db.dir, '-U', 'postgres', '-c', `EXPLAIN (ANALYZE, COSTS OFF) ${literal}`],
    { encoding: 'utf8' },
  );
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `\nquery --postgres: ${rows.toLocaleString('en')} rows (${db.version}; loaded with \\copy in ${(loadMs / 1000).toFixed(1)} s)`,
  );
  console.log(`  --ip ${filters.ip} --from ${filters.from} --to ${filters.to}: 1 row`);
  console.log(
    `  API on an open pool, median of ${ROUNDS}: ${median(api).toFixed(1)} ms  (runs: ${api.map((x) => x.toFixed(1)).join(' ')})`,
  );
  console.log(
    `  CLI, median of 3: ${median(cli).toFixed(0)} ms  (runs: ${cli.map((x) => x.toFixed(0)).join(' ')}; node -e 0 alone: ${nodeMs.toFixed(0)} ms)`,
  );
  console.log(`  plan:\n${plan.trimEnd().replace(/^/gm, '    ')}`);
} finally {
  db.stop();
}
