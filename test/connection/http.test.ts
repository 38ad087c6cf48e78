import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  createHttpServer,
  ErrorCodes,
  encodeProxyHeader,
  getProxyInfo,
  type HttpServerOptions,
  type ProxyProtocolError,
  withProxyProtocol,
} from '../../src/index.js';
import { activeTimers, bytewise, close, digestBody, listen, raw, sleep } from '../helpers.js';

const V1 = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 80\r\n';
const V2 = encodeProxyHeader(
  { version: 2, source: { address: '2001:db8::7', port: 52000 }, destination: { address: '2001:db8::1', port: 80 } },
  { crc32c: true },
);
const GET = (path = '/', extra = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

/** Answers with what the server saw: the socket's view, the PROXY info, and a digest of the body. */
function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  digestBody(req, (bytes, sha256) => {
    const info = getProxyInfo(req.socket);
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        url: req.url,
        remoteAddress: req.socket.remoteAddress,
        remotePort: req.socket.remotePort,
        remoteFamily: req.socket.remoteFamily,
        client: info?.client,
        peer: info?.peer,
        command: info?.header?.command,
        bytes,
        sha256,
      }),
    );
  });
}

function bodies(data: Buffer): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const re = /\r\n\r\n(\{[^\n]*?\})(?=HTTP\/1\.1|$)/g;
  for (const m of data.toString('latin1').matchAll(re)) out.push(JSON.parse(m[1] as string));
  return out;
}

describe('connection layer over plain HTTP', () => {
  let server: http.Server;
  let port: number;
  const errors: ProxyProtocolError[] = [];
  before(async () => {
    server = createHttpServer({ proxyProtocol: { headerTimeout: 300 } }, echo);
    server.on('proxyError', (err: ProxyProtocolError) => errors.push(err));
    port = await listen(server);
  });
  after(() => close(server));

  const splits: { name: string; chunks: () => (string | Uint8Array)[]; delay?: number }[] = [
    { name: 'header and request in one segment', chunks: () => [V1 + GET('/one')] },
    { name: 'header, then request', chunks: () => [V1, GET('/one')], delay: 20 },
    { name: 'header byte by byte, then request', chunks: () => [...bytewise(V1), GET('/one')], delay: 2 },
    { name: 'everything byte by byte', chunks: () => bytewise(V1 + GET('/one')), delay: 1 },
    { name: 'split inside CRLF', chunks: () => [V1.slice(0, -1), V1.slice(-1) + GET('/one')], delay: 20 },
  ];
  for (const s of splits) {
    it(`v1: ${s.name}`, async () => {
      const { data } = await raw(port, s.chunks(), { delay: s.delay, until: '}' });
      const [b] = bodies(data);
      assert.equal(b?.url, '/one');
      assert.equal(b?.remoteAddress, '203.0.113.7');
      assert.equal(b?.remotePort, 51000);
      assert.equal(b?.remoteFamily, 'IPv4');
      assert.deepEqual(b?.peer && (b.peer as { address: string }).address, '127.0.0.1');
    });
  }

  it('v2 over IPv6 with CRC32C, split at every byte', async () => {
    const { data } = await raw(port, [...bytewise(V2), GET('/v2')], { delay: 1, until: '}' });
    const [b] = bodies(data);
    assert.equal(b?.remoteAddress, '2001:db8::7');
    assert.equal(b?.remotePort, 52000);
    assert.equal(b?.remoteFamily, 'IPv6');
  });

  it('pipelined requests after the header arrive whole and in order', async () => {
    const reqs = [1, 2, 3, 4, 5].map((i) => GET(`/p${i}`)).join('');
    const { data } = await raw(port, [V1 + reqs], { until: (d) => bodies(d).length === 5 });
    assert.deepEqual(
      bodies(data).map((b) => b.url),
      ['/p1', '/p2', '/p3', '/p4', '/p5'],
    );
  });

  it('a 4 MiB body after the header is delivered byte-exact', async () => {
    const body = randomBytes(4 * 1024 * 1024);
    const head = `POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`;
    const first = Buffer.concat([Buffer.from(V1 + head), body.subarray(0, 1000)]);
    const { data } = await raw(port, [first, body.subarray(1000)], { until: '}', timeout: 10000 });
    const [b] = bodies(data);
    assert.equal(b?.bytes, body.length);
    assert.equal(b?.sha256, createHash('sha256').update(body).digest('hex'));
  });

  it('half-close right after the request still gets the response', async () => {
    const { data } = await raw(port, [V1 + GET('/fin', 'Connection: close\r\n')], { end: true });
    assert.equal(bodies(data)[0]?.url, '/fin');
  });

  it('LOCAL (health check) is served with the balancer address', async () => {
    const local = encodeProxyHeader({ version: 2, command: 'local' });
    const { data } = await raw(port, [local, GET('/health')], { delay: 10, until: '}' });
    const [b] = bodies(data);
    assert.equal(b?.command, 'local');
    assert.equal(b?.remoteAddress, '127.0.0.1');
  });

  it('v1 UNKNOWN is served with the balancer address', async () => {
    const { data } = await raw(port, [`PROXY UNKNOWN\r\n${GET('/u')}`], { until: '}' });
    assert.equal(bodies(data)[0]?.remoteAddress, '127.0.0.1');
  });

  const rejections: { name: string; chunks: (string | Uint8Array)[]; code: string; fast: boolean }[] = [
    { name: 'no header', chunks: [GET('/')], code: ErrorCodes.MISSING, fast: true },
    {
      name: 'TLS ClientHello without header',
      chunks: [Buffer.from('160301020001', 'hex')],
      code: ErrorCodes.MISSING,
      fast: true,
    },
    { name: 'bad address', chunks: [`PROXY TCP4 1.2.3.999 1.2.3.4 1 2\r\n${GET('/')}`], code: ErrorCodes.ADDRESS, fast: true },
    { name: 'over-long v1 line', chunks: [`PROXY UNKNOWN ${'a'.repeat(200)}`], code: ErrorCodes.TOO_LONG, fast: true },
    {
      name: 'over-cap v2 length',
      chunks: [Buffer.from('0d0a0d0a000d0a515549540a2111ff00', 'hex')],
      code: ErrorCodes.TOO_LONG,
      fast: true,
    },
    { name: 'silent connection', chunks: [], code: ErrorCodes.TIMEOUT, fast: false },
    { name: 'stops mid-header', chunks: ['PROXY TCP4 1.2.'], code: ErrorCodes.TIMEOUT, fast: false },
  ];
  for (const r of rejections) {
    it(`rejects ${r.name} with ${r.code}`, async () => {
      const before = errors.length;
      const t0 = performance.now();
      const { data, closed } = await raw(port, r.chunks, { timeout: 3000 });
      const elapsed = performance.now() - t0;
      assert.equal(closed, true, 'the server closed the connection');
      assert.equal(data.length, 0, 'nothing was served');
      assert.equal(errors.length, before + 1);
      const err = errors.at(-1) as ProxyProtocolError;
      assert.equal(err.code, r.code);
      assert.equal(err.peer?.address, '127.0.0.1');
      assert.ok((err.peer?.port ?? 0) > 0);
      if (r.fast) assert.ok(elapsed < 250, `closed at once, took ${elapsed} ms`);
      else assert.ok(elapsed >= 280 && elapsed < 1500, `closed at headerTimeout (300 ms), took ${elapsed} ms`);
    });
  }

  it('closing mid-header reports ERR_PROXY_INCOMPLETE; closing without a byte reports nothing', async () => {
    const before = errors.length;
    await raw(port, ['PROXY TCP4'], { end: true, timeout: 1000 });
    await raw(port, [], { end: true, timeout: 1000 });
    await sleep(50);
    assert.deepEqual(
      errors.slice(before).map((e) => e.code),
      [ErrorCodes.INCOMPLETE],
    );
  });

  it('hundreds of bad connections leave nothing behind and do not disturb a good one', async () => {
    const timersBefore = activeTimers();
    const listenersBefore = server.listenerCount('connection');
    const slowGood = raw(port, [...bytewise(V1), GET('/good')], { delay: 3, until: '}', timeout: 8000 });
    const bad: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      const kind = i % 4;
      const chunks = kind === 0 ? [GET('/')] : kind === 1 ? ['PROXY TCP4 x\r\n'] : kind === 2 ? ['PROXY TC'] : [];
      bad.push(raw(port, chunks, { end: kind === 2, timeout: 3000 }));
    }
    const [good] = await Promise.all([slowGood, ...bad]);
    assert.equal(bodies((good as { data: Buffer }).data)[0]?.remoteAddress, '203.0.113.7');
    await sleep(400);
    const conns = await new Promise<number>((res, rej) => server.getConnections((e, n) => (e ? rej(e) : res(n))));
    assert.equal(conns, 0, 'no socket left open');
    assert.ok(activeTimers() <= timersBefore, `timers: ${activeTimers()} > ${timersBefore}`);
    assert.equal(server.listenerCount('connection'), listenersBefore);
  });
});

describe('trust and requireHeader', () => {
  const servers: net.Server[] = [];
  after(async () => {
    for (const s of servers) await close(s);
  });
  async function start(options: HttpServerOptions) {
    const s = createHttpServer(options, echo);
    const errs: ProxyProtocolError[] = [];
    s.on('proxyError', (e: ProxyProtocolError) => errs.push(e));
    servers.push(s);
    return { port: await listen(s), errs };
  }

  it('an untrusted peer is rejected when a header is required', async () => {
    const { port, errs } = await start({ proxyProtocol: { trustedProxies: ['10.0.0.0/8'] } });
    const { data, closed } = await raw(port, [V1 + GET()]);
    assert.equal(closed, true);
    assert.equal(data.length, 0);
    assert.equal(errs[0]?.code, ErrorCodes.UNTRUSTED);
  });

  it('a trusted second loopback address is honoured, the first is not', async () => {
    const { port, errs } = await start({ proxyProtocol: { trustedProxies: ['127.0.0.5', '::1/128'] } });
    const ok = await raw(port, [V1 + GET('/t')], { localAddress: '127.0.0.5', until: '}' });
    const b = bodies(ok.data)[0];
    assert.equal(b?.remoteAddress, '203.0.113.7');
    assert.equal((b?.peer as { address: string } | undefined)?.address, '127.0.0.5');
    const no = await raw(port, [V1 + GET('/t')], { localAddress: '127.0.0.1' });
    assert.equal(no.data.length, 0);
    assert.equal(errs.at(-1)?.code, ErrorCodes.UNTRUSTED);
  });

  it('requireHeader: false serves an untrusted peer directly and never parses its header', async () => {
    const { port } = await start({ proxyProtocol: { requireHeader: false, trustedProxies: ['10.0.0.0/8'] } });
    const { data } = await raw(port, [V1 + GET()], { timeout: 1000 });
    // The PROXY line reaches the HTTP parser as-is and is refused there: no spoofed address is ever used.
    assert.match(data.toString('latin1'), /^HTTP\/1\.1 400/);
    const direct = await raw(port, [GET('/d')], { until: '}' });
    assert.equal(bodies(direct.data)[0]?.remoteAddress, '127.0.0.1');
  });

  it('requireHeader: false serves a trusted peer without header directly, and with header via the header', async () => {
    const { port } = await start({ proxyProtocol: { requireHeader: false } });
    const direct = await raw(port, [GET('/d')], { until: '}' });
    assert.equal(bodies(direct.data)[0]?.remoteAddress, '127.0.0.1');
    const proxied = await raw(port, [V1, GET('/p')], { delay: 10, until: '}' });
    assert.equal(bodies(proxied.data)[0]?.remoteAddress, '203.0.113.7');
  });

  it('overrideRemoteAddress: false leaves the socket alone but getProxyInfo knows the client', async () => {
    const { port } = await start({ proxyProtocol: { overrideRemoteAddress: false } });
    const { data } = await raw(port, [V1 + GET()], { until: '}' });
    const b = bodies(data)[0];
    assert.equal(b?.remoteAddress, '127.0.0.1');
    assert.equal((b?.client as { address: string } | undefined)?.address, '203.0.113.7');
  });
});

describe('wrapping an existing server', () => {
  it('works on a server that is already listening, and its connection listeners see the processed socket', async () => {
    const server = http.createServer(echo);
    const port = await listen(server);
    const seen: (string | undefined)[] = [];
    withProxyProtocol(server);
    server.on('connection', (s: net.Socket) => seen.push(s.remoteAddress));
    const { data } = await raw(port, [V1 + GET('/late')], { until: '}' });
    assert.equal(bodies(data)[0]?.remoteAddress, '203.0.113.7');
    assert.deepEqual(seen, ['203.0.113.7']);
    await close(server);
  });

  it('a connection listener that pauses the socket for a while still gets every byte after the header', async () => {
    const server = withProxyProtocol(http.createServer(echo));
    server.on('connection', (s: net.Socket) => {
      s.pause();
      setTimeout(() => s.resume(), 40);
    });
    const port = await listen(server);
    const body = randomBytes(50_000);
    const request = `POST /paused HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`;
    const { data } = await raw(port, [Buffer.concat([Buffer.from(V1 + request), body])], { until: '}' });
    const [b] = bodies(data);
    assert.equal(b?.url, '/paused');
    assert.equal(b?.bytes, body.length);
    assert.equal(b?.sha256, createHash('sha256').update(body).digest('hex'));
    await close(server);
  });

  it('a connection listener that destroys the socket raises nothing, and the next connection is served', async () => {
    const server = withProxyProtocol(http.createServer(echo));
    let destroyed = 0;
    server.on('connection', (s: net.Socket) => {
      if (destroyed === 0) {
        destroyed++;
        s.destroy();
      }
    });
    const port = await listen(server);
    const first = await raw(port, [V1 + GET('/gone')], { until: '}' });
    assert.equal(first.data.length, 0);
    assert.equal(first.closed, true);
    const { data } = await raw(port, [V1 + GET('/next')], { until: '}' });
    assert.equal(bodies(data)[0]?.url, '/next');
    assert.equal(destroyed, 1);
    await close(server);
  });

  it('refuses to wrap twice and validates options at wrap time', () => {
    const server = http.createServer();
    withProxyProtocol(server);
    assert.throws(() => withProxyProtocol(server), TypeError);
    assert.throws(() => withProxyProtocol(http.createServer(), { trustedProxies: ['10.0.0.0/33'] }), TypeError);
    assert.throws(() => withProxyProtocol(http.createServer(), { trustedProxies: ['nope'] }), TypeError);
    assert.throws(() => withProxyProtocol(http.createServer(), { headerTimeout: -1 }), TypeError);
    assert.throws(() => withProxyProtocol(http.createServer(), { maxHeaderLength: 10 }), TypeError);
    assert.throws(() => withProxyProtocol({} as net.Server), TypeError);
  });

  it('does not mutate the caller options', () => {
    const options = Object.freeze({ proxyProtocol: Object.freeze({ trustedProxies: Object.freeze(['127.0.0.1']) }) });
    const s = createHttpServer(options as never);
    assert.equal(typeof s.listen, 'function');
    assert.deepEqual(options, { proxyProtocol: { trustedProxies: ['127.0.0.1'] } });
  });

  it('a net.Server gets the stream after the header, byte-exact', async () => {
    const server = withProxyProtocol(
      net.createServer((s) => {
        const chunks: Buffer[] = [];
        s.on('data', (d) => chunks.push(d));
        s.on('end', () => s.end(`${s.remoteAddress}|${Buffer.concat(chunks).toString('hex')}`));
      }),
    );
    const port = await listen(server);
    const payload = randomBytes(100_000);
    const { data } = await raw(port, [Buffer.concat([Buffer.from(V1), payload.subarray(0, 10)]), payload.subarray(10)], {
      end: true,
      delay: 5,
    });
    const [addr, hexData] = data.toString().split('|');
    assert.equal(addr, '203.0.113.7');
    assert.equal(hexData, payload.toString('hex'));
    await close(server);
  });
});

it('socket errors during the header phase never escape as unhandled errors', async () => {
  const server = createHttpServer({ proxyProtocol: { headerTimeout: 1000 } }, echo);
  const errs: ProxyProtocolError[] = [];
  server.on('proxyError', (e: ProxyProtocolError) => errs.push(e));
  const port = await listen(server);
  for (let i = 0; i < 20; i++) {
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    if (i % 2 === 0) s.write('PROXY TCP4 '); // reset mid-header; else reset before a byte: a probe, no event
    await sleep(5);
    s.resetAndDestroy();
  }
  await sleep(100);
  assert.equal(errs.length, 10);
  assert.ok(errs.every((e) => e.code === ErrorCodes.INCOMPLETE));
  // The peer of a connection reset mid-header is still known (read when the header took a second read).
  assert.ok(errs.every((e) => e.peer?.address === '127.0.0.1' && e.peer.port > 0));
  const conns = await new Promise<number>((res, rej) => server.getConnections((e, n) => (e ? rej(e) : res(n))));
  assert.equal(conns, 0, 'no socket left open');
  await close(server);
});

it('getProxyInfo().peer is read when first asked for: while the connection is open it is the balancer', async () => {
  const infos: ReturnType<typeof getProxyInfo>[] = [];
  const server = createHttpServer({}, (req, res) => {
    infos.push(getProxyInfo(req.socket));
    if (req.url === '/read') void getProxyInfo(req.socket)?.peer;
    res.end('ok');
  });
  const port = await listen(server);
  for (const path of ['/read', '/unread']) {
    const { data } = await raw(port, [`${V1}${GET(path, 'Connection: close\r\n')}`], { until: 'ok', timeout: 2000 });
    assert.match(data.toString(), /ok$/);
  }
  await sleep(50);
  const [read, unread] = infos;
  assert.equal(read?.peer?.address, '127.0.0.1');
  assert.ok((read?.peer?.port ?? 0) > 0);
  assert.equal(read?.client?.address, '203.0.113.7');
  // First asked after the connection closed: unknown, as socket.remoteAddress would be.
  assert.equal(unread?.peer, undefined);
  assert.equal(unread?.client?.address, '203.0.113.7');
  assert.deepEqual(JSON.parse(JSON.stringify(read)).peer, { ...read?.peer });
  await close(server);
});

it('random bytes on hundreds of connections: no crash, every connection closed, every rejection coded', async () => {
  const server = createHttpServer({ proxyProtocol: { headerTimeout: 300 } }, echo);
  const codes: string[] = [];
  server.on('proxyError', (e: ProxyProtocolError) => codes.push(e.code));
  const port = await listen(server);
  const { randomInt } = await import('node:crypto');
  const prefixes = ['', 'PROXY ', 'PROXY TCP4 ', '\r\n\r\n\0\r\nQUIT\n', '\r\n\r\n\0\r\nQUIT\n\x21\x11'];
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) => {
      const junk = randomBytes(randomInt(1, 300));
      return raw(port, [Buffer.concat([Buffer.from(prefixes[i % prefixes.length] as string, 'latin1'), junk])], {
        timeout: 3000,
      });
    }),
  );
  await sleep(100);
  assert.ok(results.every((r) => r.closed));
  // Each connection was either rejected with a code or (rarely, by chance a valid header) served.
  assert.ok(codes.length >= 190, `only ${codes.length} rejections`);
  assert.ok(codes.every((c) => /^ERR_PROXY_[A-Z_]+$/.test(c)));
  const conns = await new Promise<number>((res, rej) => server.getConnections((e, n) => (e ? rej(e) : res(n))));
  assert.equal(conns, 0);
  // And a good connection still works afterwards.
  const { data } = await raw(port, [V1 + GET('/after')], { until: '}' });
  assert.equal(bodies(data)[0]?.remoteAddress, '203.0.113.7');
  await close(server);
});
