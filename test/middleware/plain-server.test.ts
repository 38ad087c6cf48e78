import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { addAbortSignal } from 'node:stream';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { auditRequests, createAuditLog, verifyAuditLog, withProxyProtocol } from '../../src/index.js';
import { entries, requests, tmpFile } from '../audit/util.js';
import { certificate, close, listen, raw, sleep } from '../helpers.js';

const HEADER = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n';
const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
  const body = JSON.stringify({ xff: req.headers['x-forwarded-for'] ?? null, cip: req.headers['x-client-ip'] ?? null });
  res.setHeader('content-type', 'application/json');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
};

/** An HTTP/2 session over TLS after a PROXY header. */
function h2connect(port: number): http2.ClientHttp2Session {
  return http2.connect(`https://localhost:${port}`, {
    rejectUnauthorized: false,
    createConnection: () => {
      const s = net.connect(port, '127.0.0.1');
      s.write(HEADER);
      return tls.connect({ socket: s, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    },
  });
}

/** One request on `session`: its status and body. */
async function h2get(session: http2.ClientHttp2Session, path: string): Promise<[number, string]> {
  const req = session.request({ ':path': path });
  let status = 0;
  let body = '';
  req.on('response', (h) => (status = Number(h[':status'])));
  req.on('data', (d) => (body += d));
  await once(req, 'end');
  return [status, body];
}

/** `/first` and `/second` pipelined on one connection (`/second` answers `two`): the bytes, without `Date`. */
async function pipelined(port: number): Promise<string> {
  const { data } = await raw(port, [`${HEADER}GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n`], {
    until: (d) => d.toString().endsWith('\r\n\r\ntwo'),
  });
  return data.toString().replace(/Date: [^\r]*\r\n/g, '');
}

describe('auditRequests on servers without a framework', () => {
  it('http: one entry per request with the client from the PROXY header; PHI-free path; skip; user', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http.createServer(handler));
    auditRequests(server, {
      log,
      user: (req) => req.headers['x-user'] as string,
      skip: (req) => req.url === '/health',
      queryKeys: true,
    });
    const port = await listen(server);
    const { data } = await raw(port, [
      `${HEADER}GET /patients/42?name=Jane HTTP/1.1\r\nHost: ehr.example\r\nX-User: dr-1\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n`,
    ]);
    assert.match(data.toString(), /^HTTP\/1\.1 200/);
    assert.match(data.toString(), /"xff":"6\.6\.6\.6"/, 'without the clientIp option, headers stay as received');
    await raw(port, [`${HEADER}GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    await close(server);
    await log.close();
    const [e, ...rest] = requests(file);
    assert.equal(rest.length, 0, 'skipped requests get no entry');
    assert.deepEqual(e?.client, { ip: '203.0.113.7', port: 51000 });
    assert.deepEqual(e?.url, { domain: 'ehr.example', path: '/patients/42', query: 'name' });
    assert.equal(e?.http.response.status_code, 200);
    assert.equal(e?.http.response.body.bytes, 28);
    assert.equal(e?.user.id, 'dr-1');
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('PHI-minimised targets: no fragment, no bare query values; HEAD, 204 and 304 record no body bytes', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(
      http.createServer((req, res) => {
        if (req.url?.startsWith('/empty')) res.statusCode = 204;
        res.setHeader('content-length', req.url?.startsWith('/empty') ? 0 : 5000);
        res.end(req.method === 'HEAD' || req.url?.startsWith('/empty') ? undefined : 'x'.repeat(5000));
      }),
    );
    auditRequests(server, { log, queryKeys: true });
    const port = await listen(server);
    for (const line of [
      'GET /p#ssn=111-11-1111',
      'GET /p/7?name=Jane&222-22-2222&token#ssn=1&dob=2',
      'GET /q#frag?ssn=1',
      'HEAD /head?x=1',
      'GET /empty',
    ]) {
      await raw(port, [`${HEADER}${line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    }
    await close(server);
    await log.close();
    assert.deepEqual(
      requests(file).map((e) => [e.url.path, e.url.query, e.http.response.body.bytes]),
      [
        ['/p', undefined, 5000],
        ['/p/7', 'name', 5000],
        ['/q', undefined, 5000],
        ['/head', 'x', 0],
        ['/empty', undefined, 0],
      ],
    );
    assert.doesNotMatch(readFileSync(file, 'utf8'), /111-11-1111|222-22-2222|ssn/);
  });

  it('clientIp option: spoof-proof X-Forwarded-For, a trusted hop recorded as the client', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http.createServer(handler));
    auditRequests(server, { log, clientIp: { trustForwardedFrom: ['203.0.113.0/24'] } });
    const port = await listen(server);
    const { data } = await raw(port, [
      `${HEADER}GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.20\r\nX-Client-IP: 6.6.6.6\r\nConnection: close\r\n\r\n`,
    ]);
    assert.deepEqual(JSON.parse(data.toString().split('\r\n\r\n')[1] ?? 'null'), { xff: '198.51.100.20', cip: null });
    await close(server);
    await log.close();
    assert.deepEqual(requests(file)[0]?.client, { ip: '198.51.100.20' });
  });

  it('after close() begins, a late request on a keep-alive connection is answered 503 with its entry; once closed, dropped unanswered', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const seen: string[] = [];
    const server = withProxyProtocol(
      http.createServer((req, res) => {
        seen.push(req.url ?? '');
        if (req.url === '/slow') setTimeout(() => handler(req, res), 300);
        else handler(req, res);
      }),
    );
    auditRequests(server, { log });
    const port = await listen(server);
    const a = net.connect(port, '127.0.0.1');
    await once(a, 'connect');
    a.write(`${HEADER}GET /a HTTP/1.1\r\nHost: x\r\n\r\n`);
    await once(a, 'data');
    const slow = raw(port, [`${HEADER}GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    await new Promise((r) => setTimeout(r, 50));
    const closing = log.close();
    let got = '';
    a.on('data', (d) => (got += d));
    a.write('GET /b HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(a, 'close');
    assert.match(got, /^HTTP\/1\.1 503 /);
    assert.match(got, /connection: close/i);
    assert.match((await slow).data.toString(), /^HTTP\/1\.1 200 /);
    await closing;
    const late = await raw(port, [`${HEADER}GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    assert.equal(late.data.length, 0, 'once the log closed, the connection is closed without an answer');
    await close(server);
    assert.deepEqual(seen, ['/a', '/slow'], 'the app never saw the refused requests');
    assert.deepEqual(
      requests(file).map((e) => [e.url.path, e.http.response?.status_code, e.error?.type]),
      [
        ['/a', 200, undefined],
        ['/b', 503, 'shutdown'],
        ['/slow', 200, undefined],
      ],
    );
  });

  it('https: TLS version recorded', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(https.createServer(await certificate(), handler));
    auditRequests(server, { log });
    const port = await listen(server);
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(HEADER);
    const t = tls.connect({ socket, rejectUnauthorized: false });
    await once(t, 'secureConnect');
    t.end('GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    for await (const _ of t);
    await close(server);
    await log.close();
    const [e] = requests(file);
    assert.equal(e?.client.ip, '203.0.113.7');
    assert.match(e?.tls.version, /^1\.[23]$/);
    assert.equal(e?.http.response.status_code, 200);
  });

  it('watch() on https: a probe through the balancer (a header, then a close before any TLS byte) is no rejected request; a bad handshake is', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(https.createServer(await certificate(), handler));
    log.watch(server);
    const port = await listen(server);
    const probe = async (after: string) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      await once(socket, 'connect');
      socket.end(`${HEADER}${after}`);
      socket.resume();
      await once(socket, 'close');
    };
    await probe(''); // the header and FIN (HAProxy check-send-proxy, an NLB health check through nginx)
    await probe('\x16\x03\x01\x00\x05hello'); // a record that is no ClientHello
    await close(server);
    await log.close();
    const rejected = entries(file).filter((e) => e.event.action === 'http-request-rejected');
    assert.equal(rejected.length, 1, JSON.stringify(rejected));
    assert.notEqual(rejected[0]?.error.code, 'ECONNRESET');
    assert.equal(rejected[0]?.client.ip, '203.0.113.7');
  });

  it('http2 (secure, compatibility API): one entry per stream, HTTP version 2.0', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http2.createSecureServer(await certificate(), handler));
    auditRequests(server, { log, clientIp: true });
    const port = await listen(server);
    const session = h2connect(port);
    for (const path of ['/one', '/two']) {
      const req = session.request({ ':path': path, 'x-forwarded-for': '6.6.6.6' });
      let body = '';
      req.on('data', (d) => (body += d));
      await once(req, 'end');
      assert.deepEqual(JSON.parse(body), { xff: '203.0.113.7', cip: null });
    }
    session.close();
    await close(server);
    await log.close();
    const list = requests(file);
    assert.deepEqual(
      list.map((e) => [e.url.path, e.http.version, e.client.ip, e.http.response.status_code]),
      [
        ['/one', '2.0', '203.0.113.7', 200],
        ['/two', '2.0', '203.0.113.7', 200],
      ],
    );
  });

  it('while the end waits for its line the response reads as ended: a writableEnded guard, a second end(), as without the audit', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const calls: string[] = [];
    const guarded = (
      req: http.IncomingMessage | http2.Http2ServerRequest,
      res: http.ServerResponse | http2.Http2ServerResponse,
    ) => {
      res.end('record 42');
      calls.push(`${req.url} ended=${res.writableEnded} finished=${res.finished}`);
      if (!res.writableEnded) {
        res.statusCode = 404;
        res.end('not found');
      }
      // A second end() with a callback: called as for any ended response, nothing more is sent.
      (res as http.ServerResponse).end(() => calls.push(`${req.url} second end called back`));
    };
    const server = withProxyProtocol(http.createServer(guarded));
    auditRequests(server, { log });
    const port = await listen(server);
    for (const conn of ['close', 'keep-alive']) {
      const { data } = await raw(port, [`${HEADER}GET /${conn} HTTP/1.1\r\nHost: x\r\nConnection: ${conn}\r\n\r\n`], {
        until: (d) => d.includes('record 42'),
      });
      const text = data.toString();
      assert.match(text, /^HTTP\/1\.1 200 OK/);
      assert.match(text, /\r\n\r\nrecord 42$/);
      assert.doesNotMatch(text, /not found/);
    }
    const h2 = withProxyProtocol(http2.createSecureServer(await certificate(), guarded));
    auditRequests(h2, { log });
    const h2port = await listen(h2);
    const session = h2connect(h2port);
    const [status, body] = await h2get(session, '/h2');
    assert.deepEqual([status, body], [200, 'record 42']);
    session.close();
    await close(server);
    await close(h2);
    await log.close();
    assert.deepEqual(calls.filter((c) => c.includes('ended=')).sort(), [
      // (HTTP/1's `finished` stays Node's until the real end: server.close() reads it, see holdEnd)
      '/close ended=true finished=false',
      '/h2 ended=true finished=true',
      '/keep-alive ended=true finished=false',
    ]);
    assert.equal(calls.filter((c) => c.includes('called back')).length, 3);
    assert.deepEqual(
      requests(file)
        .map((e) => [e.url.path, e.http.response.status_code, e.http.response.body.bytes])
        .sort(),
      [
        ['/close', 200, 9],
        ['/h2', 200, 9],
        ['/keep-alive', 200, 9],
      ],
    );
  });

  it('a write() after end() while the end waits is not sent, as without the audit: the next response on the connection stays in step', async () => {
    const seen: Record<string, string[]> = { audited: [], plain: [] };
    const handler = (which: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.url === '/second') {
        res.end('two');
        return;
      }
      res.setHeader('content-length', 3);
      res.on('error', (err: Error & { code?: string }) => seen[which]?.push(`error ${err.code}`));
      res.end('one');
      const r = res.write('EXTRA', (err) => seen[which]?.push(`callback ${(err as { code?: string } | null)?.code}`));
      seen[which]?.push(`returned ${r}`);
    };
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const audited = withProxyProtocol(http.createServer(handler('audited')));
    auditRequests(audited, { log });
    const plain = withProxyProtocol(http.createServer(handler('plain')));
    const texts: string[] = [];
    for (const server of [audited, plain]) {
      const port = await listen(server);
      texts.push(await pipelined(port));
      await close(server);
    }
    await log.close();
    assert.doesNotMatch(texts[0] as string, /EXTRA/);
    assert.equal(texts[0], texts[1], 'the same bytes as without the audit');
    assert.deepEqual(seen.audited, seen.plain);
    assert.deepEqual(seen.plain, ['returned false', 'callback ERR_STREAM_WRITE_AFTER_END', 'error ERR_STREAM_WRITE_AFTER_END']);
    assert.deepEqual(
      requests(file).map((e) => [e.url.path, e.http.response.status_code, e.http.response.body.bytes]),
      [
        ['/first', 200, 3],
        ['/second', 200, 3],
      ],
    );
  });

  it('while the end waits its head reads as sent, as without the audit: setHeader and writeHead throw, a later statusCode is not sent', async () => {
    const seen: Record<string, string[]> = {};
    const late =
      (which: string) =>
      (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
        const key = `${which} ${req.httpVersion}`;
        seen[key] ??= [];
        const log = seen[key];
        if (req.url === '/second') {
          res.end('two');
          return;
        }
        res.setHeader('content-length', 5);
        res.end('hello');
        log.push(`headersSent ${res.headersSent}`);
        for (const [name, fn] of [
          ['setHeader', () => res.setHeader('x-late', '1')],
          ['writeHead', () => (res as http.ServerResponse).writeHead(500, { 'x-late': '1' })],
          ['removeHeader', () => res.removeHeader('content-length')],
        ] as const) {
          try {
            fn();
            log.push(`${name} ok`);
          } catch (err) {
            log.push(`${name} ${(err as { code?: string }).code}`);
          }
        }
        res.statusCode = 500;
      };
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const texts: string[] = [];
    const h2: [number, string][] = [];
    for (const which of ['audited', 'plain']) {
      const server = withProxyProtocol(http.createServer(late(which)));
      const secure = withProxyProtocol(http2.createSecureServer(await certificate(), late(which)));
      if (which === 'audited') {
        auditRequests(server, { log });
        auditRequests(secure, { log });
      }
      const port = await listen(server);
      texts.push(await pipelined(port));
      const session = h2connect(await listen(secure));
      h2.push(await h2get(session, '/first'));
      session.close();
      await close(server);
      await close(secure);
    }
    await log.close();
    assert.match(texts[1] as string, /^HTTP\/1\.1 200 OK\r\ncontent-length: 5\r\n/);
    assert.equal(texts[0], texts[1], 'the same bytes as without the audit');
    assert.deepEqual(h2[0], h2[1]);
    assert.deepEqual(h2[1], [200, 'hello']);
    assert.deepEqual(seen['audited 1.1'], seen['plain 1.1']);
    assert.deepEqual(seen['plain 1.1'], [
      'headersSent true',
      'setHeader ERR_HTTP_HEADERS_SENT',
      'writeHead ERR_HTTP_HEADERS_SENT',
      'removeHeader ERR_HTTP_HEADERS_SENT',
    ]);
    assert.deepEqual(seen['audited 2.0'], seen['plain 2.0']);
    assert.equal(seen['plain 2.0']?.[0], 'headersSent true');
    assert.deepEqual(
      requests(file).map((e) => [e.url.path, e.http.response.status_code]),
      [
        ['/first', 200],
        ['/second', 200],
        ['/first', 200],
      ],
    );
  });

  it('http2: a response answered through res.stream itself is recorded with what the stream sent', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(
      http2.createSecureServer(await certificate(), (_req, res) => {
        res.stream.respond({ ':status': 201, 'content-type': 'text/plain' });
        res.stream.end('created');
      }),
    );
    auditRequests(server, { log });
    const port = await listen(server);
    const session = h2connect(port);
    const [status, body] = await h2get(session, '/direct');
    assert.deepEqual([status, body], [201, 'created']);
    session.close();
    await close(server);
    await log.close();
    const [e] = requests(file);
    assert.deepEqual(
      [e?.url.path, e?.http.response.status_code, e?.event.outcome, e?.error],
      ['/direct', 201, 'success', undefined],
    );
  });

  it('http2: a stream the client cancels is written as client_aborted with its TLS version', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    let arrived: () => void = () => {};
    const seen = new Promise<void>((r) => (arrived = r));
    const server = withProxyProtocol(http2.createSecureServer(await certificate(), () => arrived())); // never answers
    auditRequests(server, { log });
    const port = await listen(server);
    const session = h2connect(port);
    const req = session.request({ ':path': '/cancelled' });
    req.on('error', () => {});
    await seen;
    req.close(http2.constants.NGHTTP2_CANCEL);
    await once(req, 'close');
    await sleep(100);
    session.close();
    await close(server);
    await log.close();
    const [e] = requests(file);
    assert.deepEqual([e?.url.path, e?.error?.type, e?.tls?.version], ['/cancelled', 'client_aborted', '1.3']);
  });

  it('http: who ended an unanswered request: server_aborted when the app destroyed it, client_aborted when the client left', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(
      http.createServer((req, res) => {
        // /res and /socket are destroyed by the app; /fin and /rst wait for the client to go
        if (req.url === '/res') setTimeout(() => res.destroy(), 20);
        if (req.url === '/res-error') setTimeout(() => res.destroy(new Error('the app gave up')), 20);
        if (req.url === '/socket') setTimeout(() => req.socket.destroy(), 20);
        // what pipeline() passes on when its upstream was reset: still the app's doing
        const upstream = Object.assign(new Error('upstream reset'), { code: 'ECONNRESET', syscall: 'read' });
        if (req.url === '/pipeline') setTimeout(() => res.destroy(upstream), 20);
        if (req.url === '/etimedout') setTimeout(() => res.destroy(Object.assign(new Error('slow'), { code: 'ETIMEDOUT' })), 20);
        // what the socket fails with when TCP gives up on a peer that stopped answering (a dead link)
        const dead = Object.assign(new Error('read ETIMEDOUT'), { code: 'ETIMEDOUT', errno: -110, syscall: 'read' });
        if (req.url === '/dead-link') setTimeout(() => req.socket.destroy(dead), 20);
      }),
    );
    auditRequests(server, { log });
    const port = await listen(server);
    for (const path of ['/res', '/res-error', '/socket', '/pipeline', '/etimedout', '/dead-link', '/fin', '/rst']) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.write(`${HEADER}GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await sleep(60);
      if (path === '/fin') s.end();
      if (path === '/rst') s.resetAndDestroy();
      await sleep(60);
      s.destroy();
    }
    await close(server);
    await log.close();
    const got = Object.fromEntries(requests(file).map((e) => [e.url.path, [e.error?.type, e.event.outcome]]));
    assert.deepEqual(got, {
      '/res': ['server_aborted', 'failure'],
      '/res-error': ['server_aborted', 'failure'],
      '/socket': ['server_aborted', 'failure'],
      '/pipeline': ['server_aborted', 'failure'],
      '/etimedout': ['server_aborted', 'failure'],
      '/dead-link': ['client_aborted', 'failure'],
      '/fin': ['client_aborted', 'failure'],
      '/rst': ['client_aborted', 'failure'],
    });
  });

  it('http2: a stream or a session the app destroys unanswered is server_aborted; a session the client drops or resets, client_aborted', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    let arrived: () => void = () => {};
    let seen = new Promise<void>((r) => (arrived = r));
    const server = withProxyProtocol(
      http2.createSecureServer(await certificate(), (req, res) => {
        if (req.url === '/destroyed') setTimeout(() => res.destroy(), 20);
        if (req.url === '/session-destroyed') setTimeout(() => req.stream.session?.destroy(), 20);
        if (req.url === '/signalled') {
          // Node resets a stream aborted through a signal with CANCEL, as a client's cancel
          const ac = new AbortController();
          addAbortSignal(ac.signal, res.stream);
          setTimeout(() => ac.abort(), 20);
        }
        arrived();
      }),
    );
    auditRequests(server, { log });
    const port = await listen(server);
    const session = h2connect(port);
    session.on('error', () => {});
    const req = session.request({ ':path': '/destroyed' });
    req.on('error', () => {});
    req.resume();
    await once(req, 'close');
    const signalled = session.request({ ':path': '/signalled' });
    signalled.on('error', () => {});
    signalled.resume();
    await once(signalled, 'close');
    seen = new Promise<void>((r) => (arrived = r));
    const dropped = session.request({ ':path': '/dropped' });
    dropped.on('error', () => {});
    await seen;
    session.destroy();
    // A session the app destroys (and one the client resets) while a request waits.
    for (const [path, client] of [
      ['/session-destroyed', undefined],
      ['/reset', 'reset'],
    ] as const) {
      const tcp = net.connect(port, '127.0.0.1');
      tcp.on('error', () => {});
      tcp.write(HEADER);
      const s = http2.connect(`https://localhost:${port}`, {
        createConnection: () => tls.connect({ socket: tcp, rejectUnauthorized: false, ALPNProtocols: ['h2'] }),
      });
      s.on('error', () => {});
      seen = new Promise<void>((r) => (arrived = r));
      const r = s.request({ ':path': path });
      r.on('error', () => {});
      r.resume();
      await seen;
      if (client === 'reset') tcp.resetAndDestroy(); // (no TLS close_notify, no GOAWAY: a RST)
      await sleep(100);
      s.destroy();
    }
    await sleep(50);
    await close(server);
    await log.close();
    const got = Object.fromEntries(requests(file).map((e) => [e.url.path, e.error?.type]));
    assert.deepEqual(got, {
      '/destroyed': 'server_aborted',
      '/signalled': 'server_aborted',
      '/dropped': 'client_aborted',
      '/session-destroyed': 'server_aborted',
      '/reset': 'client_aborted',
    });
  });

  it("http2: a session closed by the server's idle timeout (server.setTimeout) is timeout", async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http2.createSecureServer(await certificate(), () => {})); // never answers
    server.setTimeout(150);
    auditRequests(server, { log });
    const port = await listen(server);
    const session = h2connect(port);
    session.on('error', () => {});
    const req = session.request({ ':path': '/idle' });
    req.on('error', () => {});
    req.resume();
    await once(req, 'close');
    await sleep(50);
    session.destroy();
    await close(server);
    await log.close();
    assert.deepEqual(
      requests(file).map((e) => [e.url.path, e.error?.type]),
      [['/idle', 'timeout']],
    );
  });

  it("requests with an Expect header: 'checkContinue' and 'checkExpectation' listeners' requests are audited; Node's own 417 too", async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const stored = (req: http.IncomingMessage, res: http.ServerResponse) => {
      req.resume();
      req.on('end', () => res.end(`stored ${req.url}`));
    };
    const server = withProxyProtocol(http.createServer(stored));
    server.on('checkContinue', (req, res) => {
      res.writeContinue();
      stored(req, res);
    });
    auditRequests(server, { log });
    const port = await listen(server);
    const post = (path: string, expect: string) =>
      raw(port, [`${HEADER}POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n${expect}Connection: close\r\n\r\nabc`]);
    assert.match(
      (await post('/continue', 'Expect: 100-continue\r\n')).data.toString(),
      /100 Continue\r\n\r\nHTTP\/1\.1 200 OK[\s\S]*stored \/continue$/,
    );
    assert.match((await post('/plain', '')).data.toString(), /^HTTP\/1\.1 200 OK/);
    // Without a 'checkExpectation' listener Node answers 417 before any 'request' listener: log.watch() records it.
    const watched = withProxyProtocol(http.createServer(stored));
    log.watch(watched);
    const port2 = await listen(watched);
    const refused = await raw(port2, [
      `${HEADER}GET /records/1?ssn=1 HTTP/1.1\r\nHost: x\r\nExpect: x-foo\r\nConnection: close\r\n\r\n`,
    ]);
    assert.match(refused.data.toString(), /^HTTP\/1\.1 417 Expectation Failed/);
    // With auditRequests too, the 417 is the request's own entry, not a second one.
    const both = withProxyProtocol(http.createServer(stored));
    log.watch(both);
    auditRequests(both, { log });
    const port3 = await listen(both);
    const again = await raw(port3, [`${HEADER}GET /records/2 HTTP/1.1\r\nHost: x\r\nExpect: x-foo\r\nConnection: close\r\n\r\n`]);
    assert.match(again.data.toString(), /^HTTP\/1\.1 417 Expectation Failed/);
    await Promise.all([close(server), close(watched), close(both)]);
    await log.close();
    const got = requests(file).map((e) => [e.url.path, e.http.response.status_code, e.event.outcome]);
    assert.deepEqual(got, [
      ['/continue', 200, 'success'],
      ['/plain', 200, 'success'],
      ['/records/2', 417, 'failure'],
    ]);
    const rejected = entries(file).filter((e) => e.event.action === 'http-request-rejected');
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]?.http.response.status_code, 417);
    assert.equal(rejected[0]?.url.path, '/records/1');
    assert.deepEqual(rejected[0]?.client, { ip: '203.0.113.7', port: 51000 });
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('an absolute-form target (user information, authority) logs its path only', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http.createServer((_req, res) => res.end('ok')));
    auditRequests(server, { log, queryKeys: true });
    const port = await listen(server);
    for (const target of [
      'http://alice:s3cret@x/patients/42?ssn=1',
      'https://x',
      'http://bob:pw@x?q=1',
      'HTTP://x:8080/a#frag',
    ]) {
      await raw(port, [`${HEADER}GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    }
    await close(server);
    await log.close();
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /s3cret|alice|bob|pw@/);
    assert.deepEqual(
      requests(file).map((e) => [e.url.path, e.url.query]),
      [
        ['/patients/42', 'ssn'],
        ['/', undefined],
        ['/', 'q'],
        ['/a', undefined],
      ],
    );
  });

  it('a timeout the app handled (server.setTimeout with a callback) is no cause of the end of that request or a later one', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(
      http.createServer((req, res) => {
        setTimeout(() => {
          if (!res.destroyed) res.end(`ok ${req.url}`);
        }, 150);
      }),
    );
    let noticed = 0;
    server.setTimeout(60, () => noticed++); // kept open: the app decides
    auditRequests(server, { log });
    const port = await listen(server);
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.write(`${HEADER}GET /first HTTP/1.1\r\nHost: x\r\n\r\n`);
    await once(s, 'data');
    s.write('GET /second HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(30);
    s.destroy();
    await sleep(50);
    // A timeout handled during a request (long polling) is no cause of its end either: the client's reset is.
    const poll = net.connect(port, '127.0.0.1');
    poll.on('error', () => {});
    poll.write(`${HEADER}GET /poll HTTP/1.1\r\nHost: x\r\n\r\n`);
    await sleep(100); // (past the 60 ms timeout, before the 150 ms answer)
    poll.resetAndDestroy();
    await sleep(50);
    await close(server);
    await log.close();
    assert.ok(noticed >= 2, 'the timeout fired during /first and during /poll');
    const got = Object.fromEntries(requests(file).map((e) => [e.url.path, [e.event.outcome, e.error?.type]]));
    assert.deepEqual(got, {
      '/first': ['success', undefined],
      '/second': ['failure', 'client_aborted'],
      '/poll': ['failure', 'client_aborted'],
    });
  });

  it('a response that did not finish records no byte count (not its Content-Length)', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const chunk = Buffer.alloc(64 * 1024);
    const server = withProxyProtocol(
      http.createServer((_req, res) => {
        res.setHeader('content-length', 20_000_000);
        const more = () => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', more);
        };
        more();
      }),
    );
    auditRequests(server, { log });
    const port = await listen(server);
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.write(`${HEADER}GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n`);
    await once(s, 'data');
    s.destroy();
    await sleep(100);
    await close(server);
    await log.close();
    const [e] = requests(file);
    assert.equal(e?.error?.type, 'client_aborted');
    assert.equal(e?.http.response.status_code, 200, 'the head went out');
    assert.equal(e?.http.response.body?.bytes, undefined);
  });

  it('audited twice for one log (auditRequests beside a middleware, or mounted twice): one entry, made by the later audit; for two logs, one in each', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const otherFile = tmpFile();
    const other = createAuditLog({ filename: otherFile });
    const server = withProxyProtocol(http.createServer((_req, res) => res.end('ok')));
    auditRequests(server, { log });
    // Later audits of the same request, as a framework's middleware runs them inside the handler: one for the
    // same log (its options make the entry: a path that redacts, a user), one for another log.
    const inner = withProxyProtocol(http.createServer());
    auditRequests(inner, { log, path: () => '/patients/:id', user: () => 'u42' });
    const elsewhere = withProxyProtocol(http.createServer());
    auditRequests(elsewhere, { log: other });
    server.prependListener('request', (req, res) => {
      inner.emit('request', req, res);
      elsewhere.emit('request', req, res);
    });
    const port = await listen(server);
    const { data } = await raw(port, [`${HEADER}GET /patients/1?x=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    assert.match(data.toString(), /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nok$/);
    await close(server);
    await Promise.all([log.close(), other.close()]);
    assert.doesNotMatch(readFileSync(file, 'utf8'), /patients\/1/, 'the later audit redacted the path');
    assert.deepEqual(
      requests(file).map((e) => [e.url.path, e.user?.id, e.http.response.status_code]),
      [['/patients/:id', 'u42', 200]],
    );
    assert.deepEqual(
      requests(otherFile).map((e) => [e.url.path, e.http.response.status_code]),
      [['/patients/1', 200]],
    );
    assert.equal((await verifyAuditLog(file)).ok, true);
    assert.equal((await verifyAuditLog(otherFile)).ok, true);
  });

  it('the body of end() after writeHead() is counted; after write() it is not the whole body', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(
      http.createServer((req, res) => {
        if (req.url === '/head-then-end') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('hello');
        } else if (req.url === '/declared') {
          res.writeHead(200, { 'Content-Length': '5' });
          res.end('hello');
        } else {
          res.write('hel');
          res.end('lo');
        }
      }),
    );
    auditRequests(server, { log });
    const port = await listen(server);
    for (const path of ['/head-then-end', '/declared', '/written']) {
      await raw(port, [`${HEADER}GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    }
    await close(server);
    await log.close();
    assert.deepEqual(
      requests(file).map((e) => [e.url.path, e.http.response.body?.bytes]),
      [
        ['/head-then-end', 5],
        ['/declared', 5],
        ['/written', undefined],
      ],
    );
  });

  it('watch(): bytes Node cannot parse after a complete request are a rejected request of their own', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http.createServer((_req, res) => setTimeout(() => res.end('ok'), 20)));
    auditRequests(server, { log });
    log.watch(server);
    const port = await listen(server);
    await raw(port, [`${HEADER}GET /first HTTP/1.1\r\nHost: x\r\n\r\nTHIS IS NOT HTTP\r\n\r\n`]);
    await sleep(50);
    await close(server);
    await log.close();
    const rejected = entries(file).filter((e) => e.event.action === 'http-request-rejected');
    assert.deepEqual(
      rejected.map((e) => [e.error.type, e.error.code]),
      [['client_error', 'HPE_INVALID_METHOD']],
    );
    assert.deepEqual(
      requests(file).map((e) => e.url.path),
      ['/first'],
    );
  });

  it('rejects bad options and a server audited twice', () => {
    const log = createAuditLog({ filename: tmpFile() });
    const server = http.createServer();
    assert.throws(() => auditRequests(server, {} as never), TypeError);
    assert.throws(() => auditRequests(server, { log, clientIp: 'yes' as never }), TypeError);
    assert.throws(() => auditRequests({} as never, { log }), TypeError);
    auditRequests(server, { log });
    assert.throws(() => auditRequests(server, { log }), TypeError);
    return log.close();
  });
});
