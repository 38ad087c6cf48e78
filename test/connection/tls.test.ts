import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import {
  createServer,
  ErrorCodes,
  encodeProxyHeader,
  getProxyInfo,
  type ProxyProtocolError,
  withProxyProtocol,
} from '../../src/index.js';
import { certificate, close, digestBody, listen, sleep } from '../helpers.js';

const V1 = Buffer.from('PROXY TCP4 198.51.100.22 10.0.0.5 35646 443\r\n');
const V2 = encodeProxyHeader(
  { version: 2, source: { address: '203.0.113.50', port: 40000 }, destination: { address: '10.0.0.5', port: 443 } },
  { crc32c: true },
);

/** A raw TCP connection that has already sent `header`. */
async function rawWithHeader(port: number, header: Uint8Array, bytewise = false): Promise<net.Socket> {
  const s = net.connect(port, '127.0.0.1');
  await once(s, 'connect');
  if (bytewise) {
    for (const b of header) {
      s.write(Buffer.from([b]));
      await sleep(1);
    }
  } else {
    s.write(header);
  }
  return s;
}

/**
 * A duplex over a TCP socket that glues `header` to the first write (the ClientHello), so both leave in one
 * segment, as Classic ELB and NLB send them.
 */
function gluedSocket(port: number, header: Uint8Array): Duplex {
  const s = net.connect(port, '127.0.0.1');
  let first = true;
  const d = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      const out = first ? Buffer.concat([header, chunk]) : chunk;
      first = false;
      s.write(out, cb);
    },
    read() {
      s.resume();
    },
    final(cb) {
      s.end(cb);
    },
    destroy(err, cb) {
      s.destroy();
      cb(err);
    },
  });
  s.on('data', (c) => {
    if (!d.push(c)) s.pause();
  });
  s.on('end', () => d.push(null));
  s.on('error', (e) => d.destroy(e));
  return d;
}

async function httpsGet(
  socket: Duplex | net.Socket,
  path: string,
  body?: Buffer,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const req = https.request({
    method: body ? 'POST' : 'GET',
    path,
    host: 'localhost',
    createConnection: () => tls.connect({ socket: socket as net.Socket, servername: 'localhost', rejectUnauthorized: false }),
  });
  req.end(body);
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return { status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) };
}

function echo(
  req: import('node:http').IncomingMessage | http2.Http2ServerRequest,
  res: import('node:http').ServerResponse | http2.Http2ServerResponse,
): void {
  digestBody(req, (bytes, sha256) => {
    const info = getProxyInfo(req.socket);
    const tlsSocket = req.socket as tls.TLSSocket;
    res.end(
      JSON.stringify({
        remoteAddress: req.socket.remoteAddress,
        remotePort: req.socket.remotePort,
        client: info?.client?.address,
        peer: info?.peer?.address,
        protocol: tlsSocket.getProtocol?.(),
        bytes,
        sha256,
      }),
    );
  });
}

describe('HTTPS through createServer (drop-in for https.createServer)', () => {
  let server: https.Server;
  let port: number;
  const errors: ProxyProtocolError[] = [];
  before(async () => {
    server = createServer({ ...(await certificate()), proxyProtocol: { headerTimeout: 500 } }, echo);
    server.on('proxyError', (e: ProxyProtocolError) => errors.push(e));
    port = await listen(server);
  });
  after(() => close(server));

  it('v1 header then a real TLS handshake', async () => {
    const { json } = await httpsGet(await rawWithHeader(port, V1), '/');
    assert.equal(json.remoteAddress, '198.51.100.22');
    assert.equal(json.remotePort, 35646);
    assert.equal(json.client, '198.51.100.22');
    assert.equal(json.peer, '127.0.0.1');
    assert.match(String(json.protocol), /^TLSv1\.[23]$/);
  });

  it('v2 header byte by byte, then TLS', async () => {
    const { json } = await httpsGet(await rawWithHeader(port, V2, true), '/');
    assert.equal(json.remoteAddress, '203.0.113.50');
  });

  it('header and ClientHello in one segment', async () => {
    const { json } = await httpsGet(gluedSocket(port, V1), '/');
    assert.equal(json.remoteAddress, '198.51.100.22');
  });

  it('a 2 MiB upload through TLS is byte-exact', async () => {
    const body = randomBytes(2 * 1024 * 1024);
    const { json } = await httpsGet(gluedSocket(port, V2), '/up', body);
    assert.equal(json.bytes, body.length);
    assert.equal(json.sha256, createHash('sha256').update(body).digest('hex'));
  });

  it('a ClientHello without header is rejected with ERR_PROXY_MISSING', async () => {
    const before = errors.length;
    const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    const [err] = (await once(s, 'error').catch((e) => [e])) as [Error];
    assert.ok(err);
    await sleep(20);
    assert.equal(errors.length, before + 1);
    assert.equal(errors.at(-1)?.code, ErrorCodes.MISSING);
  });
});

describe('HTTP/2', () => {
  it('secure HTTP/2 with a v2 header glued to the ClientHello', async () => {
    const server = withProxyProtocol(http2.createSecureServer({ ...(await certificate()), allowHTTP1: false }, echo));
    const port = await listen(server);
    const session = http2.connect(`https://localhost:${port}`, {
      createConnection: () =>
        tls.connect({
          socket: gluedSocket(port, V2) as net.Socket,
          servername: 'localhost',
          ALPNProtocols: ['h2'],
          rejectUnauthorized: false,
        }),
    });
    const results = await Promise.all(
      [1, 2, 3].map(async () => {
        const req = session.request({ ':path': '/' });
        req.end();
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        return JSON.parse(Buffer.concat(chunks).toString());
      }),
    );
    for (const r of results) {
      assert.equal(r.remoteAddress, '203.0.113.50');
      assert.equal(r.client, '203.0.113.50');
    }
    session.close();
    await close(server);
  });

  it('cleartext HTTP/2 (h2c) with the header and the preface in one write', async () => {
    const server = withProxyProtocol(http2.createServer(echo));
    const port = await listen(server);
    const session = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => gluedSocket(port, V1) as net.Socket });
    const req = session.request({ ':path': '/', ':method': 'POST' });
    const body = randomBytes(300_000);
    req.end(body);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const r = JSON.parse(Buffer.concat(chunks).toString());
    assert.equal(r.remoteAddress, '198.51.100.22');
    assert.equal(r.sha256, createHash('sha256').update(body).digest('hex'));
    session.close();
    await close(server);
  });
});

describe('tls.Server', () => {
  it('the secure socket reports the client and carries the info', async () => {
    const seen: { remote?: string; client?: string }[] = [];
    const server = withProxyProtocol(
      tls.createServer(await certificate(), (s) => {
        seen.push({ remote: s.remoteAddress, client: getProxyInfo(s)?.client?.address });
        s.end('bye');
      }),
    );
    const port = await listen(server);
    const c = tls.connect({ socket: await rawWithHeader(port, V1), rejectUnauthorized: false });
    const chunks: Buffer[] = [];
    for await (const d of c) chunks.push(d as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'bye');
    assert.deepEqual(seen, [{ remote: '198.51.100.22', client: '198.51.100.22' }]);
    await close(server);
  });

  // The bytes read along with the header (here the whole ClientHello) stay on the raw socket until the TLS
  // socket takes it over, and everything after flows through TLS unchanged.
  for (const [name, header, options] of [
    ['header glued to the ClientHello', V2, {}],
    ['no header, requireHeader: false', new Uint8Array(0), { requireHeader: false }],
  ] as const) {
    // A byte lost before the TLS socket takes over would stall the handshake: fail fast instead.
    it(`${name}: 1 MiB echoed byte-exact`, { timeout: 20_000 }, async () => {
      const server = withProxyProtocol(
        tls.createServer(await certificate(), (s) => s.pipe(s)),
        options,
      );
      const port = await listen(server);
      const c = tls.connect({ socket: gluedSocket(port, header) as net.Socket, rejectUnauthorized: false });
      await once(c, 'secureConnect');
      const body = randomBytes(1024 * 1024);
      c.end(body);
      const chunks: Buffer[] = [];
      for await (const d of c) chunks.push(d as Buffer);
      const back = Buffer.concat(chunks);
      assert.equal(back.length, body.length);
      assert.ok(back.equals(body));
      await close(server);
    });
  }
});
