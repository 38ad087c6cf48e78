import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type http from 'node:http';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createHttpServer, createServer, decodeTlvs, getProxyInfo, type ProxyInfo } from '../../src/index.js';
import { certificate, close, listen, sleep } from '../helpers.js';
import { freePort, HAPROXY_TCP, haproxy, needs, nginxStream, type Peer, which } from './peers.js';

const execFileP = promisify(execFile);
const CLIENT = '127.0.0.5'; // the "client" address, distinct from the balancer's 127.0.0.1

interface Seen {
  path: string;
  remoteAddress?: string;
  info?: ProxyInfo;
}

async function target(kind: 'https' | 'http', trustedProxies = ['127.0.0.1']) {
  const seen: Seen[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.push({ path: req.url ?? '', remoteAddress: req.socket.remoteAddress, info: getProxyInfo(req.socket) });
    res.end(JSON.stringify({ ip: req.socket.remoteAddress }));
  };
  const errors: string[] = [];
  const server =
    kind === 'https'
      ? createServer({ ...(await certificate()), proxyProtocol: { trustedProxies } }, handler)
      : createHttpServer({ proxyProtocol: { trustedProxies } }, handler);
  server.on('proxyError', (e: { code: string }) => errors.push(e.code));
  const port = await listen(server);
  return { server, port, seen, errors };
}

function httpsGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path, localAddress: CLIENT, rejectUnauthorized: false, agent: false },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
  });
}

describe('HAProxy in front of the real server (TLS passthrough)', needs('haproxy'), () => {
  let t: Awaited<ReturnType<typeof target>>;
  let peer: Peer;
  let v1: number;
  let v2: number;
  before(async () => {
    t = await target('https');
    [v1, v2] = [await freePort(), await freePort()];
    peer = await haproxy(
      `${HAPROXY_TCP}frontend fe_v1
  bind 127.0.0.1:${v1}
  default_backend be_v1
frontend fe_v2
  bind 127.0.0.1:${v2}
  default_backend be_v2
backend be_v1
  server node 127.0.0.1:${t.port} send-proxy
backend be_v2
  option httpchk GET /health
  server node 127.0.0.1:${t.port} send-proxy-v2 proxy-v2-options crc32c,unique-id check check-ssl verify none check-send-proxy inter 300
`,
      [v1, v2],
    );
  });
  after(async () => {
    await peer?.stop();
    await close(t.server);
  });

  it('send-proxy (v1): the app sees the client, getProxyInfo the balancer', async () => {
    const r = await httpsGet(v1, '/v1');
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { ip: CLIENT });
    const s = t.seen.find((x) => x.path === '/v1');
    assert.equal(s?.info?.header?.version, 1);
    assert.equal(s?.info?.peer?.address, '127.0.0.1');
    assert.equal(s?.info?.client?.address, CLIENT);
  });

  it('send-proxy-v2 with crc32c: the CRC is verified and the client seen', async () => {
    const r = await httpsGet(v2, '/v2');
    assert.deepEqual(JSON.parse(r.body), { ip: CLIENT });
    const s = t.seen.find((x) => x.path === '/v2');
    assert.equal(s?.info?.header?.version, 2);
    assert.equal(typeof decodeTlvs(s?.info?.header ?? { tlvs: [] }).crc32c, 'number');
    assert.equal(s?.info?.header?.destination?.port, v2);
  });

  it('check-send-proxy health checks arrive as LOCAL and are served with the balancer address', async () => {
    const until = Date.now() + 5000;
    while (!t.seen.some((x) => x.path === '/health') && Date.now() < until) await sleep(100);
    const h = t.seen.find((x) => x.path === '/health');
    assert.ok(h, `no health check arrived; haproxy said:\n${peer.output()}`);
    assert.equal(h.info?.header?.command, 'local');
    assert.equal(h.remoteAddress, '127.0.0.1');
    assert.deepEqual(t.errors, []);
  });
});

describe('nginx stream module with proxy_protocol on', needs('nginx'), () => {
  let t: Awaited<ReturnType<typeof target>>;
  let peer: Peer;
  let port: number;
  before(async () => {
    t = await target('https');
    port = await freePort();
    peer = await nginxStream(`server { listen 127.0.0.1:${port}; proxy_pass 127.0.0.1:${t.port}; proxy_protocol on; }`, [port]);
  });
  after(async () => {
    await peer?.stop();
    await close(t.server);
  });

  it('TLS passes through nginx; the app sees the client from the v1 header', async () => {
    for (const path of ['/a', '/b', '/c']) {
      const r = await httpsGet(port, path);
      assert.deepEqual(JSON.parse(r.body), { ip: CLIENT });
    }
    const s = t.seen.find((x) => x.path === '/b');
    assert.equal(s?.info?.header?.version, 1);
    assert.equal(s?.info?.header?.destination?.port, port);
    assert.deepEqual(t.errors, []);
  });
});

describe('curl --haproxy-protocol', needs('curl'), () => {
  it('HTTP and HTTPS, from a second loopback address', async () => {
    const h = await target('http', [CLIENT]);
    const s = await target('https', [CLIENT]);
    try {
      const curl = which('curl') as string;
      const a = await execFileP(curl, ['-sS', '--haproxy-protocol', '--interface', CLIENT, `http://127.0.0.1:${h.port}/plain`]);
      assert.deepEqual(JSON.parse(a.stdout), { ip: CLIENT });
      const b = await execFileP(curl, ['-sSk', '--haproxy-protocol', '--interface', CLIENT, `https://127.0.0.1:${s.port}/tls`]);
      assert.deepEqual(JSON.parse(b.stdout), { ip: CLIENT });
      assert.equal(s.seen[0]?.info?.peer?.address, CLIENT, 'curl is its own balancer: peer and client agree');
      // Without the flag, curl's request is refused: the header is required.
      await assert.rejects(execFileP(curl, ['-sS', '--max-time', '3', '--interface', CLIENT, `http://127.0.0.1:${h.port}/nope`]));
      assert.deepEqual(h.errors, ['ERR_PROXY_MISSING']);
    } finally {
      await close(h.server);
      await close(s.server);
    }
  });
});
