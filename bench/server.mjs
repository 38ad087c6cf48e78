// One benchmark server per process, as in production: no other server shares its heap, its JIT feedback or
// its garbage collector. Started by lib.mjs startServer(kind); reports its port, then answers 'cpu' with its
// own CPU time and 'close' by closing (and, for the audit server, by flushing its log).
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
// BENCH_DIST: another build of the package (a copy of dist/cjs), for bench/ab.mjs.
const dist = process.env.BENCH_DIST ?? '../dist/cjs';
const { withProxyProtocol, createServer, createAuditLog } = require(`${dist}/index.js`);

const [kind, dir] = process.argv.slice(2);

const hello = (_req, res) => {
  res.setHeader('content-length', '2');
  res.end('ok');
};

// The floor of any JS-level PROXY reader on public Node APIs, with the cheapest hand-over we know (the one the
// library uses for http.Server): take the first chunk in flowing mode, strip the header line, hand the socket
// to http, then unshift the rest straight into its parser. No parsing, no checks, no peer address, no timeout.
function minimalReader() {
  const s = http.createServer(hello);
  const emit = s.emit;
  s.emit = function (event, socket) {
    // biome-ignore lint/complexity/noArguments: forwards every other event unchanged
    if (event !== 'connection') return Reflect.apply(emit, this, arguments);
    socket.on('data', function onData(chunk) {
      socket.removeListener('data', onData);
      const rest = chunk.subarray(chunk.indexOf(10) + 1);
      emit.call(s, 'connection', socket);
      if (rest.length > 0) socket.unshift(rest);
    });
    return true;
  };
  return s;
}

// The same floor for TLS: the first chunk in flowing mode, the header line stripped, the socket paused with the
// rest put back, then handed to https (whose TLS socket reads what is buffered), as the library does for TLS.
function minimalTlsReader(options) {
  const s = https.createServer(options, hello);
  const emit = s.emit;
  s.emit = function (event, socket) {
    // biome-ignore lint/complexity/noArguments: forwards every other event unchanged
    if (event !== 'connection') return Reflect.apply(emit, this, arguments);
    socket.on('data', function onData(chunk) {
      socket.removeListener('data', onData);
      socket.pause();
      const rest = chunk.subarray(chunk.indexOf(10) + 1);
      if (rest.length > 0) socket.unshift(rest);
      emit.call(s, 'connection', socket);
    });
    return true;
  };
  return s;
}

function expressApp(setup) {
  const express = require('express');
  const a = express();
  a.set('etag', false);
  setup(a);
  a.get('/patients/:id', (req, res) => res.json({ id: req.params.id }));
  return a;
}

// Fastify serves the same route as the Express apps; app.server is the server the bench listens on (Fastify's
// own listen() is not used: server.mjs listens for every kind alike).
async function fastifyApp(options, setup) {
  const Fastify = require('fastify');
  const app = Fastify(options);
  await setup(app);
  app.get('/patients/:id', async (request) => ({ id: request.params.id }));
  await app.ready();
  return app.server;
}

let log;
async function make() {
  const tls = () => JSON.parse(fs.readFileSync(path.join(dir, 'tls.json'), 'utf8'));
  switch (kind) {
    case 'http':
      return http.createServer(hello);
    case 'ppa-http':
      return withProxyProtocol(http.createServer(hello));
    case 'minimal':
      return minimalReader();
    case 'proxywrap':
      return require('findhit-proxywrap').proxy(http, { strict: true }).createServer(hello);
    case 'https':
      return https.createServer(tls(), hello);
    case 'ppa-https':
      return createServer(tls(), hello);
    case 'minimal-https':
      return minimalTlsReader(tls());
    case 'express':
      return http.createServer(expressApp(() => {}));
    case 'express-morgan': {
      const morgan = require('morgan');
      const stream = fs.createWriteStream(path.join(dir, 'access.log'), { flags: 'a' });
      return http.createServer(expressApp((a) => a.use(morgan('combined', { stream }))));
    }
    case 'express-audit': {
      const { clientIp, auditLog } = require(`${dist}/express/index.js`);
      log = createAuditLog({ filename: path.join(dir, 'audit.jsonl'), service: 'bench' });
      return http.createServer(
        expressApp((a) => {
          a.use(clientIp());
          a.use(auditLog({ log }));
        }),
      );
    }
    case 'express-audit-ship': {
      // The same app as express-audit, shipping its file to PostgreSQL in this process (BENCH_PG: a
      // connection string, BENCH_PG_TABLE), to a file of its own: the other server of a comparison may share
      // the directory.
      const { clientIp, auditLog } = require(`${dist}/express/index.js`);
      log = createAuditLog({
        filename: path.join(dir, 'audit-ship.jsonl'),
        service: 'bench',
        postgres: { connectionString: process.env.BENCH_PG, table: process.env.BENCH_PG_TABLE ?? 'audit_log' },
      });
      return http.createServer(
        expressApp((a) => {
          a.use(clientIp());
          a.use(auditLog({ log }));
        }),
      );
    }
    case 'ppa-https-express-audit': {
      // The whole stack in one process: PROXY header, TLS, Express, the audit (default durability).
      const { auditLog } = require(`${dist}/express/index.js`);
      log = createAuditLog({ filename: path.join(dir, 'audit.jsonl'), service: 'bench' });
      return createServer(
        tls(),
        expressApp((a) => a.use(auditLog({ log, clientIp: true }))),
      );
    }
    case 'express-audit-fsync': {
      // As express-audit, with answers waiting for the disk.
      const { clientIp, auditLog } = require(`${dist}/express/index.js`);
      log = createAuditLog({ filename: path.join(dir, 'audit.jsonl'), service: 'bench', durability: 'fsync' });
      return http.createServer(
        expressApp((a) => {
          a.use(clientIp());
          a.use(auditLog({ log }));
        }),
      );
    }
    case 'express-audit-one-layer': {
      const { auditLog } = require(`${dist}/express/index.js`);
      log = createAuditLog({ filename: path.join(dir, 'audit.jsonl'), service: 'bench' });
      return http.createServer(expressApp((a) => a.use(auditLog({ log, clientIp: true }))));
    }
    case 'fastify':
      return fastifyApp({}, () => {});
    case 'fastify-noop-hook':
      // What one onRequest hook costs by itself (a reference for the audit's own hooks).
      return fastifyApp({}, (app) => app.addHook('onRequest', (_request, _reply, next) => next()));
    case 'fastify-pino':
      // Fastify's built-in request logging (pino, one JSON line per request and per response) to a file.
      return fastifyApp({ logger: { level: 'info', file: path.join(dir, 'fastify.log') } }, () => {});
    case 'fastify-audit': {
      const { clientIp, auditLog } = require(`${dist}/fastify/index.js`);
      log = createAuditLog({ filename: path.join(dir, 'audit.jsonl'), service: 'bench' });
      return fastifyApp({}, (app) => {
        app.register(clientIp);
        app.register(auditLog, { log });
      });
    }
    case 'fastify-audit-one-hook': {
      const { auditLog } = require(`${dist}/fastify/index.js`);
      log = createAuditLog({ filename: path.join(dir, 'audit.jsonl'), service: 'bench' });
      return fastifyApp({}, (app) => app.register(auditLog, { log, clientIp: true }));
    }
    default:
      throw new Error(`unknown server kind ${kind}`);
  }
}

const server = await make();
// APP_PG=1 (with BENCH_PG): the app keeps its own data in PostgreSQL, as the apps behind this package do: a
// pg pool of its own, used every 200 ms. Node's stream and socket code then serves a database connection
// besides the HTTP ones in any case (bench/store-app.mjs compares shipping against the file only with it).
let appPool;
if (process.env.APP_PG === '1') {
  const pg = require('pg');
  appPool = new pg.Pool({ connectionString: process.env.BENCH_PG, max: 1 });
  await appPool.query('SELECT 1');
  setInterval(() => appPool.query('SELECT 1').catch(() => {}), 200).unref();
}
server.listen(0, '127.0.0.1');
await once(server, 'listening');
process.send({ port: server.address().port });
process.on('message', async (m) => {
  if (m === 'cpu') {
    process.send({ cpu: process.cpuUsage() });
  } else if (m === 'close') {
    server.close();
    server.closeAllConnections?.();
    if (log) await log.close();
    await appPool?.end();
    process.send({ closed: true });
    process.disconnect();
  }
});
