// parseProxyHeader vs the npm peers on the same bytes, in one process, rounds interleaved.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { batchOpsPerSecond, cpuClock, fmt, median, table, wallClock } from './lib.mjs';

const require = createRequire(import.meta.url);
// BENCH_DIST: other builds of the package (copies of dist/cjs), comma-separated, instead of dist/cjs. The first
// is "proxy-protocol-audit"; each further one gets a column of its own, named by its directory, and a row of
// ratios against the first: builds head to head in one process, against the same peers in the same rounds.
const dists = (process.env.BENCH_DIST ?? '').split(',').filter((d) => d !== '');
const builds = (
  dists.length > 0 ? dists.map((d) => path.resolve(d)) : [fileURLToPath(new URL('../dist/cjs', import.meta.url))]
).map((d) => [path.basename(d), require(`${d}/index.js`)]);
const { encodeProxyHeader } = builds[0][1];
const pp = require('proxy-protocol-js');
const balena = require('@balena/proxy-protocol-parser');

const request = Buffer.from('GET /patients HTTP/1.1\r\nHost: ehr.example\r\n\r\n');
// A pool of 4096 connections from distinct clients to one VIP, as behind a real balancer, so that no parser
// sees the same bytes twice in a row.
const POOL = 4096;
const rnd = (n) => Math.floor(Math.random() * n);
const v4 = () => `${1 + rnd(223)}.${rnd(256)}.${rnd(256)}.${1 + rnd(254)}`;
const v6 = () =>
  `2001:db8:${rnd(65536).toString(16)}:${rnd(65536).toString(16)}::${rnd(65536).toString(16)}:${rnd(65536).toString(16)}`;
const pool = (make) => Array.from({ length: POOL }, () => Buffer.concat([make(), request]));
const inputs = {
  'v1 TCP4': pool(() => Buffer.from(`PROXY TCP4 ${v4()} 10.0.0.5 ${1024 + rnd(60000)} 443\r\n`)),
  'v1 TCP6': pool(() => Buffer.from(`PROXY TCP6 ${v6()} 2001:db8::1 ${1024 + rnd(60000)} 443\r\n`)),
  'v2 IPv4': pool(() =>
    encodeProxyHeader({
      version: 2,
      source: { address: v4(), port: 1024 + rnd(60000) },
      destination: { address: '10.0.0.5', port: 443 },
    }),
  ),
  'v2 IPv6': pool(() =>
    encodeProxyHeader({
      version: 2,
      source: { address: v6(), port: 1024 + rnd(60000) },
      destination: { address: '2001:db8::1', port: 443 },
    }),
  ),
};
// The same bytes every time, as a fixed header in a micro-benchmark gives them: the best case for caches and
// branch predictors, reported beside the pool.
const fixed = (bytes) => Array.from({ length: POOL }, () => bytes);
inputs['v1 TCP4, one fixed header'] = fixed(
  Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n'), request]),
);
inputs['v2 IPv4, one fixed header'] = fixed(
  Buffer.from(
    encodeProxyHeader({
      version: 2,
      source: { address: '203.0.113.7', port: 51000 },
      destination: { address: '10.0.0.5', port: 443 },
    }),
  ),
);

let sink = 0;
const add = (n) => {
  sink += n;
};
/**
 * The loop over the pool for one build of ours, compiled for that build alone: loops made from one function
 * literal would share their call site (and its type feedback) between builds.
 */
function loopFor(parseProxyHeader, name) {
  const source = `return (list) => (count) => {
    let n = 0;
    for (let i = 0; i < count; i++) n += parseProxyHeader(list[i & (POOL - 1)]).header.source.address.length;
    add(n);
  }; // ${JSON.stringify(name)}`;
  return new Function('parseProxyHeader', 'POOL', 'add', source)(parseProxyHeader, POOL, add);
}
// Each parser gets its own loop over the pool (no shared call site, no wrapper closure per call), so the
// harness costs next to nothing and dilutes no ratio.
const ours = builds.map(([name, m], i) => [i === 0 ? 'proxy-protocol-audit' : name, loopFor(m.parseProxyHeader, name)]);
const parsers = {
  ...Object.fromEntries(ours),
  'proxy-protocol-js': (list) => (count) => {
    // Its v2 result holds addresses as byte arrays (it does less work); v1 as strings. Measured as it comes.
    for (let i = 0; i < count; i++) {
      const b = list[i & (POOL - 1)];
      const r = b[0] === 0x50 ? pp.V1BinaryProxyProtocol.parse(b) : pp.V2ProxyProtocol.parse(b);
      sink += r.data.length;
    }
  },
  // Its v1 string parser, from the bytes a server reads (the conversion to a string is part of its cost).
  // v1 only; for v2 inputs the binary parser above stands in.
  'proxy-protocol-js (v1 string)': (list) => {
    if (list[0][0] !== 0x50) return parsers['proxy-protocol-js'](list);
    return (count) => {
      for (let i = 0; i < count; i++) sink += pp.V1ProxyProtocol.parse(list[i & (POOL - 1)].toString('latin1')).data.length;
    };
  },
  '@balena/proxy-protocol-parser': (list) => (count) => {
    for (let i = 0; i < count; i++) {
      const r = balena.decode(list[i & (POOL - 1)]);
      sink += r.remoteAddress.length;
    }
  },
};

const ROUNDS = Number(process.env.ROUNDS ?? 7);
const MS = Number(process.env.MS ?? 150);
// CLOCK=cpu times each window by this process's CPU time instead of the wall clock: on a machine shared with
// other work, a window in which the process waited for a core then does not count against whichever parser
// ran in it. It counts the garbage collector's helper threads in full, which weighs on parsers that allocate
// more.
const CPU = process.env.CLOCK === 'cpu';
const clock = CPU ? cpuClock : wallClock;
const results = {};
for (const input of Object.keys(inputs)) {
  results[input] = {};
  for (const p of Object.keys(parsers)) results[input][p] = [];
  for (const p of Object.keys(parsers)) batchOpsPerSecond(parsers[p](inputs[input]), 100, 4096, clock); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of Object.keys(parsers)) results[input][p].push(batchOpsPerSecond(parsers[p](inputs[input]), MS, 4096, clock));
  }
}

console.log(
  `\nPROXY header parse, ops/s of ${CPU ? 'CPU' : 'wall'} time (median of ${ROUNDS} interleaved rounds of ${MS} ms; v1 headers followed by an HTTP request; a pool of 4096 distinct clients to one VIP, or one fixed header)\n`,
);
const rows = [['input', ...Object.keys(parsers), 'ratio vs fastest peer']];
const ratios = {};
for (const input of Object.keys(inputs)) {
  const m = Object.fromEntries(Object.entries(results[input]).map(([k, v]) => [k, median(v)]));
  const fastestPeer = Math.max(m['proxy-protocol-js'], m['proxy-protocol-js (v1 string)'], m['@balena/proxy-protocol-parser']);
  ratios[input] = m['proxy-protocol-audit'] / fastestPeer;
  rows.push([input, ...Object.keys(parsers).map((p) => fmt(m[p])), `${ratios[input].toFixed(2)}x`]);
}
table(rows);
if (ours.length > 1) {
  console.log('\nbuilds against the first (ratio of medians):\n');
  table([
    ['input', ...ours.slice(1).map(([name]) => name)],
    ...Object.keys(inputs).map((input) => [
      input,
      ...ours
        .slice(1)
        .map(([name]) => `${(median(results[input][name]) / median(results[input]['proxy-protocol-audit'])).toFixed(2)}x`),
    ]),
  ]);
}
if (sink === 0) console.log('');
export default ratios;
