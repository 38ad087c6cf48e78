// The Fastify adapter's cost, side by side, keep-alive load from a separate process; each app alone in its own
// process (bench/server.mjs): Fastify + clientIp + auditLog (hash-chained entries to a file) vs bare Fastify,
// and vs Fastify with its built-in pino request logging to a file; also the one-hook form (clientIp: true).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { comparisonTable, freshFileRounds, ROUNDS, startLoad } from './lib.mjs';

const PAIRS = Number(process.env.PAIRS ?? 11);
const MS = Number(process.env.MS ?? 800);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-fastify-'));

const load = startLoad();
const params = { mode: 'keepalive', ms: MS, concurrency: 32, header: '', path: '/patients/12', marker: '"id":"12"}' };
// Each round writes to files of its own, removed after the round (see freshFileRounds in bench/lib.mjs).
const { run, counted } = freshFileRounds(load, dir, { pairs: PAIRS, params });

const vsBare = await run('fastify-audit', 'fastify');
const vsPino = await run('fastify-audit', 'fastify-pino');
const oneHook = await run('fastify-audit-one-hook', 'fastify');
const aa = await run('fastify', 'fastify');
load.kill();
fs.rmSync(dir, { recursive: true, force: true });

console.log(
  `\nFastify adapter cost (keep-alive, 32 connections; each app alone in its own process, load from another; ${ROUNDS} rounds of fresh processes × ${PAIRS} alternating pairs of ${MS} ms, median of all pairs)\n`,
);
comparisonTable([
  ['Fastify + clientIp + auditLog vs bare Fastify', vsBare],
  ['Fastify + clientIp + auditLog vs Fastify + pino request logging (file)', vsPino],
  ['the same in one hook, auditLog with clientIp: true, vs bare Fastify', oneHook],
  ['method check (A/A): bare Fastify vs bare Fastify', aa],
]);
console.log(`\n${counted.lines} chained audit entries written during the run (each round to fresh files).`);
export default { vsBare, vsPino, oneHook, aa };
