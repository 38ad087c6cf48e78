// Audit log cost, side by side, keep-alive load from a separate process. Each app runs alone in its own
// process (bench/server.mjs): Express + clientIp + auditLog (hash-chained entries to a file) vs Express +
// morgan 'combined' to a file, and vs bare Express.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { comparePairs, startLoad, startServer, table } from './lib.mjs';

const PAIRS = Number(process.env.PAIRS ?? 11);
const MS = Number(process.env.MS ?? 800);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-'));

const load = startLoad();
const audit = await startServer('express-audit', dir);
const morgan = await startServer('express-morgan', dir);
const bare = await startServer('express', dir);
const params = { mode: 'keepalive', ms: MS, concurrency: 32, header: '', path: '/patients/12', marker: '"id":"12"}' };

const vsMorgan = await comparePairs(load, audit, morgan, { pairs: PAIRS, params });
const vsBare = await comparePairs(load, audit, bare, { pairs: PAIRS, params });
load.kill();
for (const s of [audit, morgan, bare]) await s.close();
const lines = fs.readFileSync(path.join(dir, 'audit.jsonl'), 'utf8').split('\n').length - 1;
fs.rmSync(dir, { recursive: true, force: true });

console.log(
  `\nAudit log cost (keep-alive, 32 connections; each app alone in its own process, load from another; median of ${PAIRS} alternating pairs of ${MS} ms)\n`,
);
const row = (name, r) => [
  name,
  Math.round(r.a),
  Math.round(r.b),
  `${r.ratio.toFixed(3)}x`,
  `${r.spread[0].toFixed(2)}–${r.spread[1].toFixed(2)}`,
  `${r.capacity.toFixed(3)}x`,
];
table([
  ['comparison', 'auditLog req/s', 'baseline req/s', 'ratio (rate)', 'pairs Q1–Q3', 'ratio (server CPU per op)'],
  row('Express + clientIp + auditLog vs Express + morgan combined (file)', vsMorgan),
  row('Express + clientIp + auditLog vs bare Express', vsBare),
]);
console.log(`\n${lines} chained audit entries written during the run.`);
export default { vsMorgan, vsBare };
