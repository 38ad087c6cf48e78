// A client that half-closes right after its request (`printf 'GET …' | nc`, `shutdown(SHUT_WR)`, some health
// checkers): Node ends such a connection as soon as it reads the FIN (`httpAllowHalfOpen` is off), so an answer
// whose last bytes wait for their entry must go out before that, or the client gets nothing while the entry
// says 200.
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import { auditLog as expressAudit } from '../../src/express/index.js';
import { auditLog as fastifyAudit } from '../../src/fastify/index.js';
import { auditRequests, createAuditLog, type Durability, verifyAuditLog, withProxyProtocol } from '../../src/index.js';
import { auditLog as koaAudit } from '../../src/koa/index.js';
import { requests, tmpFile } from '../audit/util.js';
import { close, listen, raw } from '../helpers.js';

const HEADER = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n';
const N = 10;

type Make = (log: ReturnType<typeof createAuditLog>) => Promise<http.Server>;

const servers: [string, Make][] = [
  [
    'Express',
    async (log) => {
      const app = express();
      app.use(expressAudit({ log, clientIp: true }));
      app.get('/hc', (_req, res) => res.send('ok'));
      // Answered once Node read the half-close and ended the connection (its own 'end' listener came first).
      app.get('/later', (req, res) => req.socket.once('end', () => process.nextTick(() => res.send('ok'))));
      return withProxyProtocol(http.createServer(app));
    },
  ],
  [
    'Koa',
    async (log) => {
      const app = new Koa();
      app.use(koaAudit({ log, clientIp: true }));
      app.use((ctx) => {
        ctx.body = 'ok';
      });
      return withProxyProtocol(http.createServer(app.callback()));
    },
  ],
  [
    'Fastify',
    async (log) => {
      let server: http.Server | undefined;
      const app = Fastify({
        serverFactory: (handler) => {
          server = withProxyProtocol(http.createServer(handler));
          return server;
        },
      });
      await app.register(fastifyAudit, { log, clientIp: true });
      app.get('/hc', async () => 'ok');
      await app.ready();
      return server as http.Server;
    },
  ],
  [
    'auditRequests on a plain server',
    async (log) => {
      const server = withProxyProtocol(http.createServer((_req, res) => res.end('ok')));
      auditRequests(server, { log });
      return server;
    },
  ],
];

describe('a client that half-closes after its request', () => {
  for (const durability of ['write', 'fsync'] as Durability[]) {
    for (const [name, make] of servers) {
      it(`${name} (durability ${durability}): answered, once entry is written, every time`, async () => {
        const file = tmpFile();
        const log = createAuditLog({ filename: file, durability });
        const server = await make(log);
        const port = await listen(server);
        let answered = 0;
        for (let i = 0; i < N; i++) {
          const { data } = await raw(port, [`${HEADER}GET /hc HTTP/1.1\r\nHost: x\r\n\r\n`], { end: true, timeout: 2000 });
          if (/^HTTP\/1\.1 200 /.test(data.toString()) && data.toString().endsWith('ok')) answered++;
        }
        await close(server);
        await log.close();
        assert.equal(answered, N, 'every half-closing client got its answer');
        const got = requests(file);
        assert.equal(got.length, N, 'one entry per request');
        for (const e of got) {
          assert.equal(e.http?.response?.status_code, 200);
          assert.equal(e.client?.ip, '203.0.113.7');
        }
        assert.equal((await verifyAuditLog(file)).verdict, 'intact');
      });
    }
  }

  it('an answer the app makes after Node read the half-close is lost as without the audit, and written as client_aborted', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = await (servers[0] as [string, Make])[1](log);
    const port = await listen(server);
    const { data } = await raw(port, [`${HEADER}GET /later HTTP/1.1\r\nHost: x\r\n\r\n`], { end: true, timeout: 2000 });
    assert.equal(data.length, 0, 'no answer reached the client');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await close(server);
    await log.close();
    assert.deepEqual(
      requests(file).map((e) => [e.url?.path, e.http?.response?.status_code, e.error?.type]),
      [['/later', undefined, 'client_aborted']],
    );
  });

  it('pipelined requests, then a half-close: every answer, with fsync too', async () => {
    for (const durability of ['write', 'fsync'] as Durability[]) {
      const file = tmpFile();
      const log = createAuditLog({ filename: file, durability });
      const server = await (servers[3] as [string, Make])[1](log);
      const port = await listen(server);
      const three = ['/a', '/b', '/c'].map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
      const { data } = await raw(port, [`${HEADER}${three}`], { end: true, timeout: 2000 });
      await close(server);
      await log.close();
      assert.equal(data.toString().match(/HTTP\/1\.1 200 OK/g)?.length, 3, `${durability}: ${data.toString()}`);
      assert.deepEqual(
        requests(file).map((e) => [e.url?.path, e.http?.response?.status_code]),
        [
          ['/a', 200],
          ['/b', 200],
          ['/c', 200],
        ],
      );
    }
  });

  it('a request whose audit begins after Node ended the connection is written as client_aborted, not as sent', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = express();
    // (the audit runs once Node read the half-close and ended the connection: it saw no request under way)
    app.get(
      '/late',
      (req, _res, next) => req.socket.once('end', () => setImmediate(next)),
      expressAudit({ log }),
      (_req, res) => {
        res.send('ok');
      },
    );
    const server = withProxyProtocol(http.createServer(app));
    const port = await listen(server);
    const { data } = await raw(port, [`${HEADER}GET /late HTTP/1.1\r\nHost: x\r\n\r\n`], { end: true, timeout: 2000 });
    assert.equal(data.length, 0, 'as without the audit, no answer reached the client');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await close(server);
    await log.close();
    const [e, ...more] = requests(file);
    assert.equal(more.length, 0);
    assert.equal(e?.url?.path, '/late');
    assert.equal(e?.error?.type, 'client_aborted');
    assert.equal(e?.http?.response?.status_code, undefined, 'no status claimed: none was sent');
  });
});
