// Audit log cost, side by side, keep-alive load from a separate process:
// Express + clientIp + auditLog (hash-chained entries to a file) vs Express + morgan 'combined' to a file,
// and vs bare Express.
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { median, startLoad, table } from './lib.mjs';

const require = createRequire(import.meta.url);
const express = require('express');
const morgan = require('morgan');
const { createAuditLog } = require('../dist/cjs/index.js');
const { clientIp, auditLog } = require('../dist/cjs/express/index.js');

const PAIRS = Number(process.env.PAIRS ?? 11);
const MS = Number(process.env.MS ?? 800);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-'));

function app(setup) {
  const a = express();
  a.set('etag', false);
  setup(a);
  a.get('/patients/:id', (req, res) => res.json({ id: req.params.id }));
  return a;
}

const log = createAuditLog({ filename: path.join(dir, 'audit.jsonl'), service: 'bench' });
const servers = {
  audit: http.createServer(
    app((a) => {
      a.use(clientIp());
      a.use(auditLog({ log }));
    }),
  ),
  morgan: http.createServer(
    app((a) => a.use(morgan('combined', { stream: fs.createWriteStream(path.join(dir, 'access.log'), { flags: 'a' }) }))),
  ),
  bare: http.createServer(app(() => {})),
};

const load = startLoad();

for (const s of Object.values(servers)) {
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
}
async function measure(name) {
  load.send({
    mode: 'keepalive',
    port: servers[name].address().port,
    ms: MS,
    concurrency: 32,
    header: '',
    path: '/patients/12',
    marker: '"id":"12"}',
  });
  const [r] = await once(load, 'message');
  if (r.errors) throw new Error(`${r.errors} errors`);
  return r.rate;
}

async function compare(a, b) {
  await measure(a);
  await measure(b);
  const ratios = [];
  const ra = [];
  const rb = [];
  for (let i = 0; i < PAIRS; i++) {
    const [x, y] = i % 2 === 0 ? [await measure(a), await measure(b)] : [0, await measure(b)];
    const xa = i % 2 === 0 ? x : await measure(a);
    ra.push(xa);
    rb.push(y);
    ratios.push(xa / y);
  }
  return { a: median(ra), b: median(rb), ratio: median(ratios) };
}

const vsMorgan = await compare('audit', 'morgan');
const vsBare = await compare('audit', 'bare');
load.kill();
for (const s of Object.values(servers)) s.close();
await log.close();
const lines = fs.readFileSync(path.join(dir, 'audit.jsonl'), 'utf8').split('\n').length - 1;
fs.rmSync(dir, { recursive: true, force: true });

console.log(
  `\nAudit log cost (keep-alive, 32 connections, load from a separate process; median of ${PAIRS} alternating pairs of ${MS} ms)\n`,
);
table([
  ['comparison', 'auditLog req/s', 'baseline req/s', 'ratio'],
  [
    'Express + clientIp + auditLog vs Express + morgan combined (file)',
    Math.round(vsMorgan.a),
    Math.round(vsMorgan.b),
    `${vsMorgan.ratio.toFixed(3)}x`,
  ],
  ['Express + clientIp + auditLog vs bare Express', Math.round(vsBare.a), Math.round(vsBare.b), `${vsBare.ratio.toFixed(3)}x`],
]);
console.log(`\n${lines} chained audit entries written during the run.`);
export default { vsMorgan, vsBare };
