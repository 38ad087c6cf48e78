// Audit log cost, side by side, keep-alive load from a separate process. Each app runs alone in its own
// process (bench/server.mjs): Express + clientIp + auditLog (hash-chained entries to a file) vs Express +
// morgan 'combined' to a file, and vs bare Express; also the one-layer form, auditLog({ clientIp: true }).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compareRounds, ROUNDS, startLoad, table } from './lib.mjs';

const PAIRS = Number(process.env.PAIRS ?? 11);
const MS = Number(process.env.MS ?? 800);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-'));

const load = startLoad();
const params = { mode: 'keepalive', ms: MS, concurrency: 32, header: '', path: '/patients/12', marker: '"id":"12"}' };
// Every round's servers write to files of their own, deleted after the round: each round starts from the same
// state instead of appending to files that grow by hundreds of megabytes over the run (on this VM the cost
// of appending varies with how much page cache the run has filled, which made later rows pay more).
let lines = 0;
const run = (a, b) =>
  compareRounds(load, a, b, {
    pairs: PAIRS,
    params,
    roundDir: () => fs.mkdtempSync(path.join(dir, 'round-')),
    afterRound: (roundDir) => {
      const audit = path.join(roundDir, 'audit.jsonl');
      if (fs.existsSync(audit)) lines += fs.readFileSync(audit, 'utf8').split('\n').length - 1;
      fs.rmSync(roundDir, { recursive: true, force: true });
    },
  });

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
const row = (name, r) => [
  name,
  Math.round(r.a),
  Math.round(r.b),
  `${r.ratio.toFixed(3)}x`,
  `${r.spread[0].toFixed(2)}–${r.spread[1].toFixed(2)}`,
  r.perRound.map((x) => x.toFixed(2)).join(' '),
  `${r.capacity.toFixed(3)}x`,
];
table([
  ['comparison', 'ours req/s', 'baseline req/s', 'ratio (rate)', 'pairs Q1–Q3', 'per round', 'ratio (server CPU per op)'],
  row('Express + clientIp + auditLog vs Express + morgan combined (file)', vsMorgan),
  row('Express + clientIp + auditLog vs bare Express', vsBare),
  row('the same in one layer, auditLog({ clientIp: true }), vs bare Express', oneLayer),
  row("durability 'fsync' vs the default 'write'", fsync),
  row('method check (A/A): bare Express vs bare Express', aa),
]);
console.log(`\n${lines} chained audit entries written during the run (each round to fresh files).`);
export default { vsMorgan, vsBare, oneLayer, fsync, aa };
