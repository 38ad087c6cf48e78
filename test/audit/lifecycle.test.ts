// The request lifecycle around the log: what happens after close() begins, server timeouts, requests Node
// rejects, the app's callbacks that fail, rotation without reopen(), and a full queue.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs, { mkdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import express from 'express';
import { auditLog } from '../../src/express/index.js';
import { type AuditLog, auditRequests, createAuditLog, verifyAuditLog, withProxyProtocol } from '../../src/index.js';
import { close, listen, sleep } from '../helpers.js';
import { entries, requests, tmpFile } from './util.js';

/** A keep-alive connection that sends requests one at a time and reads each answer (or the close). */
function connection(port: number, header = '') {
  const s = net.connect(port, '127.0.0.1');
  let buf = '';
  let first = true;
  let closed = false;
  s.on('data', (d) => (buf += d));
  s.on('error', () => {});
  s.on('close', () => (closed = true));
  return {
    socket: s,
    async request(path: string): Promise<{ status: number; head: string } | 'closed'> {
      if (!s.connecting && closed) return 'closed';
      if (s.connecting) await once(s, 'connect');
      s.write(`${first ? header : ''}GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      first = false;
      buf = '';
      const until = Date.now() + 3000;
      while (Date.now() < until) {
        const m = /^HTTP\/1\.1 (\d{3})[\s\S]*?\r\n\r\n/.exec(buf);
        if (m) {
          const len = Number(/content-length: (\d+)/i.exec(m[0])?.[1] ?? 0);
          if (buf.length >= m[0].length + len) return { status: Number(m[1]), head: m[0] };
        }
        if (closed) return 'closed';
        await sleep(5);
      }
      throw new Error('no answer');
    },
    end: () => s.destroy(),
  };
}

function app(log: AuditLog, extra: (a: express.Express) => void = () => {}) {
  const a = express();
  a.use(auditLog({ log, clientIp: true }));
  extra(a);
  a.get('/', (_req, res) => res.end('ok'));
  a.get('/slow', (_req, res) => setTimeout(() => res.end('slow'), 300));
  return a;
}

describe('after close() begins', () => {
  it('late requests on surviving keep-alive connections: 503 with Connection: close and an entry; once closed, no answer', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http.createServer(app(log)));
    const port = await listen(server);
    const a = connection(port, 'PROXY TCP4 198.51.100.7 10.0.0.1 5000 443\r\n');
    const b = connection(port, 'PROXY TCP4 198.51.100.8 10.0.0.1 5001 443\r\n');
    const c = connection(port, 'PROXY TCP4 198.51.100.9 10.0.0.1 5002 443\r\n');
    for (const conn of [a, b, c]) assert.equal(((await conn.request('/')) as { status: number }).status, 200);
    const slow = a.request('/slow'); // keeps close() waiting
    await sleep(30);
    const closing = log.close();
    assert.equal(log.state, 'closing');
    const late = await b.request('/');
    assert.notEqual(late, 'closed');
    assert.equal((late as { status: number }).status, 503);
    assert.match((late as { head: string }).head, /connection: close/i);
    assert.equal(((await slow) as { status: number }).status, 200, 'the request in flight is served');
    await closing;
    assert.equal(log.state, 'closed');
    assert.equal(await c.request('/'), 'closed', 'after close: the connection goes without an answer');
    for (const conn of [a, b, c]) conn.end();
    await close(server);
    const reqs = requests(file).map((e) => [e.client.ip, e.url.path, e.http.response?.status_code, e.error?.type ?? null]);
    assert.deepEqual(reqs, [
      ['198.51.100.7', '/', 200, null],
      ['198.51.100.8', '/', 200, null],
      ['198.51.100.9', '/', 200, null],
      ['198.51.100.8', '/', 503, 'shutdown'],
      ['198.51.100.7', '/slow', 200, null],
    ]);
    assert.equal((await verifyAuditLog(file)).verdict, 'intact');
  });
});

describe('timeouts and requests Node rejects', () => {
  it('requestTimeout: the entry says timeout with the 408 Node sent', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const a = express();
    a.use(auditLog({ log }));
    a.post('/upload', (req, res) => req.on('end', () => res.end('done')).resume());
    const server = http.createServer({ requestTimeout: 200, connectionsCheckingInterval: 50 }, a);
    const port = await listen(server);
    const s = net.connect(port, '127.0.0.1');
    s.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part');
    let got = '';
    s.on('data', (d) => (got += d));
    await once(s, 'close');
    assert.match(got, /^HTTP\/1\.1 408/);
    await close(server);
    await log.close();
    const [e] = requests(file);
    assert.equal(e?.error?.type, 'timeout');
    assert.equal(e?.http.response?.status_code, 408);
    assert.equal(e?.event.outcome, 'failure');
  });

  it('server.timeout (idle socket): timeout, no status', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const a = express();
    a.use(auditLog({ log }));
    a.get('/never', () => {});
    const server = http.createServer(a);
    server.timeout = 150;
    const port = await listen(server);
    const s = net.connect(port, '127.0.0.1');
    s.write('GET /never HTTP/1.1\r\nHost: x\r\n\r\n');
    s.on('error', () => {});
    await once(s, 'close');
    await close(server);
    await log.close();
    const [e] = requests(file);
    assert.equal(e?.error?.type, 'timeout');
    assert.equal(e?.http.response, undefined);
  });

  it('watch(): a bad request line and oversized headers after a PROXY header get a network entry with the client, and Node’s answer', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http.createServer(app(log)));
    log.watch(server);
    const port = await listen(server);
    const send = async (text: string) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(text));
      let got = '';
      s.on('data', (d) => (got += d));
      s.on('error', () => {});
      await once(s, 'close');
      return got;
    };
    const header = 'PROXY TCP4 192.0.2.44 10.0.0.1 6000 443\r\n';
    assert.match(await send(`${header}THIS IS NOT HTTP\r\n\r\n`), /^HTTP\/1\.1 400/);
    assert.match(await send(`${header}GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431/);
    await close(server);
    await log.close();
    const rejected = entries(file).filter((e) => e.event.action === 'http-request-rejected');
    assert.deepEqual(
      rejected.map((e) => [e.event.category, e.client.ip, e.http.response.status_code, e.error.type]),
      [
        ['network', '192.0.2.44', 400, 'client_error'],
        ['network', '192.0.2.44', 431, 'client_error'],
      ],
    );
    assert.equal(rejected[1]?.error.code, 'HPE_HEADER_OVERFLOW');
    assert.equal(rejected[0]?.network.peer.address, '127.0.0.1');
  });

  it('watch(): a reset connection is no rejected request, and a request with its own entry is not recorded twice', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(
      http.createServer({ requestTimeout: 300, connectionsCheckingInterval: 50 }, (req, res) => {
        req.resume();
        req.on('end', () => res.end('ok'));
      }),
    );
    auditRequests(server, { log });
    log.watch(server);
    const port = await listen(server);
    const header = 'PROXY TCP4 192.0.2.44 10.0.0.1 6000 443\r\n';
    const open = (text: string) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(text));
      s.on('error', () => {});
      return s;
    };
    // An idle keep-alive connection the balancer resets (as at its idle timeout) after one answer.
    const idle = open(`${header}GET /answered HTTP/1.1\r\nHost: x\r\n\r\n`);
    await once(idle, 'data');
    await sleep(30);
    idle.resetAndDestroy();
    // A reset while the request's body is still coming.
    const midway = open(`${header}POST /reset HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc`);
    await sleep(80);
    midway.resetAndDestroy();
    // A body that never completes: requestTimeout, answered 408 by the server.
    const slow = open(`${header}POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc`);
    let got = '';
    slow.on('data', (d) => (got += d));
    await once(slow, 'close');
    assert.match(got, /^HTTP\/1\.1 408/);
    await sleep(50);
    await close(server);
    await log.close();
    assert.deepEqual(
      entries(file).filter((e) => e.event.action === 'http-request-rejected'),
      [],
      'no rejection was recorded',
    );
    const got2 = Object.fromEntries(requests(file).map((e) => [e.url.path, [e.error?.type, e.http.response?.status_code]]));
    assert.deepEqual(got2, {
      '/answered': [undefined, 200],
      '/reset': ['client_aborted', undefined],
      '/slow': ['timeout', 408],
    });
  });

  it('with requireHeader: false, an untrusted peer that offers a PROXY header is answered 400 and audited', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const server = withProxyProtocol(http.createServer(app(log)), { requireHeader: false, trustedProxies: ['192.0.2.0/24'] });
    log.watch(server);
    const port = await listen(server);
    const s = net.connect(port, '127.0.0.1', () =>
      s.write('PROXY TCP4 6.6.6.6 10.0.0.1 1 2\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    );
    let got = '';
    s.on('data', (d) => (got += d));
    await once(s, 'close');
    assert.match(got, /^HTTP\/1\.1 400/);
    await close(server);
    await log.close();
    const [e] = entries(file).filter((x) => x.event.action === 'http-request-rejected');
    assert.equal(e?.client.ip, '127.0.0.1', 'the untrusted header was not believed');
    assert.equal(e?.http.response.status_code, 400);
  });
});

describe("the app's callbacks", () => {
  it('user, path, skip and entry listeners that throw or return odd values cost the field, never the entry', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const warnings: { code: string }[] = [];
    log.on('warning', (w) => warnings.push(w));
    let entriesSeen = 0;
    log.on('entry', () => {
      entriesSeen++;
      if (entriesSeen === 2) throw new Error('listener bug');
    });
    const a = express();
    a.use(
      auditLog({
        log,
        skip: (req) => {
          if (req.path === '/skip-throws') throw new Error('skip bug');
          return false;
        },
        user: (req) =>
          req.path === '/odd-user'
            ? (Object.create(null) as never)
            : req.path === '/user-throws'
              ? (() => {
                  throw new Error('user bug');
                })()
              : 'u1',
        path: (req) => (req.path === '/odd-path' ? (42 as unknown as string) : req.path),
      }),
    );
    a.get('/{*any}', (_req, res) => res.end('ok'));
    const server = http.createServer(a);
    const port = await listen(server);
    const get = (p: string) =>
      new Promise<number>((resolve) =>
        http.get({ port, path: p, host: '127.0.0.1' }, (r) => r.resume().on('end', () => resolve(r.statusCode ?? 0))),
      );
    const paths = ['/odd-user', '/user-throws', '/odd-path', '/skip-throws', '/fine'];
    const statuses = [];
    for (const p of paths) statuses.push(await get(p));
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
    await close(server);
    await log.close();
    const reqs = requests(file);
    assert.equal(reqs.length, 5, 'every request has its entry');
    assert.deepEqual(
      reqs.map((e) => [e.url?.path, e.user?.id]),
      [
        ['/odd-user', undefined],
        ['/user-throws', undefined],
        [undefined, 'u1'],
        ['/skip-throws', 'u1'],
        ['/fine', 'u1'],
      ],
    );
    assert.ok(warnings.every((w) => w.code === 'ERR_PROXY_AUDIT_CALLBACK'));
    assert.equal(log.stats.callbackErrors, 5, 'odd user, throwing user, odd path, throwing skip, throwing listener');
    assert.equal(warnings.length, 5);
    assert.equal((await verifyAuditLog(file)).verdict, 'intact');
  });
});

describe("durability: 'fsync'", () => {
  it('an answer leaves only after the fdatasync that covers its entry completed', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file, durability: 'fsync' });
    await log.drained();
    const events: string[] = [];
    const original = fs.fdatasync;
    // A slow disk: every sync takes 150 ms.
    (fs as { fdatasync: unknown }).fdatasync = (fd: number, cb: (err: Error | null) => void) =>
      original(fd, (err) =>
        setTimeout(() => {
          events.push('synced');
          cb(err);
        }, 150),
      );
    try {
      const server = http.createServer(app(log));
      const port = await listen(server);
      const t0 = Date.now();
      const status = await new Promise<number>((resolve) =>
        http.get({ port, path: '/', host: '127.0.0.1', agent: false }, (r) =>
          r.resume().on('end', () => {
            events.push('answered');
            resolve(r.statusCode ?? 0);
          }),
        ),
      );
      assert.equal(status, 200);
      assert.ok(Date.now() - t0 >= 140, 'the answer waited for the disk');
      assert.deepEqual(events.slice(0, 2), ['synced', 'answered']);
      await close(server);
    } finally {
      (fs as { fdatasync: unknown }).fdatasync = original;
    }
    await log.close();
    assert.equal(requests(file).length, 1);
  });
});

describe('async callbacks and listeners', () => {
  it('a user callback and an entry listener that reject cost nothing but a warning; the process lives on', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const warnings: string[] = [];
    log.on('warning', (w: Error) => warnings.push(w.message));
    log.on('entry', async () => {
      throw new Error('SIEM unreachable');
    });
    const a = express();
    a.use(
      auditLog({
        log,
        user: (async () => {
          throw new Error('session store down');
        }) as never,
      }),
    );
    a.get('/', (_req, res) => res.end('ok'));
    const server = http.createServer(a);
    const port = await listen(server);
    const status = await new Promise<number>((resolve) =>
      http.get({ port, path: '/', host: '127.0.0.1' }, (r) => r.resume().on('end', () => resolve(r.statusCode ?? 0))),
    );
    assert.equal(status, 200);
    await close(server);
    await log.close();
    await sleep(20);
    const [e] = requests(file);
    assert.equal(e?.http.response.status_code, 200);
    assert.equal(e?.user, undefined);
    assert.ok(
      warnings.some((w) => /user option rejected: session store down/.test(w)),
      warnings.join('\n'),
    );
    assert.ok(
      warnings.some((w) => /'entry' listener rejected: SIEM unreachable/.test(w)),
      warnings.join('\n'),
    );
  });
});

describe('odd values the app puts on the request', () => {
  it('a client port out of range assigned by the app costs the app-given fields, never the entry', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const warnings: { code: string }[] = [];
    log.on('warning', (w) => warnings.push(w));
    const a = express();
    a.use(auditLog({ log, clientIp: true }));
    a.get('/', (req, res) => {
      req.clientIp = '192.0.2.50';
      req.clientPort = 70_000;
      res.end('ok');
    });
    const server = http.createServer(a);
    const port = await listen(server);
    const status = await new Promise<number>((resolve) =>
      http.get({ port, path: '/', host: '127.0.0.1' }, (r) => r.resume().on('end', () => resolve(r.statusCode ?? 0))),
    );
    assert.equal(status, 200);
    await close(server);
    await log.close();
    const [e] = requests(file);
    assert.equal(e?.http.response.status_code, 200);
    assert.equal(e?.client.ip, '127.0.0.1', 'the connection address, not the refused one');
    assert.equal(warnings[0]?.code, 'ERR_PROXY_AUDIT_CALLBACK');
  });
});

describe('rotation without reopen()', () => {
  /** An audited server on `file` (and `accessLog`), its 'reopened' events, a GET, and a stop. */
  async function audited(file: string, accessLog?: string) {
    const log = createAuditLog({ filename: file, accessLog });
    const reopened: unknown[] = [];
    log.on('reopened', (f) => reopened.push(f));
    const server = http.createServer(app(log));
    const port = await listen(server);
    const get = (p: string) =>
      new Promise<void>((resolve) => http.get({ port, path: p, host: '127.0.0.1' }, (r) => r.resume().on('end', resolve)));
    const stop = async () => {
      await close(server);
      await log.close();
    };
    return { log, reopened, get, stop };
  }

  it('a renamed file is noticed: the next entries go to a new file that starts with a reopen entry; the access log follows', async () => {
    const file = tmpFile();
    const access = `${file}.access`;
    const { log, reopened, get, stop } = await audited(file, access);
    await get('/');
    await log.drained();
    renameSync(file, `${file}.1`);
    renameSync(access, `${access}.1`);
    await get('/');
    await get('/');
    await log.drained();
    unlinkSync(file); // removed outright (e.g. compressed away)
    await get('/');
    await stop();
    assert.equal(reopened.length, 2);
    assert.equal(requests(`${file}.1`).length, 1);
    assert.equal(entries(file)[0]?.event.action, 'audit-log-reopened');
    assert.equal(requests(file).length, 1, 'the entry after the removal is in the file at filename');
    assert.equal(readFileSync(`${access}.1`, 'utf8').trim().split('\n').length, 1);
    assert.equal(readFileSync(access, 'utf8').trim().split('\n').length, 3);
  });

  it('copytruncate is noticed and recorded: the truncated file starts with a reopen entry saying so', async () => {
    const file = tmpFile();
    const { log, reopened, get, stop } = await audited(file);
    await get('/');
    await log.drained();
    fs.copyFileSync(file, `${file}.1`);
    fs.truncateSync(file, 0);
    await get('/');
    await stop();
    assert.equal(reopened.length, 1);
    assert.equal(requests(`${file}.1`).length, 1);
    const [first] = entries(file);
    assert.equal(first?.event.action, 'audit-log-reopened');
    assert.equal((first?.audit as { reason?: string } | undefined)?.reason, 'truncated');
    assert.equal(requests(file).length, 1, 'the entry after the cut is in the file at filename');
  });

  it('an access log whose directory is missing is reported, not thrown (at start and at reopen()), and written once it is there', async () => {
    const file = tmpFile();
    const dir = join(dirname(file), 'access');
    const accessLog = join(dir, 'access.log');
    const log = createAuditLog({ filename: file, accessLog, retryInterval: 20 });
    const errors: NodeJS.ErrnoException[] = [];
    log.on('error', (e) => errors.push(e));
    const server = http.createServer(app(log));
    const port = await listen(server);
    const get = (p: string) =>
      new Promise<void>((resolve) => http.get({ port, path: p, host: '127.0.0.1' }, (r) => r.resume().on('end', resolve)));
    await get('/');
    await sleep(50);
    assert.ok(
      errors.some((e) => e.code === 'ENOENT'),
      'reported',
    );
    mkdirSync(dir);
    await get('/');
    await sleep(100);
    fs.rmSync(dir, { recursive: true });
    assert.doesNotThrow(() => log.reopen());
    await get('/'); // (its access line cannot be written)
    await sleep(50);
    await close(server);
    const t0 = Date.now();
    await log.close();
    assert.ok(Date.now() - t0 < 2000, `close() took ${Date.now() - t0} ms: a failing access log is not waited for`);
    assert.equal(requests(file).length, 3, 'the audit file holds every request');
    assert.equal((await verifyAuditLog(file)).ok, true);
  });
});

describe('a full queue, failing closed', () => {
  it('entries of refused requests never take the place of entries of served requests', async () => {
    const dir = join(dirname(tmpFile()), 'd');
    mkdirSync(dir);
    const file = join(dir, 'audit.jsonl');
    const log = createAuditLog({ filename: file, maxQueue: 6, retryInterval: 50 });
    log.on('error', () => {});
    const server = http.createServer(app(log));
    const port = await listen(server);
    const get = (p: string) =>
      new Promise<number>((resolve) => {
        const r = http.get({ port, path: p, host: '127.0.0.1', agent: false }, (res) =>
          res.resume().on('end', () => resolve(res.statusCode ?? 0)),
        );
        r.on('error', () => resolve(0));
      });
    await log.drained();
    const served = [get('/slow'), get('/slow'), get('/slow')]; // three places kept
    await sleep(50);
    renameSync(dir, `${dir}.away`); // the file's directory goes away: writes fail from now on
    const refused = [];
    for (let i = 0; i < 12; i++) refused.push(await Promise.race([get('/'), sleep(200).then(() => -1)]));
    assert.ok(
      refused.every((s) => s === 503 || s === -1 || s === 0),
      `refused while failing: ${refused}`,
    );
    renameSync(`${dir}.away`, dir);
    assert.deepEqual(await Promise.all(served), [200, 200, 200]);
    await close(server);
    await log.close();
    const reqs = requests(file);
    assert.equal(reqs.filter((e) => e.url.path === '/slow' && e.http.response.status_code === 200).length, 3);
    const dropped = entries(file).find((e) => e.event.action === 'audit-entries-dropped');
    const refusedLogged = reqs.filter((e) => e.http.response?.status_code === 503).length;
    // (a request that arrived before the failure was noticed is served, its answer held until the disk is back)
    const servedLate = reqs.filter((e) => e.url.path === '/' && e.http.response?.status_code === 200).length;
    assert.equal(refusedLogged + servedLate + (dropped?.audit.dropped ?? 0), 12, 'each refusal is written or counted');
    assert.ok(refusedLogged + (dropped?.audit.dropped ?? 0) >= 10);
    assert.equal((await verifyAuditLog(file)).verdict, 'intact');
  });
});
