// A server listening on a UNIX-domain socket (HAProxy `server s1 unix@/run/app.sock send-proxy-v2`, nginx
// `proxy_pass unix:…; proxy_protocol on`): the peer has no address, which must not read as a reset connection.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isLocalSocket } from '../../src/connection/socket-info.js';
import {
  createAuditLog,
  ErrorCodes,
  encodeProxyHeader,
  getProxyInfo,
  type ProxyProtocolError,
  type ProxyProtocolOptions,
  withProxyProtocol,
} from '../../src/index.js';
import { close, tempDir } from '../helpers.js';

const dir = tempDir('ppa-unix-');
let n = 0;
const REQUEST = 'GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
const LOCAL = Buffer.from(encodeProxyHeader({ version: 2, command: 'local', family: 'unspec', transport: 'unspec' }));
const UNIX = Buffer.from(
  encodeProxyHeader({
    version: 2,
    command: 'proxy',
    family: 'unix',
    transport: 'stream',
    source: { address: '/run/client.sock', port: 0 },
    destination: { address: '/run/app.sock', port: 0 },
  }),
);

const servers: net.Server[] = [];
after(async () => {
  for (const s of servers) await close(s);
});

async function serve(options: ProxyProtocolOptions = {}) {
  const path = join(dir, `s${n++}.sock`);
  const errors: ProxyProtocolError[] = [];
  const server = withProxyProtocol(
    http.createServer((req, res) => {
      const info = getProxyInfo(req.socket);
      res.end(
        JSON.stringify({ remote: req.socket.remoteAddress ?? null, client: info?.client ?? null, local: info !== undefined }),
      );
    }),
    options,
  );
  server.on('proxyError', (e: ProxyProtocolError) => errors.push(e));
  servers.push(server);
  server.listen(path);
  await once(server, 'listening');
  return { server, path, errors };
}

function send(path: string, bytes: Buffer | string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const c = net.connect(path, () => c.write(Buffer.concat([Buffer.from(bytes), Buffer.from(REQUEST)])));
    let d = '';
    c.on('data', (x) => (d += x));
    c.on('error', () => {});
    c.on('close', () => resolve(d === '' ? undefined : d.split('\r\n\r\n')[1]));
  });
}

describe('a server on a UNIX-domain socket', () => {
  it('a PROXY TCP4 header gives the client, as over TCP', async () => {
    const { path, errors } = await serve();
    const body = await send(path, 'PROXY TCP4 192.0.2.1 10.0.0.1 51000 80\r\n');
    assert.deepEqual(JSON.parse(body ?? 'null'), {
      remote: '192.0.2.1',
      client: { address: '192.0.2.1', port: 51000, family: 'IPv4' },
      local: true,
    });
    assert.deepEqual(errors, []);
  });

  for (const [name, header] of [
    ['a v2 LOCAL header (a health check)', LOCAL],
    ['a v1 UNKNOWN header', 'PROXY UNKNOWN\r\n'],
    ['a v2 header of the unix family', UNIX],
  ] as const) {
    it(`${name} is served, with no client address (the peer has none)`, async () => {
      const { path, errors } = await serve();
      const body = await send(path, header);
      assert.deepEqual(JSON.parse(body ?? 'null'), { remote: null, client: null, local: true });
      assert.deepEqual(errors, []);
    });
  }

  it('requireHeader: false serves a direct connection', async () => {
    const { path } = await serve({ requireHeader: false });
    assert.deepEqual(JSON.parse((await send(path, '')) ?? 'null'), { remote: null, client: null, local: true });
  });

  it('a trust list refuses it with ERR_PROXY_UNTRUSTED and says why (no address to check); requireHeader: false serves it direct', async () => {
    const strict = await serve({ trustedProxies: 'loopback' });
    assert.equal(await send(strict.path, 'PROXY TCP4 192.0.2.1 10.0.0.1 51000 80\r\n'), undefined);
    assert.equal(strict.errors.length, 1);
    assert.equal(strict.errors[0]?.code, ErrorCodes.UNTRUSTED);
    assert.match(strict.errors[0]?.message ?? '', /UNIX-domain socket/);
    const lax = await serve({ trustedProxies: 'loopback', requireHeader: false });
    assert.deepEqual(JSON.parse((await send(lax.path, '')) ?? 'null'), { remote: null, client: null, local: true });
    assert.deepEqual(lax.errors, []);
  });

  it('a malformed header is rejected with an event, as over TCP', async () => {
    const { path, errors } = await serve();
    assert.equal(await send(path, 'PROXY TCP4 nonsense\r\n'), undefined);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, ErrorCodes.MALFORMED);
  });

  it('the audit log records a connection rejected there, with no address for the balancer', async () => {
    const file = join(dir, 'audit.jsonl');
    const log = createAuditLog({ filename: file });
    const { server, path } = await serve();
    log.watch(server);
    assert.ok(await send(path, LOCAL));
    assert.equal(await send(path, 'PROXY TCP4 nonsense\r\n'), undefined);
    await log.close();
    const entries = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const rejected = entries.filter((e) => e.event?.action === 'connection-rejected');
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0].error?.code, ErrorCodes.MALFORMED);
    assert.equal(rejected[0].network?.peer, undefined);
    assert.equal(rejected[0].client, undefined);
  });

  it('isLocalSocket tells a UNIX-domain socket from a TCP one, also one that was reset (Node private field)', async () => {
    const seen: boolean[] = [];
    const tcp = net.createServer((s) => {
      seen.push(isLocalSocket(s));
      s.destroy();
      seen.push(isLocalSocket(s));
    });
    servers.push(tcp);
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    const c = net.connect((tcp.address() as net.AddressInfo).port, '127.0.0.1');
    c.on('error', () => {});
    await once(c, 'close');
    const path = join(dir, `p${n++}.sock`);
    const pipe = net.createServer((s) => {
      seen.push(isLocalSocket(s));
      s.destroy();
    });
    servers.push(pipe);
    pipe.listen(path);
    await once(pipe, 'listening');
    const p = net.connect(path);
    p.on('error', () => {});
    await once(p, 'close');
    assert.deepEqual(seen, [false, false, true]);
  });
});
