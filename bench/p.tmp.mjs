import { fork } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const express = require('express');
const { createAuditLog } = require('../dist/cjs/index.js');
const { clientIp, auditLog } = require('../dist/cjs/express/index.js');
const v = process.argv[2];
const a = express();
a.set('etag', false);
let log;
if (v === 'audit') {
  log = createAuditLog({ filename: '/tmp/p-audit.jsonl' });
  a.use(clientIp());
  a.use(auditLog({ log }));
}
if (v === 'nofile') {
  const Transport = require('winston-transport');
  class T extends Transport {
    log(i, cb) {
      cb();
    }
  }
  log = createAuditLog({ transports: [new T()] });
  a.use(clientIp());
  a.use(auditLog({ log }));
}
if (v === 'cip') a.use(clientIp());
if (v === 'ra')
  a.use((q, r, n) => {
    q.socket.remoteAddress;
    n();
  });
if (v === 'hdr')
  a.use((q, r, n) => {
    q.headers['x-forwarded-for'] = '1.2.3.4';
    q.headers['x-real-ip'] = '1.2.3.4';
    n();
  });
if (v === 'raw')
  a.use((q, r, n) => {
    q.rawHeaders.push('X-Forwarded-For', '1.2.3.4', 'X-Real-IP', '1.2.3.4');
    n();
  });
if (v === 'prop')
  a.use((q, r, n) => {
    q.clientIp = '1.2.3.4';
    q.clientPort = 5;
    n();
  });
if (v === 'twomw') {
  a.use((q, r, n) => n());
  a.use((q, r, n) => n());
}
if (v === 'nowrite') {
  const Transport = require('winston-transport');
  class T extends Transport {
    log(i, cb) {
      cb();
    }
  }
  log = createAuditLog({ transports: [new T()] });
  log.write = () => true;
  a.use(auditLog({ log }));
}
if (v === 'noseal') {
  const Transport = require('winston-transport');
  class T extends Transport {
    log(i, cb) {
      cb();
    }
  }
  log = createAuditLog({ transports: [new T()] });
  const ch = log.chain;
  ch.seal = () => 'x';
  a.use(auditLog({ log }));
}
a.get('/patients/:id', (req, res) => res.json({ id: req.params.id }));
const s = http.createServer(a);
s.listen(0, '127.0.0.1');
await once(s, 'listening');
const load = fork(new URL('./load.mjs', import.meta.url));
for (let i = 0; i < 3; i++) {
  const c0 = process.cpuUsage();
  load.send({
    mode: 'keepalive',
    port: s.address().port,
    ms: 1000,
    concurrency: 32,
    header: '',
    path: '/patients/12',
    marker: '"id":"12"}',
  });
  const [r] = await once(load, 'message');
  const c = process.cpuUsage(c0);
  console.log(v, Math.round(r.rate), 'req/s', ((c.user + c.system) / r.n).toFixed(1), 'us/op');
}
load.kill();
s.close();
await log?.close();
