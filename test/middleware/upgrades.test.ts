import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Server as SocketIoServer } from 'socket.io';
import { io as ioClient } from 'socket.io-client';
import { WebSocket, WebSocketServer } from 'ws';
import { auditRequests, auditUpgrades, createAuditLog, verifyAuditLog, withProxyProtocol } from '../../src/index.js';
import { entries, tmpFile } from '../audit/util.js';
import { certificate, close, listen, proxyFront, raw, sleep } from '../helpers.js';

const HEADER = (n: number) => `PROXY TCP4 203.0.113.${10 + n} 10.0.0.5 ${41000 + n} 443\r\n`;
const upgrades = (file: string) => entries(file).filter((e) => e.event.action.startsWith('http-upgrade'));

/** An HTTPS server behind a PROXY front, with a ws server on it; `/deny…` upgrades are refused 401. */
async function wsServer(log: ReturnType<typeof createAuditLog>, options: Partial<Parameters<typeof auditUpgrades>[1]> = {}) {
  const server = withProxyProtocol(https.createServer(await certificate(), (_req, res) => res.end('plain\n')));
  auditUpgrades(server, { log, user: (req) => req.headers['x-user'] as string | undefined, queryKeys: true, ...options });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (req.url?.startsWith('/deny')) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 7\r\n\r\ndenied\n');
      return;
    }
    if (req.url?.startsWith('/silent')) return; // never answered
    if (req.url?.startsWith('/cut')) {
      // the app gives up on it unanswered
      if (req.url === '/cut-end') setTimeout(() => socket.end(), 20);
      else if (req.url === '/cut-error') setTimeout(() => socket.destroy(new Error('refused by the app')), 20);
      else setTimeout(() => socket.destroy(), 20);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(`echo:${m}`)));
  });
  const port = await listen(server);
  const front = await proxyFront(port, HEADER);
  return {
    server,
    front,
    url: (path: string) => `wss://127.0.0.1:${front.port}${path}`,
    async close() {
      await front.close();
      for (const c of wss.clients) c.terminate();
      await close(server);
    },
  };
}

describe('auditUpgrades with ws over TLS behind a PROXY header', () => {
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const s of stops) await s();
  });

  it('one http-upgrade entry per session, written when it ends: client, path without values, user, id, status, duration, bytes', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const s = await wsServer(log);
    stops.push(() => s.close());
    const ws = new WebSocket(s.url('/chat/room-7?patient=Jane%20Doe&token=t'), {
      rejectUnauthorized: false,
      headers: { 'x-user': 'nurse-1', 'x-request-id': 'sess-0001', 'user-agent': 'wstest/1' },
    });
    // The moment the client holds the 101, the session's start is in the file already.
    let started = false;
    ws.on('upgrade', () => {
      started = readFileSync(file, 'utf8').includes('"id":"sess-0001"');
    });
    await once(ws, 'open');
    assert.equal(started, true);
    const t0 = Date.now();
    ws.send('hello'); // 2 + 4 (mask) + 5 bytes
    assert.equal(String((await once(ws, 'message'))[0]), 'echo:hello'); // 2 + 10 bytes
    await sleep(50);
    ws.close(1000); // 2 + 4 + 2 bytes; the server's close frame: 2 + 2
    await once(ws, 'close');
    const elapsed = Date.now() - t0;
    await sleep(20);
    assert.equal(upgrades(file).length, 2, 'the end of the session is written once the connection closed');
    await log.close();
    const [start, end] = upgrades(file);
    assert.equal(start?.event.action, 'http-upgrade-started');
    assert.equal(end?.event.action, 'http-upgrade');
    for (const e of [start, end]) {
      assert.deepEqual(e?.client, { ip: '203.0.113.10', port: 41000 });
      assert.equal(e?.network.peer.address, '127.0.0.1');
      assert.deepEqual(e?.url, { domain: '127.0.0.1', path: '/chat/room-7', query: 'patient&token' });
      assert.equal(e?.http.request.method, 'GET');
      assert.equal(e?.http.request.id, 'sess-0001');
      assert.equal(e?.http.response.status_code, 101);
      assert.equal(e?.user.id, 'nurse-1');
      assert.equal(e?.user_agent.original, 'wstest/1');
      assert.match(e?.tls.version, /^1\.[23]$/);
      assert.equal(e?.event.outcome, 'success');
    }
    assert.ok(end?.event.duration / 1e6 >= elapsed - 5, `duration ${end?.event.duration} covers the session (${elapsed} ms)`);
    assert.equal(end?.http.request.body.bytes, 11 + 8);
    assert.equal(end?.http.response.body.bytes, 12 + 4);
    assert.equal(start?.http.request.body, undefined);
    assert.doesNotMatch(readFileSync(file, 'utf8'), /Jane|Doe|token=|hello/);
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('a refused upgrade is written at once, and its answer waits for the line', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const s = await wsServer(log);
    stops.push(() => s.close());
    const ws = new WebSocket(s.url('/deny?x=1'), { rejectUnauthorized: false, headers: { 'x-request-id': 'refused-1' } });
    ws.on('error', () => {});
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, http.IncomingMessage];
    const inFile = readFileSync(file, 'utf8').includes('"id":"refused-1"');
    assert.equal(res.statusCode, 401);
    assert.equal(inFile, true, 'the entry was written before the refusal reached the client');
    await log.close();
    const [e, ...rest] = upgrades(file);
    assert.equal(rest.length, 0);
    assert.equal(e?.event.action, 'http-upgrade');
    assert.equal(e?.event.outcome, 'failure');
    assert.equal(e?.http.response.status_code, 401);
    assert.equal(e?.http.response.body.bytes, 7);
    assert.equal(e?.client.ip, '203.0.113.10');
  });

  it("a refusal written in pieces: the byte count its head declares, else none (not the first piece's); one written at once, in any encoding, is read", async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http.createServer());
    server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      if (req.url === '/declared') {
        socket.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\n');
        socket.end('no');
      } else if (req.url === '/undeclared') {
        socket.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\n');
        socket.end('no');
      } else if (req.url === '/at-once') {
        socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno', 'latin1');
      } else {
        socket.write('HTTP/1.1 403 Forbidden\r\n');
        socket.write('Content-Type: text/plain\r\n\r\n');
        socket.end('no');
      }
    });
    auditUpgrades(server, { log });
    const port = await listen(server);
    for (const path of ['/declared', '/undeclared', '/at-once', '/split']) {
      const { data } = await raw(port, [
        `${HEADER(1)}GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
      ]);
      assert.match(data.toString(), /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*\r\n\r\nno$/);
    }
    await close(server);
    await log.close();
    assert.deepEqual(
      upgrades(file).map((e) => [e.url.path, e.http.response.status_code, e.http.response.body?.bytes]),
      [
        ['/declared', 403, 2],
        ['/undeclared', 403, undefined],
        ['/at-once', 403, 2],
        ['/split', 403, undefined],
      ],
    );
  });

  it('an entry the log gives up on (whenWritten(false)): no 101 and no refusal reach the client, the connection is closed', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    // The log's contract for an entry it will never write (a disk that did not come back before close() gave
    // up, or a full queue while failing closed): whenWritten(false). Both of the adapter's waits get it here.
    const write = log.write.bind(log);
    log.write = (fields, whenWritten) => {
      if (fields.action === 'http-upgrade-started') {
        whenWritten?.(false);
        return false;
      }
      return write(fields, whenWritten);
    };
    const open = log.open.bind(log);
    log.open = (options) => {
      const entry = open(options);
      const entryWrite = entry.write.bind(entry);
      entry.write = (fields, whenWritten) => {
        if (fields.status !== 401) return entryWrite(fields, whenWritten);
        entryWrite(fields); // the refusal's entry is written; its answer is told the log gave up on it
        whenWritten?.(false);
        return true;
      };
      return entry;
    };
    const s = await wsServer(log);
    stops.push(() => s.close());
    for (const path of ['/accepted', '/deny']) {
      const ws = new WebSocket(s.url(path), { rejectUnauthorized: false });
      ws.on('error', () => {});
      const answered = await new Promise<string>((resolve) => {
        ws.on('open', () => resolve('open'));
        ws.on('unexpected-response', (req, res) => {
          req.destroy();
          resolve(String(res.statusCode));
        });
        ws.on('close', () => resolve(''));
      });
      ws.terminate();
      assert.equal(answered, '', `${path}: the client got no answer whose entry the log gave up on`);
    }
    await log.close();
  });

  it('an upgrade never answered and abandoned by the client: client_aborted; skip: no entry', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const s = await wsServer(log, { skip: (req) => req.url === '/skipped' });
    stops.push(() => s.close());
    const ws = new WebSocket(s.url('/silent'), { rejectUnauthorized: false });
    ws.on('error', () => {});
    await sleep(100);
    ws.terminate();
    const skipped = new WebSocket(s.url('/skipped'), { rejectUnauthorized: false });
    await once(skipped, 'open');
    skipped.close();
    await once(skipped, 'close');
    await sleep(50);
    await log.close();
    const list = upgrades(file);
    assert.equal(list.length, 1);
    assert.equal(list[0]?.url.path, '/silent');
    assert.equal(list[0]?.error.type, 'client_aborted');
    assert.equal(list[0]?.http.response, undefined);
  });

  it('an upgrade the app destroys unanswered: server_aborted', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const s = await wsServer(log);
    stops.push(() => s.close());
    for (const path of ['/cut', '/cut-end', '/cut-error']) {
      const ws = new WebSocket(s.url(path), { rejectUnauthorized: false });
      const failed = new Promise((r) => ws.on('error', r)); // (once() would reject on it)
      await failed;
    }
    await sleep(50);
    await log.close();
    const list = upgrades(file);
    assert.deepEqual(list.map((e) => [e.url.path, e.error?.type, e.event.outcome, e.http.response]).sort(), [
      ['/cut', 'server_aborted', 'failure', undefined],
      ['/cut-end', 'server_aborted', 'failure', undefined],
      ['/cut-error', 'server_aborted', 'failure', undefined],
    ]);
  });

  it('startEntry: false writes only the end entry', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const s = await wsServer(log, { startEntry: false });
    stops.push(() => s.close());
    const ws = new WebSocket(s.url('/a'), { rejectUnauthorized: false });
    await once(ws, 'open');
    ws.close();
    await once(ws, 'close');
    await sleep(30);
    await log.close();
    assert.deepEqual(
      upgrades(file).map((e) => e.event.action),
      ['http-upgrade'],
    );
  });

  it('close(): a session still open at the deadline is written as shutdown and ended; new upgrades meanwhile get 503 with an entry', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const s = await wsServer(log);
    stops.push(() => s.close());
    const ws = new WebSocket(s.url('/long'), { rejectUnauthorized: false });
    await once(ws, 'open');
    const closed = once(ws, 'close');
    const closing = log.close({ timeout: 400 });
    const late = new WebSocket(s.url('/late'), { rejectUnauthorized: false, headers: { 'x-request-id': 'late-1' } });
    late.on('error', () => {});
    const [, res] = (await once(late, 'unexpected-response')) as [unknown, http.IncomingMessage];
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers.connection, 'close');
    await closing;
    await closed;
    const byPath = new Map(upgrades(file).map((e) => [`${e.event.action} ${e.url.path}`, e]));
    assert.equal(byPath.get('http-upgrade /long')?.error.type, 'shutdown');
    assert.equal(byPath.get('http-upgrade /long')?.http.response.status_code, 101);
    assert.equal(byPath.get('http-upgrade /late')?.error.type, 'shutdown');
    assert.equal(byPath.get('http-upgrade /late')?.http.response.status_code, 503);
    assert.equal(byPath.has('http-upgrade-started /late'), false);
    assert.equal(entries(file).at(-1)?.event.action, 'audit-log-stopped');
  });

  it('rejects bad options and a server audited twice', () => {
    const log = createAuditLog({ filename: tmpFile() });
    const server = http.createServer();
    assert.throws(() => auditUpgrades(server, {} as never), TypeError);
    assert.throws(() => auditUpgrades(server, { log, user: 'x' as never }), TypeError);
    assert.throws(() => auditUpgrades(server, { log, path: 'route' as never }), TypeError);
    assert.throws(() => auditUpgrades(server, { log, startEntry: 1 as never }), TypeError);
    auditUpgrades(server, { log });
    assert.throws(() => auditUpgrades(server, { log }), TypeError);
    return log.close();
  });
});

describe('socket.io over TLS behind a PROXY header', () => {
  for (const transport of ['polling', 'websocket'] as const) {
    it(`${transport}: every request and upgrade of the session is audited with the client from the header`, async () => {
      const file = tmpFile();
      const log = createAuditLog({ filename: file });
      const server = withProxyProtocol(https.createServer(await certificate()));
      auditRequests(server, { log });
      auditUpgrades(server, { log });
      const io = new SocketIoServer(server);
      io.on('connection', (socket) => socket.on('ping-me', (x: string, ack: (y: string) => void) => ack(`pong:${x}`)));
      const front = await proxyFront(await listen(server), HEADER);
      const client = ioClient(`https://127.0.0.1:${front.port}`, { transports: [transport], rejectUnauthorized: false });
      await new Promise<void>((resolve) => client.once('connect', () => resolve()));
      const answer = await client.timeout(2000).emitWithAck('ping-me', 'a');
      assert.equal(answer, 'pong:a');
      client.close();
      await sleep(100);
      await io.close();
      await front.close();
      await close(server).catch(() => {});
      await log.close();
      const list = entries(file).filter((e) => e.event.category === 'web');
      const reqs = list.filter((e) => e.event.action === 'http-request');
      const ups = list.filter((e) => e.event.action === 'http-upgrade');
      if (transport === 'polling') {
        assert.ok(reqs.length >= 3, `polling requests audited (${reqs.length})`);
        assert.equal(ups.length, 0);
      } else {
        assert.equal(ups.length, 1);
        assert.equal(ups[0]?.http.response.status_code, 101);
        assert.ok(ups[0]?.http.request.body.bytes > 0);
        assert.ok(ups[0]?.http.response.body.bytes > 0);
      }
      for (const e of [...reqs, ...ups]) {
        assert.equal(e.url.path, '/socket.io/');
        assert.match(e.client.ip, /^203\.0\.113\.\d+$/);
        assert.equal(e.network.peer.address, '127.0.0.1');
      }
      assert.equal((await verifyAuditLog(file)).ok, true);
    });
  }
});

describe('auditUpgrades on a plain http server', () => {
  it('an app that refuses by write() and destroy() still sends its refusal, after the entry', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http.createServer());
    auditUpgrades(server, { log });
    server.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      socket.destroy();
    });
    const port = await listen(server);
    const c = net.connect(port, '127.0.0.1');
    c.write(`${HEADER(3)}GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
    let got = '';
    c.on('data', (d) => (got += d));
    await once(c, 'close');
    assert.match(got, /^HTTP\/1\.1 400 /);
    await close(server);
    await log.close();
    const [e] = upgrades(file);
    assert.equal(e?.http.response.status_code, 400);
    assert.equal(e?.client.ip, '203.0.113.13');
  });
});

describe('SIGKILL under load', () => {
  it('every upgrade a client saw answered (101 or refused) and every answered request has its entry', async () => {
    const file = tmpFile();
    const child = fork(join(__dirname, 'fixtures', 'upgrade-server.js'), [file], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const [{ port }] = (await once(child, 'message')) as [{ port: number }];
    const connect = () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.write(HEADER(1));
      return s;
    };
    const answered = { started: new Set<string>(), refused: new Set<string>(), requests: new Set<string>() };
    let n = 0;
    let stop = false;
    const session = async (w: number) => {
      while (!stop) {
        const id = `w${w}-${n++}`;
        const kind = n % 3;
        if (kind === 0) {
          // A plain request: answered once its response arrived whole.
          const s = connect();
          s.write(`GET /r HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n`);
          let got = '';
          s.on('data', (d) => {
            got += d;
            if (got.endsWith('ok\n')) answered.requests.add(id);
          });
          await new Promise((resolve) => s.on('close', resolve));
          continue;
        }
        const ws = new WebSocket(`ws://x${kind === 1 ? '/chat' : '/deny'}`, {
          createConnection: connect,
          headers: { 'x-request-id': id },
        });
        ws.on('error', () => {});
        ws.on('upgrade', () => answered.started.add(id));
        ws.on('unexpected-response', (_req, res) => {
          answered.refused.add(id);
          res.resume();
          ws.terminate();
        });
        ws.on('open', () => ws.send('x'));
        ws.on('message', () => ws.close());
        await new Promise((resolve) => ws.on('close', resolve));
      }
    };
    const workers = Array.from({ length: 12 }, (_, w) => session(w));
    await sleep(1500);
    child.kill('SIGKILL');
    await once(child, 'exit');
    stop = true;
    await Promise.all(workers);
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '');
    const written = new Map<string, Set<string>>();
    for (const l of lines) {
      const e = JSON.parse(l);
      const id = e.http?.request?.id;
      if (id === undefined) continue;
      if (!written.has(e.event.action)) written.set(e.event.action, new Set());
      written.get(e.event.action)?.add(id);
    }
    const missing = (ids: Set<string>, action: string) => [...ids].filter((id) => !written.get(action)?.has(id));
    assert.ok(
      answered.started.size > 10 && answered.refused.size > 10 && answered.requests.size > 10,
      JSON.stringify({
        started: answered.started.size,
        refused: answered.refused.size,
        requests: answered.requests.size,
      }),
    );
    assert.deepEqual(missing(answered.started, 'http-upgrade-started'), []);
    assert.deepEqual(missing(answered.refused, 'http-upgrade'), []);
    assert.deepEqual(missing(answered.requests, 'http-request'), []);
  });
});
