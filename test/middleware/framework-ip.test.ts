// req.ip (Express) and ctx.ip / ctx.request.ip (Koa) equal the decided client address whatever the
// framework's own proxy setting says, and rate limiters key on it without warnings.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { after, describe, it } from 'node:test';
import fastifyRateLimit from '@fastify/rate-limit';
import express from 'express';
import { rateLimit } from 'express-rate-limit';
import Fastify from 'fastify';
import Koa from 'koa';
import type { ClientIpOptions } from '../../src/express/index.js';
import { auditLog as expressAudit, clientIp as expressClientIp } from '../../src/express/index.js';
import { clientIp as fastifyClientIp } from '../../src/fastify/index.js';
import { createAuditLog, withProxyProtocol } from '../../src/index.js';
import { clientIp as koaClientIp } from '../../src/koa/index.js';
import { close, raw, tempDir } from '../helpers.js';

const CLIENT = '203.0.113.7';
const HEADER = `PROXY TCP4 ${CLIENT} 10.0.0.5 51000 443\r\n`;
const ALB_HEADER = 'PROXY TCP4 10.1.2.3 10.0.0.5 51000 443\r\n'; // an ALB in front, in trustForwardedFrom
const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${extra}\r\n`;
const body = (d: Buffer) => d.toString().split('\r\n\r\n')[1] ?? '';
const json = (d: Buffer) => JSON.parse(body(d) || 'null');

const servers: Server[] = [];
after(async () => {
  for (const s of servers) await close(s);
});
async function serve(app: { listen(port: number, host: string): Server }): Promise<number> {
  const s = withProxyProtocol(app.listen(0, '127.0.0.1'));
  servers.push(s);
  await once(s, 'listening');
  return (s.address() as { port: number }).port;
}

// Each row: the framework's proxy setting × clientIp()'s options, with a spoofed X-Forwarded-For from the
// client. `expected` is the decided address, which every reader must report.
const rows: { name: string; trust: boolean | string | number; options: ClientIpOptions; header: string; expected: string }[] = [];
for (const trust of [false, true, 'loopback', 1]) {
  for (const forwardedFor of ['replace', 'append', 'preserve'] as const) {
    rows.push({
      name: `trust proxy ${JSON.stringify(trust)}, forwardedFor '${forwardedFor}'`,
      trust,
      options: { forwardedFor },
      header: HEADER,
      expected: CLIENT,
    });
  }
  rows.push({
    name: `trust proxy ${JSON.stringify(trust)}, an ALB in trustForwardedFrom`,
    trust,
    options: { trustForwardedFrom: '10.0.0.0/8' },
    header: ALB_HEADER,
    expected: '198.51.100.4',
  });
}

describe('Express: req.ip is the decided address', () => {
  for (const { name, trust, options, header, expected } of rows) {
    it(name, async () => {
      const app = express();
      app.set('trust proxy', trust);
      app.use(expressClientIp(options));
      app.get('/', (req, res) => res.json({ ip: req.ip, clientIp: req.clientIp }));
      const port = await serve(app);
      const { data } = await raw(port, [`${header}${get('/', 'X-Forwarded-For: 6.6.6.6, 198.51.100.4\r\n')}`]);
      assert.deepEqual(json(data), { ip: expected, clientIp: expected });
    });
  }

  it('auditLog({ clientIp: true }) alone gives the same req.ip', async () => {
    const log = createAuditLog({ filename: `${tempDir('ppa-ip-')}/audit.jsonl` });
    const app = express();
    app.set('trust proxy', true);
    app.use(expressAudit({ log, clientIp: { forwardedFor: 'append' } }));
    app.get('/', (req, res) => res.json({ ip: req.ip }));
    const port = await serve(app);
    const { data } = await raw(port, [`${HEADER}${get('/', 'X-Forwarded-For: 6.6.6.6\r\n')}`]);
    assert.deepEqual(json(data), { ip: CLIENT });
    await log.close();
  });

  it("an app without clientIp() keeps Express's own req.ip", async () => {
    const app = express();
    app.set('trust proxy', true);
    app.get('/', (req, res) => res.json({ ip: req.ip }));
    const port = await serve(app);
    const { data } = await raw(port, [`${HEADER}${get('/', 'X-Forwarded-For: 6.6.6.6\r\n')}`]);
    assert.deepEqual(json(data), { ip: '6.6.6.6' });
  });

  it("a route outside clientIp() (and a reader before it) keeps Express's own req.ip, whichever request came first", async () => {
    const app = express();
    app.set('trust proxy', true);
    const before: string[] = [];
    app.use((req, _res, next) => {
      before.push(req.ip ?? '');
      next();
    });
    app.use('/api', expressClientIp());
    app.get('/api', (req, res) => res.json({ ip: req.ip }));
    app.get('/other', (req, res) => res.json({ ip: req.ip }));
    const port = await serve(app);
    const ask = async (path: string) => json((await raw(port, [`${HEADER}${get(path, 'X-Forwarded-For: 6.6.6.6\r\n')}`])).data);
    // /other first (the accessors not installed yet), then /api (installs them), then /other again.
    assert.deepEqual(await ask('/other'), { ip: '6.6.6.6' });
    assert.deepEqual(await ask('/api'), { ip: CLIENT });
    assert.deepEqual(await ask('/other'), { ip: '6.6.6.6' });
    assert.deepEqual(before, ['6.6.6.6', '6.6.6.6', '6.6.6.6']);
  });
});

describe('Koa: ctx.ip and ctx.request.ip are the decided address', () => {
  for (const { name, trust, options, header, expected } of rows) {
    if (typeof trust !== 'boolean') continue; // Koa has app.proxy only
    for (const early of [false, true]) {
      it(`app.proxy ${trust}, ${name.split(', ').slice(1).join(', ')}${early ? ', ctx.ip read before clientIp()' : ''}`, async () => {
        const app = new Koa();
        app.proxy = trust;
        let before: string | undefined;
        if (early)
          app.use((ctx, next) => {
            before = ctx.ip; // Koa memoises it
            return next();
          });
        app.use(koaClientIp(options));
        app.use((ctx) => {
          ctx.body = { ip: ctx.ip, requestIp: ctx.request.ip, clientIp: ctx.clientIp };
        });
        const port = await serve(app);
        const { data } = await raw(port, [`${header}${get('/', 'X-Forwarded-For: 6.6.6.6, 198.51.100.4\r\n')}`]);
        assert.deepEqual(json(data), { ip: expected, requestIp: expected, clientIp: expected });
        // What the README says: a reader before clientIp() sees Koa's own value.
        if (early) assert.equal(before, trust ? '6.6.6.6' : header === HEADER ? CLIENT : '10.1.2.3');
      });
    }
  }
});

describe('With other middleware (README)', () => {
  it('express-rate-limit after clientIp() with validate.xForwardedForHeader off: keyed on the client, no warning', async () => {
    const logged: string[] = [];
    const { error, warn } = console;
    console.error = (...a: unknown[]) => logged.push(a.map(String).join(' '));
    console.warn = console.error;
    try {
      const app = express();
      app.use(expressClientIp());
      app.use(rateLimit({ windowMs: 60_000, limit: 2, validate: { xForwardedForHeader: false } }));
      app.get('/', (_req, res) => res.send('ok'));
      const port = await serve(app);
      const statuses: string[] = [];
      for (const h of [HEADER, HEADER, HEADER, HEADER.replace(CLIENT, '203.0.113.8')]) {
        const { data } = await raw(port, [`${h}${get('/', 'X-Forwarded-For: 6.6.6.6\r\n')}`]);
        statuses.push(data.toString().split(' ')[1] ?? '');
      }
      // Two per client: the third request of 203.0.113.7 is limited, another client is not.
      assert.deepEqual(statuses, ['200', '200', '429', '200']);
      assert.deepEqual(logged, []);
    } finally {
      console.error = error;
      console.warn = warn;
    }
  });

  it('without that setting express-rate-limit reports ERR_ERL_UNEXPECTED_X_FORWARDED_FOR (why the README names it)', async () => {
    const logged: string[] = [];
    const { error, warn } = console;
    console.error = (...a: unknown[]) =>
      logged.push(a.map((x) => (x instanceof Error ? `${(x as { code?: string }).code}` : String(x))).join(' '));
    console.warn = console.error;
    try {
      const app = express();
      app.use(expressClientIp());
      app.use(rateLimit({ windowMs: 60_000, limit: 5 }));
      app.get('/', (_req, res) => res.send('ok'));
      const port = await serve(app);
      await raw(port, [`${HEADER}${get('/')}`]);
      assert.ok(
        logged.some((l) => l.includes('ERR_ERL_UNEXPECTED_X_FORWARDED_FOR')),
        logged.join('\n'),
      );
    } finally {
      console.error = error;
      console.warn = warn;
    }
  });

  it('@fastify/rate-limit keyed on request.clientIp (registered after clientIp, awaited): per client, whatever the header says', async () => {
    const app = Fastify();
    await app.register(fastifyClientIp);
    await app.register(fastifyRateLimit, { max: 2, timeWindow: 60_000, keyGenerator: (request) => request.clientIp });
    app.get('/', async () => 'ok');
    withProxyProtocol(app.server);
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const port = (app.server.address() as { port: number }).port;
      const statuses: string[] = [];
      let n = 0;
      for (const h of [HEADER, HEADER, HEADER, HEADER.replace(CLIENT, '203.0.113.8')]) {
        // a new spoofed address on every request: a limiter keyed on the header would never limit
        const { data } = await raw(port, [`${h}${get('/', `X-Forwarded-For: 6.6.6.${++n}\r\n`)}`]);
        statuses.push(data.toString().split(' ')[1] ?? '');
      }
      assert.deepEqual(statuses, ['200', '200', '429', '200']);
    } finally {
      await app.close();
    }
  });

  it('a keyGenerator-style keyer on req.clientIp / ctx.clientIp never sees a spoofed header', async () => {
    const keys: string[] = [];
    const keyGenerator = (req: { clientIp: string }) => req.clientIp;
    const app = express();
    app.use(expressClientIp({ forwardedFor: 'preserve' }));
    app.use((req, _res, next) => {
      keys.push(keyGenerator(req));
      next();
    });
    app.get('/', (_req, res) => res.send('ok'));
    const koa = new Koa();
    koa.use(koaClientIp({ forwardedFor: 'preserve' }));
    koa.use((ctx) => {
      keys.push(ctx.clientIp);
      ctx.body = 'ok';
    });
    for (const port of [await serve(app), await serve(koa)]) {
      await raw(port, [`${HEADER}${get('/', 'X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n')}`]);
    }
    assert.deepEqual(keys, [CLIENT, CLIENT]);
  });
});
