import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import { auditLog, clientIp } from '../../src/fastify/index.js';
import { auditRequests, createAuditLog, verifyAuditLog, withProxyProtocol } from '../../src/index.js';
import { entries, requests, tmpFile } from '../audit/util.js';
import { certificate, raw, sleep } from '../helpers.js';

const HEADER = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n';
const SPOOF = 'X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\n';
const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: ehr.example\r\nConnection: close\r\n${extra}\r\n`;
const json = (d: Buffer) => JSON.parse(d.toString().split('\r\n\r\n')[1] ?? 'null');

async function start(app: {
  server: net.Server | http2.Http2SecureServer;
  listen(o: { port: number; host: string }): Promise<string>;
}) {
  withProxyProtocol(app.server);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as net.AddressInfo).port;
}

// biome-ignore lint/suspicious/noExplicitAny: HTTP/1 and HTTP/2 Fastify instances alike
function whoami(app: FastifyInstance<any, any, any>) {
  app.get('/whoami', async (request) => ({
    clientIp: request.clientIp,
    clientPort: request.clientPort ?? null,
    ip: request.ip,
    xff: request.headers['x-forwarded-for'] ?? null,
    cip: request.headers['x-client-ip'] ?? null,
  }));
}

describe('Fastify clientIp plugin', () => {
  const cases = [
    {
      name: 'from the PROXY header; spoofed headers replaced; request.ip agrees',
      header: HEADER,
      options: {},
      extra: SPOOF,
      expected: { clientIp: '203.0.113.7', clientPort: 51000, ip: '203.0.113.7', xff: '203.0.113.7', cip: null },
    },
    {
      name: 'IPv4-mapped IPv6 from a TCP6 header is reported as IPv4, by request.ip too',
      header: 'PROXY TCP6 ::ffff:cb00:7107 ::1 51000 443\r\n',
      options: {},
      extra: '',
      expected: { clientIp: '203.0.113.7', clientPort: 51000, ip: '203.0.113.7', xff: '203.0.113.7', cip: null },
    },
    {
      name: 'a trusted layer-7 hop is walked past through X-Forwarded-For (no port)',
      header: HEADER,
      options: { trustForwardedFrom: ['203.0.113.0/24'] },
      extra: 'X-Forwarded-For: 6.6.6.6, 198.51.100.20\r\n',
      expected: { clientIp: '198.51.100.20', clientPort: null, ip: '198.51.100.20', xff: '198.51.100.20', cip: null },
    },
    {
      name: "forwardedFor: 'preserve' leaves the headers alone",
      header: HEADER,
      options: { forwardedFor: 'preserve' as const },
      extra: SPOOF,
      expected: { clientIp: '203.0.113.7', clientPort: 51000, ip: '203.0.113.7', xff: '6.6.6.6', cip: '6.6.6.6' },
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const app = Fastify();
      app.register(clientIp, c.options);
      // Routes of a child context see it too: the plugin applies to the whole app.
      app.register(async (child) => whoami(child));
      const port = await start(app);
      const { data } = await raw(port, [`${c.header}${get('/whoami', c.extra)}`]);
      await app.close();
      assert.deepEqual(json(data), c.expected);
    });
  }

  it("with Fastify's trustProxy, request.ip is Fastify's own (proxy-addr over the rewritten header)", async () => {
    const app = Fastify({ trustProxy: true });
    app.register(clientIp);
    whoami(app);
    const port = await start(app);
    const { data } = await raw(port, [`${HEADER}${get('/whoami', SPOOF)}`]);
    await app.close();
    assert.equal(json(data).clientIp, '203.0.113.7');
    assert.equal(json(data).ip, '203.0.113.7');
  });

  it("register()'s own options (logLevel) pass; a mistyped option of the plugin is a TypeError at ready()", async () => {
    const ok = Fastify();
    ok.register(clientIp, { forwardedFor: 'replace', logLevel: 'warn' } as never);
    whoami(ok);
    const port = await start(ok);
    const { data } = await raw(port, [`${HEADER}${get('/whoami', SPOOF)}`]);
    await ok.close();
    assert.equal(json(data).clientIp, '203.0.113.7');
    const bad = Fastify();
    bad.register(clientIp, { forwardFor: 'preserve' } as never);
    await assert.rejects(async () => {
      await bad.ready();
    }, /clientIp: unknown option "forwardFor" \(did you mean forwardedFor\?\)/);
  });

  it('assigning request.clientIp works (last writer wins)', async () => {
    const app = Fastify();
    app.register(clientIp);
    app.get('/assign', async (request) => {
      request.clientIp = '192.0.2.99';
      return { ip: request.clientIp, port: request.clientPort ?? null, fastifyIp: request.ip };
    });
    const port = await start(app);
    const { data } = await raw(port, [`${HEADER}${get('/assign')}`]);
    await app.close();
    assert.deepEqual(json(data), { ip: '192.0.2.99', port: 51000, fastifyIp: '192.0.2.99' });
  });
});

describe('Fastify auditLog plugin', () => {
  for (const order of ['auditRequests first', 'auditRequests after the plugin']) {
    it(`beside auditRequests on app.server (${order}): one entry per request, made by the plugin, also for answers Fastify makes before any hook`, async () => {
      const file = tmpFile();
      const log = createAuditLog({ filename: file });
      const app = Fastify({ maxParamLength: 5 });
      if (order === 'auditRequests first') auditRequests(app.server, { log });
      app.register(auditLog, { log, path: 'route' });
      app.get('/r/:id', async () => 'ok');
      await app.ready();
      if (order !== 'auditRequests first') auditRequests(app.server, { log });
      const port = await start(app);
      for (const path of ['/r/1', '/r/123456789', '/nope']) {
        const { data } = await raw(port, [`${HEADER}${get(path)}`]);
        assert.match(data.toString(), /^HTTP\/1\.1 (200|414|404)/);
      }
      await app.close();
      await log.close();
      assert.deepEqual(
        requests(file).map((e) => [e.url.path, e.http.response.status_code]),
        [
          ['/r/:id', 200], // (the plugin's `path: 'route'`: the later audit makes the entry)
          ['/r/123456789', 414],
          ['/nope', 404],
        ],
      );
    });
  }

  it('one entry per request of the whole app: route template, user, status, bytes; 404s; skip', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = Fastify();
    app.get('/before/:id', async () => ({ ok: true })); // declared before the plugin: audited all the same
    app.register(clientIp);
    app.register(auditLog, {
      log,
      path: 'route',
      queryKeys: true,
      user: (request) => request.headers['x-user'] as string | undefined,
      skip: (request) => request.url === '/health',
    });
    app.register(
      async (child) => {
        child.get('/patients/:id', async (request) => ({ id: (request.params as { id: string }).id }));
      },
      { prefix: '/v1' },
    );
    app.get('/health', async () => 'ok');
    const port = await start(app);
    const { data } = await raw(port, [`${HEADER}${get('/v1/patients/42?name=Jane', `X-User: dr-1\r\n${SPOOF}`)}`]);
    assert.deepEqual(json(data), { id: '42' });
    await raw(port, [`${HEADER}${get('/before/1')}`]);
    await raw(port, [`${HEADER}${get('/nope')}`]);
    await raw(port, [`${HEADER}${get('/health')}`]);
    await app.close();
    await log.close();
    const list = requests(file);
    assert.deepEqual(
      list.map((e) => [e.url.path, e.http.route ?? null, e.http.response.status_code]),
      [
        ['/v1/patients/:id', '/v1/patients/:id', 200],
        ['/before/:id', '/before/:id', 200],
        ['/nope', null, 404],
      ],
    );
    const [e] = list;
    assert.deepEqual(e?.client, { ip: '203.0.113.7', port: 51000 });
    assert.equal(e?.network.peer.address, '127.0.0.1');
    assert.equal(e?.url.query, 'name');
    assert.equal(e?.user.id, 'dr-1');
    assert.equal(e?.http.response.body.bytes, 11);
    assert.equal(e?.event.outcome, 'success');
    assert.equal(list[2]?.event.outcome, 'failure');
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('the reply waits for its entry; an aborted request is written when the connection closes', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = Fastify();
    app.register(auditLog, { log, clientIp: true });
    app.get('/slow', async () => {
      await sleep(300);
      return 'late';
    });
    app.get('/now', async () => 'now');
    const port = await start(app);
    const { readFileSync } = await import('node:fs');
    let inFile = false;
    await raw(port, [`${HEADER}${get('/now', 'X-Request-Id: fast-1\r\n')}`], {
      until: (d) => {
        if (d.includes('now')) inFile = readFileSync(file, 'utf8').includes('"id":"fast-1"');
        return d.includes('now');
      },
    });
    assert.equal(inFile, true, 'the line was in the file when the answer arrived');
    await raw(port, [`${HEADER}${get('/slow')}`], { timeout: 50 });
    await sleep(400);
    await app.close();
    await log.close();
    const slow = requests(file).find((e) => e.url.path === '/slow');
    assert.equal(slow?.error.type, 'client_aborted');
    assert.equal(slow?.client.ip, '203.0.113.7');
  });

  it('while a reply waits for its entry it reads as sent: a hook that answered without `return reply`, a double send, as without the audit', async () => {
    for (const audited of [false, true]) {
      const file = tmpFile();
      const log = createAuditLog({ filename: file });
      const app = Fastify();
      if (audited) app.register(auditLog, { log, clientIp: true });
      let deleted = 0;
      app.register(async (scope) => {
        // Fastify's docs ask for `return reply`; plain Fastify also skips the handler without it.
        scope.addHook('onRequest', async (request, reply) => {
          if (request.headers.authorization === undefined) reply.code(401).send({ error: 'unauthorized' });
        });
        scope.delete('/patients/:id', async () => {
          deleted++;
          return { deleted: true };
        });
      });
      app.get('/double', async (_request, reply) => {
        reply.send('first');
        return 'second';
      });
      const port = await start(app);
      const a = await raw(port, [`${HEADER}DELETE /patients/42 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
      assert.match(a.data.toString(), /^HTTP\/1\.1 401/, `audited: ${audited}`);
      assert.match(a.data.toString(), /unauthorized/);
      assert.equal(deleted, 0, `the handler did not run (audited: ${audited})`);
      const b = await raw(port, [`${HEADER}${get('/double')}`]);
      assert.match(b.data.toString(), /^HTTP\/1\.1 200/);
      assert.match(b.data.toString(), /\r\n\r\nfirst$/);
      await app.close();
      await log.close();
      if (audited) {
        assert.deepEqual(
          requests(file).map((e) => [e.url.path, e.http.response.status_code]),
          [
            ['/patients/42', 401],
            ['/double', 200],
          ],
        );
        assert.deepEqual(
          entries(file)
            .map((e) => e.event.action)
            .filter((x) => x !== 'http-request' && !x.startsWith('audit-log-')),
          [],
          'no rejected entries',
        );
      }
    }
  });

  it('requests Fastify answers before any hook (a bad URL, a parameter too long, a 503 once app.close() began) get their entry', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = Fastify({ maxParamLength: 10 });
    app.register(auditLog, { log, user: () => 'dr-1' });
    app.get('/patients/:id', async (request) => ({ id: (request.params as { id: string }).id }));
    app.get('/slow', async () => {
      await sleep(300);
      return 'slow';
    });
    const port = await start(app);
    const bad = await raw(port, [`${HEADER}${get('/patients/%zz')}`]);
    assert.match(bad.data.toString(), /^HTTP\/1\.1 400/);
    const long = await raw(port, [`${HEADER}${get('/patients/12345678901234567890')}`]);
    assert.match(long.data.toString(), /^HTTP\/1\.1 414/);
    const ok = await raw(port, [`${HEADER}${get('/patients/7')}`]);
    assert.match(ok.data.toString(), /^HTTP\/1\.1 200/);
    // A keep-alive connection busy with /slow when app.close() begins; its next request comes meanwhile.
    const c = net.connect(port, '127.0.0.1');
    await once(c, 'connect');
    let got = '';
    c.on('data', (d) => (got += d.toString()));
    c.write(`${HEADER}GET /slow HTTP/1.1\r\nHost: x\r\n\r\n`);
    await sleep(50);
    const closed = app.close();
    await sleep(50);
    c.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\n');
    await Promise.race([once(c, 'close'), sleep(3000)]);
    c.destroy();
    await closed;
    await log.close();
    assert.match(got, /^HTTP\/1\.1 200[\s\S]*slow[\s\S]*HTTP\/1\.1 503/);
    const list = requests(file).map((e) => [e.url.path, e.http.response.status_code, e.client.ip, e.user?.id]);
    assert.deepEqual(list, [
      ['/patients/%zz', 400, '203.0.113.7', undefined],
      ['/patients/12345678901234567890', 414, '203.0.113.7', undefined],
      ['/patients/7', 200, '203.0.113.7', 'dr-1'],
      // (written when answered: the 503 at once, /slow when its handler is done)
      ['/late', 503, '203.0.113.7', undefined],
      ['/slow', 200, '203.0.113.7', 'dr-1'],
    ]);
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('after close() begins, requests are answered 503 with Connection: close and get their entry', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = Fastify();
    app.register(auditLog, { log });
    let served = 0;
    app.get('/x', async () => {
      served++;
      return 'x';
    });
    const port = await start(app);
    const pending = log.open(); // something still in flight keeps the log closing
    const closing = log.close({ timeout: 200 });
    const { data } = await raw(port, [`${HEADER}${get('/x')}`]);
    assert.match(data.toString(), /^HTTP\/1\.1 503 /);
    assert.match(data.toString(), /connection: close/i);
    assert.equal(served, 0);
    await closing;
    assert.equal(pending.done, true);
    await app.close();
    assert.equal(requests(file)[0]?.error.type, 'shutdown');
  });

  it("log.watch(app.server): Fastify's own 'clientError' listener answers a rejected request once; the entry is still written", async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = Fastify();
    app.get('/', async () => 'ok');
    log.watch(app.server);
    const port = await start(app);
    const cases = [
      {
        name: 'bad header',
        request: 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n',
        status: 400,
        code: 'HPE_INVALID_HEADER_TOKEN',
      },
      {
        name: 'header overflow',
        request: `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
        status: 431,
        code: 'HPE_HEADER_OVERFLOW',
      },
    ];
    for (const c of cases) {
      const { data, closed } = await raw(port, [`${HEADER}${c.request}`]);
      const text = data.toString();
      assert.equal(closed, true, c.name);
      assert.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, `${c.name}: answered exactly once`);
      assert.match(text, new RegExp(`^HTTP/1\\.1 ${c.status} `), c.name);
    }
    await app.close();
    await log.close();
    const rejected = entries(file).filter((e) => e.event.action === 'http-request-rejected');
    assert.deepEqual(
      rejected.map((e) => [e.error.code, e.client.ip, e.client.port, e.http?.response?.status_code]),
      cases.map((c) => [c.code, '203.0.113.7', 51000, undefined]),
      "one entry each, with the client from the PROXY header; Fastify's answer is its own (no status recorded)",
    );
  });

  it('rejects bad options when registered', async () => {
    const log = createAuditLog({ filename: tmpFile() });
    for (const options of [{}, { log, path: 'nope' }, { log, user: 'x' }, { log, clientIp: 'yes' }]) {
      const app = Fastify();
      app.register(auditLog, options as never);
      await assert.rejects(async () => {
        await app.ready();
      }, TypeError);
    }
    await log.close();
  });
});

describe('Fastify over HTTPS and HTTP/2', () => {
  it('https option: TLS after the PROXY header, audited with the TLS version', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = Fastify({ https: await certificate() });
    app.register(clientIp);
    app.register(auditLog, { log, path: 'route' });
    whoami(app);
    const port = await start(app);
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(HEADER);
    const t = tls.connect({ socket, rejectUnauthorized: false });
    await once(t, 'secureConnect');
    t.write(get('/whoami', SPOOF));
    const chunks: Buffer[] = [];
    for await (const d of t) chunks.push(d as Buffer);
    await app.close();
    await log.close();
    assert.equal(json(Buffer.concat(chunks)).clientIp, '203.0.113.7');
    assert.equal(json(Buffer.concat(chunks)).xff, '203.0.113.7');
    const [e] = requests(file);
    assert.match(e?.tls.version, /^1\.[23]$/);
    assert.equal(e?.http.route, '/whoami');
    assert.equal(e?.client.ip, '203.0.113.7');
  });

  it('http2: true (secure): request.clientIp from the header, one entry per stream', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const app = Fastify({ http2: true, https: await certificate() });
    app.register(clientIp);
    app.register(auditLog, { log, path: 'route' });
    whoami(app);
    const port = await start(app);
    const session = http2.connect(`https://localhost:${port}`, {
      createConnection: () => {
        const s = net.connect(port, '127.0.0.1');
        s.write(HEADER);
        return tls.connect({ socket: s, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
      },
    });
    const req = session.request({ ':path': '/whoami', 'x-forwarded-for': '6.6.6.6', 'x-client-ip': '6.6.6.6' });
    let body = '';
    req.on('data', (d) => (body += d));
    await once(req, 'end');
    session.close();
    await app.close();
    await log.close();
    assert.deepEqual(JSON.parse(body), {
      clientIp: '203.0.113.7',
      clientPort: 51000,
      ip: '203.0.113.7',
      xff: '203.0.113.7',
      cip: null,
    });
    const [e] = requests(file);
    assert.equal(e?.http.version, '2.0');
    assert.equal(e?.http.route, '/whoami');
    assert.equal(e?.http.response.status_code, 200);
    assert.equal(e?.client.ip, '203.0.113.7');
  });
});

it('importing proxy-protocol-audit/fastify loads neither Express nor Koa (nor Fastify itself)', () => {
  const entry = join(__dirname, '..', '..', '..', 'dist', 'cjs', 'fastify', 'index.js');
  const loaded = execFileSync(
    process.execPath,
    [
      '-e',
      `require(${JSON.stringify(entry)}); console.log(Object.keys(require.cache).filter((k) => /node_modules[\\\\/](express|koa|fastify)[\\\\/]/.test(k)).length)`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(loaded.trim(), '0');
});
