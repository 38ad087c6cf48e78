// Connection layer cost, side by side. Every server runs alone in its own process on core 0 (bench/server.mjs);
// the load comes from another process on core 1 (bench/load.mjs). Each pair measures the two servers back to
// back under the same load; the ratio of each pair is kept and the median reported.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import selfsigned from 'selfsigned';
import { compareRounds, ROUNDS, startLoad, table } from './lib.mjs';

const PAIRS = Number(process.env.PAIRS ?? 15);
const MS = Number(process.env.MS ?? 600);
const HEADER = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 80\r\n';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-'));
const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', algorithm: 'sha256' });
fs.writeFileSync(path.join(dir, 'tls.json'), JSON.stringify({ key: pems.private, cert: pems.cert }));

const load = startLoad();
const params = (mode, header, concurrency) => ({ mode, ms: MS, concurrency, header, path: '/', marker: '\r\n\r\nok' });

const rows = [
  ['new connections/s, v1 header vs plain http (no header)', 'ppa-http', 'http', 'conn', HEADER, '', 32],
  [
    'new connections/s, reference: minimal flowing read+unshift, no checks, vs plain http',
    'minimal',
    'http',
    'conn',
    HEADER,
    '',
    32,
  ],
  ['new connections/s, method check (A/A): plain http vs plain http', 'http', 'http', 'conn', '', '', 32],
  ['new connections/s, v1 header vs findhit-proxywrap', 'ppa-http', 'proxywrap', 'conn', HEADER, HEADER, 32],
  ['TLS handshakes/s, v1 header vs plain https.createServer', 'ppa-https', 'https', 'tls', HEADER, '', 16],
  [
    'TLS handshakes/s, reference: minimal flowing read+pause+unshift, no checks, vs plain https',
    'minimal-https',
    'https',
    'tls',
    HEADER,
    '',
    16,
  ],
  ['keep-alive requests/s vs plain http', 'ppa-http', 'http', 'keepalive', HEADER, '', 32],
];
// ONLY: run only the rows whose name contains it (e.g. ONLY=TLS).
const only = process.env.ONLY;
const results = [];
for (const [name, a, b, mode, headerA, headerB, concurrency] of rows.filter((r) => !only || r[0].includes(only))) {
  const r = await compareRounds(load, a, b, {
    dir,
    pairs: PAIRS,
    params: params(mode, headerA, concurrency),
    paramsB: params(mode, headerB, concurrency),
  });
  results.push({ name, a_label: a, b_label: b, ...r });
}
load.kill();
fs.rmSync(dir, { recursive: true, force: true });

console.log(
  `\nConnection layer (each server alone in its own process; load from another; ${ROUNDS} rounds of fresh processes × ${PAIRS} alternating pairs of ${MS} ms, median of all pairs)\n`,
);
table([
  ['measure', 'ours', 'baseline', 'ratio (rate)', 'pairs Q1–Q3', 'per round', 'ratio (server CPU per op)'],
  ...results.map((r) => [
    r.name,
    `${Math.round(r.a)}/s`,
    `${Math.round(r.b)}/s (${r.b_label})`,
    `${r.ratio.toFixed(3)}x`,
    `${r.spread[0].toFixed(2)}–${r.spread[1].toFixed(2)}`,
    r.perRound.map((x) => x.toFixed(2)).join(' '),
    `${r.capacity.toFixed(3)}x`,
  ]),
]);
console.log('\nratio (rate): ours/baseline requests per second, median of the pairs;');
console.log('ratio (server CPU per op): baseline/ours server CPU time per operation (capacity of one core).');
export default results;
