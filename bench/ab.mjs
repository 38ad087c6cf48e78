// A/B of two builds (or two server kinds) at the same time: both servers run at once on the server core, each
// under its own keep-alive load process on the other core, and the figure is the ratio of their capacities
// (requests per second of server CPU time). Drift of the host then hits both alike, so a difference of a
// percent or two shows, where the sequential method of `npm run bench` needs several runs. It measures CPU cost
// per request, not throughput.
//
//   node bench/ab.mjs <kindA> <distA> <kindB> <distB>      e.g. after `cp -r dist/cjs /tmp/before`:
//   node bench/ab.mjs express-audit-one-layer dist/cjs express-audit-one-layer /tmp/before
// Env: ROUNDS (fresh process pairs, 4), WINDOWS (per round, 10), MS (per window, 1500); MODE (the load's mode:
// keepalive, conn or tls; default keepalive), MARKER (`ok`: keep-alive against http/ppa-http) and HEADER_A /
// HEADER_B (`v1`: the PROXY v1 line of bench/connections.mjs before every connection of that side; default
// none), e.g. TLS handshakes head to head:
//   MODE=tls HEADER_A=v1 node bench/ab.mjs ppa-https dist/cjs https dist/cjs
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import selfsigned from 'selfsigned';
import { median, quartiles, startLoad, startServer } from './lib.mjs';

const [kindA, distA, kindB, distB] = process.argv.slice(2);
if (!distB) {
  console.error('usage: node bench/ab.mjs <kindA> <distA> <kindB> <distB>');
  process.exit(2);
}
const ROUNDS = Number(process.env.ROUNDS ?? 4);
const WINDOWS = Number(process.env.WINDOWS ?? 10);
const MS = Number(process.env.MS ?? 1500);
const loadA = startLoad();
const loadB = startLoad();
const MODE = process.env.MODE ?? 'keepalive';
const V1 = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 80\r\n';
const header = (h) => (h === 'v1' ? V1 : '');
// The tls and conn loops read up to the end of any response; keep-alive counts the Express apps' answers, or
// with MARKER='ok' the plain servers' (http, ppa-http: `ok` bodies).
const marker = process.env.MARKER === 'ok' ? '\r\n\r\nok' : '"id":"12"}';
const params = { mode: MODE, ms: MS, concurrency: MODE === 'tls' ? 16 : 32, path: '/patients/12', marker };
const paramsA = { ...params, header: header(process.env.HEADER_A) };
const paramsB = { ...params, header: header(process.env.HEADER_B) };
const pems = MODE.startsWith('tls')
  ? await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', algorithm: 'sha256' })
  : undefined;
const all = [];
const perRound = [];
let running = [];
// A failed window must not leave the servers and loads behind (they hold this process's stdout).
process.on('uncaughtException', (err) => {
  for (const s of running) s.kill();
  loadA.kill();
  loadB.kill();
  console.error(err);
  process.exit(1);
});
for (let r = 0; r < ROUNDS; r++) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-ab-'));
  // A directory each: two servers of one kind would otherwise write (and ship) one file.
  const [dirA, dirB] = [path.join(dir, 'a'), path.join(dir, 'b')];
  for (const d of [dirA, dirB]) {
    fs.mkdirSync(d);
    if (pems) fs.writeFileSync(path.join(d, 'tls.json'), JSON.stringify({ key: pems.private, cert: pems.cert }));
  }
  const a = await startServer(kindA, dirA, path.resolve(distA));
  const b = await startServer(kindB, dirB, path.resolve(distB));
  running = [a, b];
  const window = async () => {
    const [ca, cb] = [await a.cpu(), await b.cpu()];
    loadA.send({ ...paramsA, port: a.port });
    loadB.send({ ...paramsB, port: b.port });
    const [[ra], [rb]] = await Promise.all([once(loadA, 'message'), once(loadB, 'message')]);
    const [ca2, cb2] = [await a.cpu(), await b.cpu()];
    // A side whose requests failed (a PROXY server given no header, a wrong MARKER) measures nothing.
    for (const [kind, res] of [
      [kindA, ra],
      [kindB, rb],
    ]) {
      if (res.n === 0 || res.errors > res.n / 100) throw new Error(`${kind}: ${res.errors} errors in ${res.n} requests`);
    }
    return ra.n / (ca2 - ca) / (rb.n / (cb2 - cb));
  };
  for (let w = 0; w < 4; w++) await window(); // warm-up
  const ratios = [];
  for (let w = 0; w < WINDOWS; w++) ratios.push(await window());
  all.push(...ratios);
  perRound.push(median(ratios).toFixed(3));
  await a.close();
  await b.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
loadA.kill();
loadB.kill();
const [q1, q3] = quartiles(all);
console.log(
  `${MODE}: ${kindA} (${distA}) vs ${kindB} (${distB}): capacity ratio ${median(all).toFixed(3)}, windows Q1–Q3 ${q1.toFixed(3)}–${q3.toFixed(3)}, rounds ${perRound.join(' ')}`,
);
process.exit(0);
