// The Fastify adapter's cost, side by side, keep-alive load from a separate process; each app alone in its own
// process (bench/server.mjs): Fastify + clientIp + auditLog (hash-chained entries to a file) vs bare Fastify,
// and vs Fastify with its built-in pino request logging to a file; also the one-hook form (clientIp: true).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { compareRounds, ROUNDS, startLoad, table } from './lib.mjs';

const PAIRS = Number(process.env.PAIRS ?? 11);
const MS = Number(process.env.MS ?? 800);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-fastify-'));

const load = startLoad();
const params = { mode: 'keepalive', ms: MS, concurrency: 32, header: '', path: '/patients/12', marker: '"id":"12"}' };
// Each round writes to files of its own, removed after the round (see bench/audit.mjs).
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

const vsBare = await run('fastify-audit', 'fastify');
const vsPino = await run('fastify-audit', 'fastify-pino');
const oneHook = await run('fastify-audit-one-hook', 'fastify');
const aa = await run('fastify', 'fastify');
load.kill();
fs.rmSync(dir, { recursive: true, force: true });

console.log(
  `\nFastify adapter cost (keep-alive, 32 connections; each app alone in its own process, load from another; ${ROUNDS} rounds of fresh processes × ${PAIRS} alternating pairs of ${MS} ms, median of all pairs)\n`,
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
  row('Fastify + clientIp + auditLog vs bare Fastify', vsBare),
  row('Fastify + clientIp + auditLog vs Fastify + pino request logging (file)', vsPino),
  row('the same in one hook, auditLog with clientIp: true, vs bare Fastify', oneHook),
  row('method check (A/A): bare Fastify vs bare Fastify', aa),
]);
console.log(`\n${lines} chained audit entries written during the run (each round to fresh files).`);
export default { vsBare, vsPino, oneHook, aa };
