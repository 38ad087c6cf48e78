import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import express from 'express';
import { auditLog } from '../../src/express/index.js';
import { type AuditLog, createAuditLog, verifyAuditLog } from '../../src/index.js';
import { close, listen, raw, sleep } from '../helpers.js';
import { entries, requests, tmpFile } from './util.js';

/** One request on its own connection; resolves with the status code (0 when the connection failed). */
function get(port: number, path: string, header = ''): Promise<number> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () =>
      s.write(`${header}GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    );
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('error', () => resolve(0));
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
  });
}

function app(log: AuditLog) {
  const a = express();
  a.use(auditLog({ log }));
  a.get('/', (_req, res) => res.end('ok'));
  return a;
}

describe('graceful shutdown', () => {
  it('SIGTERM with 1000 requests in flight: every served request has its entry', async () => {
    const file = tmpFile();
    const N = 1000;
    const child = fork(join(__dirname, 'fixtures', 'sigterm-server.js'), [file, String(N)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const [{ port }] = (await once(child, 'message')) as [{ port: number }];
    const allIn = once(child, 'message');
    const header = 'PROXY TCP4 203.0.113.9 10.0.0.5 40000 443\r\n';
    const statuses = Array.from({ length: N }, (_, i) => get(port, `/work/${i}`, header));
    await allIn;
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number];
    const served = (await Promise.all(statuses)).filter((s) => s === 200).length;
    assert.equal(code, 0);
    assert.equal(served, N, 'every in-flight request was served before exit');
    const reqs = requests(file).filter((e) => e.http.response?.status_code === 200);
    assert.equal(reqs.length, served, 'one entry per served request, none lost on exit');
    assert.equal(new Set(reqs.map((e) => e.url.path)).size, N);
    assert.ok(reqs.every((e) => e.client.ip === '203.0.113.9'));
    const v = await verifyAuditLog(file);
    assert.equal(v.ok, true, v.reason);
    assert.equal(entries(file).at(-1)?.event.action, 'audit-log-stopped');
  });

  it('close() waits for requests in flight, and writes a shutdown entry for those past the deadline', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const a = express();
    a.use(auditLog({ log }));
    a.get('/fast', (_req, res) => setTimeout(() => res.end('ok'), 100));
    a.get('/stuck', () => {});
    const server = http.createServer(a);
    const port = await listen(server);
    const fast = get(port, '/fast');
    const stuck = get(port, '/stuck');
    // Both requests in flight before close() (on a loaded machine a fixed pause may not be enough).
    while (log.stats.inFlight < 2) await sleep(5);
    const t0 = Date.now();
    await log.close({ timeout: 400 });
    assert.ok(Date.now() - t0 >= 350, 'waited up to the deadline for the stuck request');
    assert.equal(await fast, 200);
    const reqs = requests(file);
    assert.deepEqual(reqs.map((e) => [e.url.path, e.error?.type ?? null]).sort(), [
      ['/fast', null],
      ['/stuck', 'shutdown'],
    ]);
    server.closeAllConnections();
    await stuck;
    await close(server);
  });
});

describe('sink failure', () => {
  it('fail-closed: 503 while the file cannot be written, then recovery, nothing lost', async () => {
    const dir = join(tmpFile(), 'later'); // does not exist yet: every open fails with ENOENT
    const file = join(dir, 'audit.jsonl');
    const log = createAuditLog({ filename: file });
    const errors: Error[] = [];
    log.on('error', (e) => errors.push(e));
    const server = http.createServer(app(log));
    const port = await listen(server);
    await sleep(50); // the start entry's write fails
    assert.equal(log.accepting, false);
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as NodeJS.ErrnoException).code, 'ENOENT');
    assert.equal(await get(port, '/'), 503);
    assert.equal(await get(port, '/'), 503);
    mkdirSync(dirname(file), { recursive: true });
    const until = Date.now() + 5000;
    while (!log.accepting && Date.now() < until) await sleep(50);
    assert.equal(log.accepting, true, 'recovered once the directory exists');
    assert.equal(await get(port, '/'), 200);
    await close(server);
    await log.close();
    const reqs = requests(file);
    assert.deepEqual(
      reqs.map((e) => [e.http.response.status_code, e.error?.type ?? null]),
      [
        [503, 'audit_unavailable'],
        [503, 'audit_unavailable'],
        [200, null],
      ],
    );
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('fail-closed on a full disk (/dev/full): 503 and an error event', async (t) => {
    if (process.platform !== 'linux') return t.diagnostic('no /dev/full here');
    const log = createAuditLog({ filename: '/dev/full' });
    const errors: NodeJS.ErrnoException[] = [];
    log.on('error', (e: NodeJS.ErrnoException) => errors.push(e));
    const server = http.createServer(app(log));
    const port = await listen(server);
    await sleep(50);
    assert.equal(errors[0]?.code, 'ENOSPC');
    assert.equal(await get(port, '/'), 503);
    await close(server);
    await assert.rejects(
      log.close({ timeout: 200, flushTimeout: 200 }),
      (e: { code: string; lost: number }) => e.code === 'ERR_PROXY_AUDIT_LOST' && e.lost >= 2,
    );
  });

  it('fail-open: requests continue, drops are counted and recorded after recovery', async () => {
    const dir = join(tmpFile(), 'later');
    const file = join(dir, 'audit.jsonl');
    const log = createAuditLog({ filename: file, onSinkError: 'fail-open', maxQueue: 3 });
    log.on('error', () => {});
    const server = http.createServer(app(log));
    const port = await listen(server);
    await sleep(50);
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push(await get(port, '/'));
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200], 'served while the sink is down');
    assert.equal(log.stats.dropped, 4, '1 start + 2 queued, 4 over the bound');
    mkdirSync(dirname(file), { recursive: true });
    const until = Date.now() + 5000;
    while (log.stats.pending > 0 && Date.now() < until) await sleep(50);
    await sleep(50);
    await close(server);
    await log.close();
    const all = entries(file);
    const drop = all.find((e) => e.event.action === 'audit-entries-dropped');
    assert.equal(drop?.audit.dropped, 4);
    assert.equal(drop?.event.outcome, 'failure');
    assert.equal((await verifyAuditLog(file)).ok, true, 'dropped entries never took a sequence number: the chain has no gap');
  });
});

it('rejected connections and accepted ones through watch()', async () => {
  const file = tmpFile();
  const log = createAuditLog({ filename: file });
  const { createHttpServer } = await import('../../src/index.js');
  const server = createHttpServer({ proxyProtocol: { headerTimeout: 200 } }, (_q, s) => s.end('ok'));
  log.watch(server, { accepted: true });
  const port = await listen(server);
  await raw(port, ['PROXY TCP4 203.0.113.1 10.0.0.1 1 2\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n']);
  await raw(port, ['PROXY TCP4 1.2.3 10.0.0.1 1 2\r\n']);
  await raw(port, ['GET / HTTP/1.1\r\n\r\n']);
  await raw(port, ['PROXY TC']);
  await close(server);
  await log.close();
  const all = entries(file).filter((e) => e.event.category === 'network');
  assert.deepEqual(
    all.map((e) => [e.event.action, e.error?.code ?? e.client?.ip]),
    [
      ['connection-accepted', '203.0.113.1'],
      ['connection-rejected', 'ERR_PROXY_ADDRESS'],
      ['connection-rejected', 'ERR_PROXY_MISSING'],
      ['connection-rejected', 'ERR_PROXY_TIMEOUT'],
    ],
  );
  assert.ok(all.every((e) => e.network.peer.address === '127.0.0.1' && e.network.peer.port > 0));
});
