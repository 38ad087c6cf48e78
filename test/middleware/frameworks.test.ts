import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type Server } from 'node:http';
import { after, describe, it } from 'node:test';
import Router from '@koa/router';
import express from 'express';
import Koa from 'koa';
import { clientIp as expressClientIp } from '../../src/express/index.js';
import { withProxyProtocol } from '../../src/index.js';
import { clientIp as koaClientIp } from '../../src/koa/index.js';
import { close, raw } from '../helpers.js';

const SPOOF = 'X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\n';
const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${extra}\r\n`;
const json = (d: Buffer) => JSON.parse(d.toString().split('\r\n\r\n')[1] ?? 'null');

describe('Express', () => {
  const app = express();
  app.use(expressClientIp());
  app.get('/', (req, res) => {
    res.json({
      clientIp: req.clientIp,
      clientPort: req.clientPort,
      ip: req.ip,
      xff: req.get('x-forwarded-for'),
      real: req.get('x-real-ip'),
      cip: req.get('x-client-ip') ?? null,
    });
  });
  let server: Server;
  after(() => close(server));

  it('req.clientIp comes from the PROXY header and spoofed headers are replaced', async () => {
    server = withProxyProtocol(app.listen(0, '127.0.0.1'));
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as { port: number }).port;
    const { data } = await raw(port, [`PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n${get('/', SPOOF)}`]);
    assert.deepEqual(json(data), {
      clientIp: '203.0.113.7',
      clientPort: 51000,
      ip: '203.0.113.7',
      xff: '203.0.113.7',
      real: '203.0.113.7',
      cip: null,
    });
  });

  it('IPv4-mapped IPv6 from a TCP6 header is reported as IPv4', async () => {
    const port = (server.address() as { port: number }).port;
    const { data } = await raw(port, [`PROXY TCP6 ::ffff:cb00:7107 ::1 51000 443\r\n${get('/')}`]);
    assert.equal(json(data).clientIp, '203.0.113.7');
  });

  it('without a PROXY layer, the socket peer', async () => {
    const plain = express();
    plain.use(expressClientIp());
    plain.get('/', (req, res) => res.json({ clientIp: req.clientIp }));
    const s = plain.listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as { port: number }).port;
    const { data } = await raw(port, [get('/', SPOOF)]);
    assert.equal(json(data).clientIp, '127.0.0.1');
    await close(s);
  });
});

describe('Express: where req.clientIp lives', () => {
  const servers: Server[] = [];
  after(async () => {
    for (const s of servers) await close(s);
  });
  async function serve(app: express.Express): Promise<number> {
    const s = withProxyProtocol(app.listen(0, '127.0.0.1'));
    servers.push(s);
    await once(s, 'listening');
    return (s.address() as { port: number }).port;
  }
  const HDR = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n';

  it('adds no own property to the request (accessors on the app prototype); plain handlers get own properties', async () => {
    const app = express();
    app.use(expressClientIp());
    app.get('/', (req, res) => res.json({ ip: req.clientIp, port: req.clientPort, own: Object.hasOwn(req, 'clientIp') }));
    const { data } = await raw(await serve(app), [`${HDR}${get('/')}`]);
    assert.deepEqual(json(data), { ip: '203.0.113.7', port: 51000, own: false });

    // The same middleware outside Express: plain properties, Node's prototypes untouched.
    const mw = expressClientIp();
    const { createServer } = await import('node:http');
    const plain = withProxyProtocol(
      createServer((req, res) => {
        mw(req, res, () => {
          const r = req as typeof req & { clientIp?: string };
          res.end(JSON.stringify({ ip: r.clientIp, own: Object.hasOwn(req, 'clientIp') }));
        });
      }),
    );
    servers.push(plain.listen(0, '127.0.0.1'));
    await once(plain, 'listening');
    const { data: d2 } = await raw((plain.address() as { port: number }).port, [`${HDR}${get('/')}`]);
    assert.deepEqual(json(d2), { ip: '203.0.113.7', own: true });
    assert.equal(Object.getOwnPropertyDescriptor(http.IncomingMessage.prototype, 'clientIp'), undefined);
  });

  it('a value assigned before clientIp() is overwritten; one assigned after it wins; X-Forwarded-For hops are kept per request', async () => {
    const app = express();
    app.use((req, _res, next) => {
      req.clientIp = '6.6.6.6'; // e.g. a naive middleware trusting X-Forwarded-For
      next();
    });
    app.use(expressClientIp({ trustForwardedFrom: ['203.0.113.0/24'] }));
    app.get('/', (req, res) => res.json({ ip: req.clientIp, port: req.clientPort ?? null }));
    app.get('/assign', (req, res) => {
      req.clientIp = '192.0.2.99';
      res.json({ ip: req.clientIp, port: req.clientPort ?? null });
    });
    const port = await serve(app);
    const plainReq = await raw(port, [`${HDR}${get('/')}`]);
    assert.deepEqual(json(plainReq.data), { ip: '203.0.113.7', port: 51000 });
    const viaHop = await raw(port, [`${HDR}${get('/', 'X-Forwarded-For: 198.51.100.20\r\n')}`]);
    assert.deepEqual(json(viaHop.data), { ip: '198.51.100.20', port: null });
    const assigned = await raw(port, [`${HDR}${get('/assign')}`]);
    assert.deepEqual(json(assigned.data), { ip: '192.0.2.99', port: 51000 });
  });

  it('a mounted sub-app sees the clientIp of its parent', async () => {
    const app = express();
    const sub = express();
    sub.get('/x', (req, res) => res.json({ ip: req.clientIp }));
    app.use(expressClientIp());
    app.use('/sub', sub);
    const { data } = await raw(await serve(app), [`${HDR}${get('/sub/x')}`]);
    assert.deepEqual(json(data), { ip: '203.0.113.7' });
  });

  it('clientIp() in a mounted sub-app only: the parent still reads it once the request has left the sub-app', async () => {
    const app = express();
    const sub = express();
    sub.use(expressClientIp({ trustForwardedFrom: ['203.0.113.0/24'] }));
    sub.get('/x', (req, res) => res.json({ ip: req.clientIp, where: 'sub' }));
    app.use('/sub', sub);
    app.use((req, res) => res.json({ ip: req.clientIp ?? null, port: req.clientPort ?? null, where: 'parent' }));
    const port = await serve(app);
    const inside = await raw(port, [`${HDR}${get('/sub/x')}`]);
    assert.deepEqual(json(inside.data), { ip: '203.0.113.7', where: 'sub' });
    // Not handled by the sub-app: Express gives the request its parent's prototype back.
    const after = await raw(port, [`${HDR}${get('/sub/none', 'X-Forwarded-For: 198.51.100.20\r\n')}`]);
    assert.deepEqual(json(after.data), { ip: '198.51.100.20', port: null, where: 'parent' });
  });
});

describe('Koa', () => {
  const app = new Koa();
  const router = new Router();
  app.use(koaClientIp({ trustForwardedFrom: ['10.0.0.0/8'] }));
  router.get('/r/:id', (ctx) => {
    ctx.body = {
      clientIp: ctx.clientIp,
      request: ctx.request.clientIp,
      port: ctx.clientPort ?? null,
      ip: ctx.ip,
      xff: ctx.get('x-forwarded-for'),
    };
  });
  app.use(router.routes());
  let server: Server;
  after(() => close(server));

  it('ctx.clientIp and ctx.request.clientIp from the header', async () => {
    server = withProxyProtocol(app.listen(0, '127.0.0.1'));
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as { port: number }).port;
    const { data } = await raw(port, [`PROXY TCP4 198.51.100.9 10.0.0.5 40000 443\r\n${get('/r/1', SPOOF)}`]);
    assert.deepEqual(json(data), {
      clientIp: '198.51.100.9',
      request: '198.51.100.9',
      port: 40000,
      ip: '198.51.100.9',
      xff: '198.51.100.9',
    });
  });

  it('an ALB in front (trusted 10/8) is walked past through X-Forwarded-For', async () => {
    const port = (server.address() as { port: number }).port;
    const { data } = await raw(port, [
      `PROXY TCP4 10.0.0.77 10.0.0.5 40000 443\r\n${get('/r/2', 'X-Forwarded-For: 6.6.6.6, 192.0.2.44\r\n')}`,
    ]);
    const body = json(data);
    assert.equal(body.clientIp, '192.0.2.44');
    assert.equal(body.port, null);
    assert.equal(body.xff, '192.0.2.44');
  });
});
