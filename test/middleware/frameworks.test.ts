import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
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
