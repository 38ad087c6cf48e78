// Audit log cost, side by side, keep-alive load from a separate process. Each app runs alone in its own
// process (bench/server.mjs): Express + clientIp + auditLog (hash-chained entries to a file) vs Express +
// morgan 'combined' to a file, and vs bare Express; also the one-layer form, auditLog({ clientIp: true }).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { comparisonTable, freshFileRounds, ROUNDS, startLoad } from './lib.mjs';

const PAIRS = Number(process.env.PAIRS ?? 11);
const MS = Number(process.env.MS ?? 800);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-'));

const load = startLoad();
const params = { mode: 'keepalive', ms: MS, concurrency: 32, header: '', path: '/patients/12', marker: '"id":"12"}' };
const { run, counted } = freshFileRounds(load, dir, { pairs: PAIRS, params });

const vsMorgan = await run('express-audit', 'express-morgan');
const vsBare = await run('express-audit', 'express');
const oneLayer = await run('express-audit-one-layer', 'express');
const fsync = await run('express-audit-fsync', 'express-audit');
const aa = await run('express', 'express');
load.kill();
fs.rmSync(dir, { recursive: true, force: true });

console.log(
  `\nAudit log cost (keep-alive, 32 connections; each app alone in its own process, load from another; ${ROUNDS} rounds of fresh processes × ${PAIRS} alternating pairs of ${MS} ms, median of all pairs)\n`,
);
comparisonTable([
  ['Express + clientIp + auditLog vs Express + morgan combined (file)', vsMorgan],
  ['Express + clientIp + auditLog vs bare Express', vsBare],
  ['the same in one layer, auditLog({ clientIp: true }), vs bare Express', oneLayer],
  ["durability 'fsync' vs the default 'write'", fsync],
  ['method check (A/A): bare Express vs bare Express', aa],
]);
console.log(`\n${counted.lines} chained audit entries written during the run (each round to fresh files).`);
export default { vsMorgan, vsBare, oneLayer, fsync, aa };
