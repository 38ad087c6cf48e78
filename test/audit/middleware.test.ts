import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import tls from 'node:tls';
import Router from '@koa/router';
import express from 'express';
import Koa from 'koa';
import TransportStream from 'winston-transport';
import { auditLog as expressAudit, clientIp as expressClientIp } from '../../src/express/index.js';
import {
  type AuditFields,
  auditRequests,
  createAuditLog,
  createServer,
  encodeProxyHeader,
  formatElbLine,
  verifyAuditLog,
  withProxyProtocol,
} from '../../src/index.js';
import { auditLog as koaAudit, clientIp as koaClientIp } from '../../src/koa/index.js';
import { certificate, close, raw, sleep } from '../helpers.js';
import { type Entry, entries, requests, tmpFile } from './util.js';

const PLANTED = ['John', 'Doe', '123-45-6789', 'Bearer-SECRET-TOKEN', 'session=COOKIE-VALUE', 'SETCOOKIE-VALUE', 'BODY-SSN-987'];
const request = (path: string, extra = '', body = '') =>
  `POST ${path} HTTP/1.1\r\nHost: ehr.example:8443\r\nUser-Agent: audit-test/1.0\r\nAuthorization: Bearer-SECRET-TOKEN\r\nCookie: session=COOKIE-VALUE\r\nX-Forwarded-For: 6.6.6.6\r\nContent-Length: ${body.length}\r\nConnection: close\r\n${extra}\r\n${body}`;

async function listening(server: Server): Promise<number> {
  if (!server.listening) await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

describe('Express auditLog', () => {
  const file = tmpFile();
  const log = createAuditLog({ filename: file, service: 'ehr-api', accessLog: `${file}.access` });
  const app = express();
  app.set('env', 'test'); // the deliberate 500 below is not printed by Express
  app.use(expressClientIp());
  app.use(expressAudit({ log, user: (req) => req.get('x-test-user'), queryKeys: true, skip: (req) => req.path === '/health' }));
  app.post('/patients/:id', (_req, res) => {
    res.setHeader('Set-Cookie', 'x=SETCOOKIE-VALUE');
    res.json({ ok: true });
  });
  app.get('/health', (_req, res) => res.send('ok'));
  app.get('/slow', (_req, res) => setTimeout(() => res.end('late'), 300));
  app.get('/throw', () => {
    throw new Error('boom');
  });
  const server = withProxyProtocol(app.listen(0, '127.0.0.1'));
  log.watch(server);
  after(() => close(server));

  it('one entry per request with every field, PHI-free', async () => {
    const port = await listening(server);
    const header = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 8443\r\n';
    await raw(port, [
      header +
        request(
          '/patients/12?name=John&last=Doe&ssn=123-45-6789',
          'X-Test-User: u-17\r\nX-Request-Id: req-abc.1\r\n',
          '{"ssn":"BODY-SSN-987"}',
        ),
    ]);
    await raw(port, [`${header}GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    await raw(port, [`${header}GET /throw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    await raw(port, ['GET / HTTP/1.1\r\n\r\n']); // rejected: no header
    await server.close();
    await log.close();

    const all = entries(file);
    const reqs = requests(file);
    assert.equal(reqs.length, 2, 'health check skipped');
    const e = reqs[0] as Entry;
    assert.match(e['@timestamp'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(e.event.kind, 'event');
    assert.equal(e.event.category, 'web');
    assert.equal(e.event.outcome, 'success');
    assert.ok(Number.isInteger(e.event.duration) && e.event.duration > 0);
    assert.deepEqual(e.client, { ip: '203.0.113.7', port: 51000 });
    assert.equal(e.network.peer.address, '127.0.0.1');
    assert.ok(e.network.peer.port > 0);
    assert.equal(e.http.request.method, 'POST');
    assert.equal(e.http.request.id, 'req-abc.1');
    assert.equal(e.http.route, '/patients/:id');
    assert.equal(e.http.response.status_code, 200);
    assert.equal(e.http.response.body.bytes, 11);
    assert.equal(e.url.path, '/patients/12');
    assert.equal(e.url.query, 'last&name&ssn');
    assert.equal(e.url.domain, 'ehr.example');
    assert.equal(e.user_agent.original, 'audit-test/1.0');
    assert.equal(e.user.id, 'u-17');
    assert.equal(e.service.name, 'ehr-api');
    assert.equal(typeof e.host.name, 'string');
    assert.equal(e.tls, undefined);
    const failed = reqs[1] as Entry;
    assert.equal(failed.http.response.status_code, 500);
    assert.equal(failed.event.outcome, 'failure');
    const rejected = all.find((x) => x.event.action === 'connection-rejected');
    assert.equal(rejected?.error.code, 'ERR_PROXY_MISSING');
    assert.equal(rejected?.event.category, 'network');
    assert.equal(rejected?.network.peer.address, '127.0.0.1');
    // Sequences are gap-free and the chain verifies.
    assert.deepEqual(
      all.map((x) => x.event.sequence),
      all.map((_, i) => i + 1),
    );
    const v = await verifyAuditLog(file);
    assert.deepEqual(
      { verdict: v.verdict, ok: v.ok, entries: v.entries, chains: v.chains, checkpoints: v.checkpoints },
      { verdict: 'intact', ok: true, entries: all.length, chains: 1, checkpoints: 0 },
    );
    const text = readFileSync(file, 'utf8') + readFileSync(`${file}.access`, 'utf8');
    for (const p of PLANTED) assert.ok(!text.includes(p), `${p} leaked into the audit log`);
    assert.ok(!/authorization|cookie/i.test(text));
    const access = readFileSync(`${file}.access`, 'utf8').trim().split('\n');
    assert.match(
      access[0] as string,
      /^ehr\.example 203\.0\.113\.7 - u-17 \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "POST \/patients\/12 HTTP\/1\.1" 200 11 "-" "audit-test\/1\.0" "203\.0\.113\.7" \d+\.\d{3}$/,
    );
  });

  it('aborted requests get an entry too', async () => {
    const f = tmpFile();
    const l = createAuditLog({ filename: f });
    const a = express();
    a.use(expressAudit({ log: l }));
    a.get('/slow', (_req, res) => setTimeout(() => res.end('late'), 300));
    const s = withProxyProtocol(a.listen(0, '127.0.0.1'));
    const port = await listening(s);
    await raw(port, ['PROXY TCP4 198.51.100.1 10.0.0.5 40000 443\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n'], { timeout: 50 });
    await sleep(100);
    await close(s);
    await l.close();
    const [e] = requests(f);
    assert.equal(e?.event.outcome, 'failure');
    assert.equal(e?.error.type, 'client_aborted');
    assert.equal(e?.client.ip, '198.51.100.1');
    // The balancer's address is read when the request starts: the socket is gone when the entry is written.
    assert.equal(e?.network.peer.address, '127.0.0.1');
    assert.ok(e?.network.peer.port > 0);
    assert.equal(e?.http.response, undefined);
  });

  it('a request whose connection closed before auditLog ran (an async middleware first) is written at once, as aborted', async () => {
    const f = tmpFile();
    const l = createAuditLog({ filename: f });
    const a = express();
    a.use((_req, _res, next) => setTimeout(next, 150)); // e.g. an authentication lookup
    a.use(expressAudit({ log: l }));
    a.get('/', (_req, res) => res.end('x'));
    const proxied = withProxyProtocol(a.listen(0, '127.0.0.1'));
    const plain = a.listen(0, '127.0.0.1'); // no PROXY layer: the address is the socket's
    // Both connections are gone long before the 150 ms.
    await raw(await listening(proxied), ['PROXY TCP4 198.51.100.2 10.0.0.5 40000 443\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n'], {
      timeout: 20,
    });
    await raw(await listening(plain), ['GET / HTTP/1.1\r\nHost: x\r\n\r\n'], { timeout: 20 });
    const until = Date.now() + 2000;
    while (l.stats.entries < 3 && Date.now() < until) await sleep(20);
    assert.equal(l.stats.inFlight, 0, 'not left open until close()');
    await close(proxied);
    await close(plain);
    await l.close({ timeout: 500 }); // a regression fails here fast instead of waiting 30 s
    const [viaProxy, direct] = requests(f);
    for (const e of [viaProxy, direct]) {
      assert.equal(e?.error?.type, 'client_aborted', JSON.stringify(e));
      assert.equal(e?.event.outcome, 'failure');
    }
    assert.equal(viaProxy?.client.ip, '198.51.100.2');
    // The balancer's address is read from the socket when first asked for, here after it closed: unknown.
    assert.equal(viaProxy?.network, undefined);
    // Node forgets the address of a closed socket: unknown, so left out, never written as "".
    assert.equal(direct?.client, undefined);
    assert.equal(direct?.network, undefined);
  });

  it('the entry records the address clientIp() decided: an X-Forwarded-For hop behind a trusted layer-7 proxy', async () => {
    const f = tmpFile();
    const l = createAuditLog({ filename: f });
    const a = express();
    a.use(expressClientIp({ trustForwardedFrom: ['203.0.113.0/24'] }));
    a.use(expressAudit({ log: l }));
    a.get('/', (req, res) => res.end(req.clientIp));
    const s = withProxyProtocol(a.listen(0, '127.0.0.1'));
    const port = await listening(s);
    const hdr = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n';
    const get = (xff: string) => `GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${xff}\r\n`;
    await raw(port, [`${hdr}${get('X-Forwarded-For: 198.51.100.20\r\n')}`]);
    await raw(port, [`${hdr}${get('')}`]);
    await close(s);
    await l.close();
    const [viaHop, direct] = requests(f);
    assert.equal(viaHop?.client.ip, '198.51.100.20');
    assert.equal(viaHop?.client.port, undefined);
    assert.equal(direct?.client.ip, '203.0.113.7');
    assert.equal(direct?.client.port, 51000);
    assert.equal(direct?.network.peer.address, '127.0.0.1');
  });

  it('auditLog({ clientIp }) does what clientIp() does, in the same middleware', async () => {
    const f = tmpFile();
    const l = createAuditLog({ filename: f });
    const a = express();
    a.use(expressAudit({ log: l, clientIp: { trustForwardedFrom: ['203.0.113.0/24'] } }));
    a.get('/', (req, res) => res.json({ ip: req.clientIp, port: req.clientPort ?? null, xff: req.get('x-forwarded-for') }));
    const s = withProxyProtocol(a.listen(0, '127.0.0.1'));
    const port = await listening(s);
    const hdr = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n';
    const get = (xff: string) => `GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${xff}\r\n`;
    const hop = await raw(port, [`${hdr}${get('X-Forwarded-For: 198.51.100.20\r\n')}`]);
    const direct = await raw(port, [`${hdr}${get('X-Real-IP: 6.6.6.6\r\n')}`]);
    await close(s);
    await l.close();
    const body = (d: Buffer) => JSON.parse(d.toString().split('\r\n\r\n')[1] ?? 'null');
    assert.deepEqual(body(hop.data), { ip: '198.51.100.20', port: null, xff: '198.51.100.20' });
    assert.deepEqual(body(direct.data), { ip: '203.0.113.7', port: 51000, xff: '203.0.113.7' });
    const [e1, e2] = requests(f);
    assert.equal(e1?.client.ip, '198.51.100.20');
    assert.equal(e2?.client.ip, '203.0.113.7');
    assert.equal(e2?.client.port, 51000);
    assert.throws(() => expressAudit({ log: l, clientIp: 'yes' as never }), TypeError);
  });

  it('echoRequestId sets the id on the response; by default no header is added', async () => {
    const f = tmpFile();
    const l = createAuditLog({ filename: f });
    const a = express();
    a.get('/plain', expressAudit({ log: l }), (_req, res) => res.end('x'));
    a.get('/echo', expressAudit({ log: l, echoRequestId: true }), (_req, res) => res.end('x'));
    const s = a.listen(0, '127.0.0.1');
    const port = await listening(s);
    const plain = await raw(port, ['GET /plain HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-1\r\nConnection: close\r\n\r\n']);
    const echo = await raw(port, ['GET /echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-2\r\nConnection: close\r\n\r\n']);
    await close(s);
    await l.close();
    assert.doesNotMatch(plain.data.toString(), /x-request-id/i);
    assert.match(echo.data.toString(), /x-request-id: abc-2\r\n/i);
    assert.deepEqual(
      requests(f).map((e) => e.http.request.id),
      ['abc-1', 'abc-2'],
    );
  });

  it('echoRequestId of a middleware inside auditRequests: the header is set, and the entry carries that id', async () => {
    const f = tmpFile();
    const l = createAuditLog({ filename: f });
    const a = express();
    a.use(expressAudit({ log: l, echoRequestId: true, user: () => 'u1' }));
    a.get('/x', (_req, res) => res.end('x'));
    const s = withProxyProtocol(a.listen(0, '127.0.0.1'));
    auditRequests(s, { log: l });
    const port = await listening(s);
    const PP = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n';
    const given = await raw(port, [`${PP}GET /x HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-3\r\nConnection: close\r\n\r\n`]);
    const made = await raw(port, [`${PP}GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    await close(s);
    await l.close();
    assert.match(given.data.toString(), /x-request-id: abc-3\r\n/i);
    const echoed = /x-request-id: ([0-9a-f-]{36})\r\n/i.exec(made.data.toString())?.[1];
    assert.ok(echoed, 'a generated id is set on the response');
    assert.deepEqual(
      requests(f).map((e) => [e.http.request.id, e.user?.id]),
      [
        ['abc-3', 'u1'],
        [echoed, 'u1'],
      ],
    );
  });

  it('generated request ids: random UUIDs v4, never repeated, and the same id wherever it is read', async () => {
    const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const f = tmpFile();
    const l = createAuditLog({ filename: f });
    const a = express();
    a.get('/plain', expressAudit({ log: l }), (_req, res) => res.end('x'));
    a.get('/echo', expressAudit({ log: l, echoRequestId: true }), (_req, res) => res.end('x'));
    a.get('/no-header', expressAudit({ log: l, requestIdHeader: false }), (_req, res) => res.end('x'));
    const s = a.listen(0, '127.0.0.1');
    const port = await listening(s);
    // 600 pipelined requests on one connection: more ids than one draw of random bytes holds (256).
    const n = 600;
    const pipelined = Array.from(
      { length: n },
      (_, i) => `GET /plain HTTP/1.1\r\nHost: x${i === n - 1 ? '\r\nConnection: close' : ''}\r\n\r\n`,
    );
    await raw(port, [pipelined.join('')], { timeout: 10_000 });
    const echo = await raw(port, ['GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await raw(port, ['GET /no-header HTTP/1.1\r\nHost: x\r\nX-Request-Id: client-chosen\r\nConnection: close\r\n\r\n']);
    // With an 'entry' listener the fields are read back: they carry the id the line has.
    const seen: [string, string | undefined][] = [];
    l.on('entry', (line: string, fields: AuditFields) => seen.push([JSON.parse(line).http?.request?.id, fields.requestId]));
    await raw(port, ['GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await close(s);
    await l.close();
    const ids = requests(f).map((e) => e.http.request.id as string);
    assert.equal(ids.length, n + 3);
    for (const id of ids) assert.match(id, UUID4);
    assert.equal(new Set(ids).size, ids.length, 'no id repeats');
    const echoed = /x-request-id: (\S+)\r\n/i.exec(echo.data.toString())?.[1];
    assert.equal(echoed, ids[n], 'the echoed id is the logged one');
    assert.notEqual(ids[n + 1], 'client-chosen', 'requestIdHeader: false ignores the header');
    const last = seen.find(([id]) => id !== undefined);
    assert.ok(last);
    assert.equal(last[1], last[0]);
    assert.equal(last[0], ids[n + 2]);
    assert.equal((await verifyAuditLog(f)).ok, true);
  });

  it('a generated request id reaches winston transports in the line and in the fields', async () => {
    const f = tmpFile();
    const got: { line: string; id: string | undefined }[] = [];
    const memory = new (class extends TransportStream {
      override log(info: Record<string | symbol, unknown>, callback: () => void): void {
        got.push({ line: info[Symbol.for('message')] as string, id: (info.fields as AuditFields).requestId });
        callback();
      }
    })();
    const l = createAuditLog({ filename: f, transports: [memory] });
    const a = express();
    a.use(expressAudit({ log: l }));
    a.get('/', (_req, res) => res.end('x'));
    const s = a.listen(0, '127.0.0.1');
    await raw(await listening(s), ['GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await close(s);
    await l.close();
    const request = got.find((g) => g.line.includes('"http-request"'));
    assert.ok(request);
    const id = JSON.parse(request.line).http.request.id;
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(request.id, id);
    assert.equal(requests(f)[0]?.http.request.id, id);
  });

  it('a throwing user() costs a field, never the entry', async () => {
    const f = tmpFile();
    const l = createAuditLog({ filename: f });
    const a = express();
    a.use(
      expressAudit({
        log: l,
        user: () => {
          throw new Error('no');
        },
      }),
    );
    a.get('/', (_req, res) => res.end('x'));
    const s = a.listen(0, '127.0.0.1');
    const port = await listening(s);
    await raw(port, ['GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    await close(s);
    await l.close();
    const [e] = requests(f);
    assert.equal(e?.http.response.status_code, 200);
    assert.equal(e?.user, undefined);
    assert.equal(e?.client.ip, '127.0.0.1');
  });

  it("Express's error-handler guard after a route that answered and failed: as without the audit (headersSent is true)", async () => {
    const guarded = (audited: boolean) => {
      const a = express();
      a.set('env', 'test');
      const elog = createAuditLog({ filename: tmpFile() });
      if (audited) a.use(expressAudit({ log: elog }));
      a.get('/a', (_req, res, next) => {
        res.json({ hello: 'world' });
        next(new Error('bookkeeping after the answer failed'));
      });
      a.get('/b', (_req, res) => res.send('second response'));
      // https://expressjs.com/en/guide/error-handling.html
      a.use((err: Error, _req: express.Request, res: express.Response, next: express.NextFunction) => {
        if (res.headersSent) return next(err);
        res.status(500).json({ error: 'internal' });
      });
      return { server: withProxyProtocol(a.listen(0, '127.0.0.1')), elog };
    };
    const texts: string[] = [];
    for (const audited of [true, false]) {
      const { server, elog } = guarded(audited);
      const port = await listening(server);
      const { data } = await raw(
        port,
        [`PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n`],
        { until: 'second response' },
      );
      texts.push(data.toString().replace(/Date: [^\r]*\r\n|ETag: [^\r]*\r\n/g, ''));
      await close(server);
      await elog.close();
    }
    assert.match(
      texts[1] as string,
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 17\r\n[\s\S]*\r\n\r\n\{"hello":"world"\}HTTP\/1\.1 200 OK\r\n/,
    );
    assert.match(texts[1] as string, /\r\n\r\nsecond response$/);
    assert.equal(texts[0], texts[1]);
  });

  it('rejects bad options at setup', () => {
    assert.throws(() => expressAudit({} as never), TypeError);
    const l = createAuditLog({ filename: tmpFile() });
    assert.throws(() => expressAudit({ log: l, path: 'nope' as never }), TypeError);
    assert.throws(() => createAuditLog({} as never), TypeError);
    assert.throws(() => createAuditLog({ filename: tmpFile(), onSinkError: 'maybe' as never }), TypeError);
    void l.close();
  });
});

describe('Koa auditLog({ clientIp: true })', () => {
  it('sets ctx.clientIp in the same middleware and records it', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = new Koa();
    app.use(koaAudit({ log, clientIp: true }));
    app.use((ctx) => {
      ctx.body = { ip: ctx.clientIp, request: ctx.request.clientIp, xff: ctx.get('x-forwarded-for') };
    });
    const server = withProxyProtocol(app.listen(0, '127.0.0.1'));
    const port = await listening(server);
    const { data } = await raw(port, [
      'PROXY TCP4 192.0.2.44 10.0.0.5 40001 80\r\nGET /x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n',
    ]);
    await close(server);
    await log.close();
    assert.deepEqual(JSON.parse(data.toString().split('\r\n\r\n')[1] ?? 'null'), {
      ip: '192.0.2.44',
      request: '192.0.2.44',
      xff: '192.0.2.44',
    });
    const [e] = requests(file);
    assert.equal(e?.client.ip, '192.0.2.44');
    assert.equal(e?.client.port, 40001);
  });
});

describe('Koa auditLog over HTTPS', () => {
  it('records the route, the TLS version and a spoof-proof client', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = new Koa();
    const router = new Router();
    app.use(koaClientIp());
    app.use(koaAudit({ log, path: 'route', user: (ctx) => ctx.state.user }));
    app.use(async (ctx, next) => {
      ctx.state.user = 'nurse-4';
      await next();
    });
    router.get('/records/:mrn', (ctx) => {
      ctx.body = { ip: ctx.clientIp };
    });
    app.use(router.routes());
    const server = createServer({ ...(await certificate()) }, app.callback());
    server.listen(0, '127.0.0.1');
    const port = await listening(server);
    const header = encodeProxyHeader({
      version: 2,
      source: { address: '2001:db8::42', port: 61000 },
      destination: { address: '2001:db8::1', port: 443 },
    });
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(header);
    const body = await new Promise<string>((resolve, reject) => {
      const req = https.get(
        {
          path: '/records/MRN-000123?q=Smith',
          headers: { 'x-forwarded-for': '6.6.6.6' },
          createConnection: () => tls.connect({ socket, rejectUnauthorized: false }),
        },
        (res) => {
          let b = '';
          res.on('data', (d) => (b += d));
          res.on('end', () => resolve(b));
        },
      );
      req.on('error', reject);
    });
    assert.deepEqual(JSON.parse(body), { ip: '2001:db8::42' });
    await close(server);
    await log.close();
    const [e] = requests(file);
    assert.equal(e?.url.path, '/records/:mrn', 'path: route logs the template, not the MRN');
    assert.equal(e?.http.route, '/records/:mrn');
    assert.ok(!readFileSync(file, 'utf8').includes('MRN-000123'));
    assert.ok(!readFileSync(file, 'utf8').includes('Smith'));
    assert.deepEqual(e?.client, { ip: '2001:db8::42', port: 61000 });
    assert.match(e?.tls.version, /^1\.[23]$/);
    assert.equal(e?.user.id, 'nurse-4');
    assert.equal(e?.http.response.status_code, 200);
  });
});

it('formatElbLine writes no query and escapes quotes', () => {
  const line = formatElbLine({
    timestamp: Date.UTC(2026, 10, 24, 1, 2, 3),
    category: 'web',
    action: 'http-request',
    outcome: 'success',
    method: 'GET',
    path: '/a',
    status: 204,
    bytes: 0,
    clientIp: '192.0.2.1',
    domain: 'h',
    userAgent: 'x"y',
    duration: 4_600_000,
  });
  assert.equal(line, 'h 192.0.2.1 - - [24/Nov/2026:01:02:03 +0000] "GET /a HTTP/1.1" 204 0 "-" "x\\x22y" "192.0.2.1" 0.005');
  assert.equal(formatElbLine({ category: 'network', action: 'connection-rejected', outcome: 'failure' }), undefined);
});

describe('an audit mounted under a path', () => {
  const HEADER = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n';
  const get = (path: string) => `${HEADER}GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;

  it('Express: app.use(path, auditLog()) and a router records the path the client requested', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = express();
    app.use('/api', expressAudit({ log, clientIp: true }));
    app.get('/api/patients/:id', (_req, res) => res.send('x'));
    const router = express.Router();
    router.use(expressAudit({ log }));
    router.get('/records/:id', (_req, res) => res.send('y'));
    app.use('/sub', router);
    const server = withProxyProtocol(app.listen(0, '127.0.0.1'));
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    await raw(port, [get('/api/patients/42?ssn=1')]);
    await raw(port, [get('/sub/records/7')]);
    await close(server);
    await log.close();
    assert.deepEqual(
      requests(file).map((e) => [e.url.path, e.http.route]),
      [
        ['/api/patients/42', '/api/patients/:id'],
        ['/sub/records/7', '/sub/records/:id'],
      ],
    );
  });

  it('Koa: behind a middleware that strips a mount prefix (as koa-mount does), the path the client requested', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = new Koa();
    app.use(async (ctx, next) => {
      if (ctx.path.startsWith('/api/')) ctx.path = ctx.path.slice(4);
      await next();
    });
    app.use(koaAudit({ log }));
    app.use((ctx) => {
      ctx.body = ctx.path;
    });
    const server = withProxyProtocol(app.listen(0, '127.0.0.1'));
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    const { data } = await raw(port, [get('/api/patients/42')]);
    assert.match(data.toString(), /\r\n\r\n\/patients\/42$/, 'the app saw the stripped path');
    await close(server);
    await log.close();
    assert.deepEqual(
      requests(file).map((e) => e.url.path),
      ['/api/patients/42'],
    );
  });
});
