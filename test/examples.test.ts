import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { verifyAuditLog } from '../src/index.js';
import { entries, requests, tmpFile } from './audit/util.js';
import { certificate, raw, sleep } from './helpers.js';

const dir = join(__dirname, '..', 'examples');

/** Starts an example with PORT=0 and resolves with the port it printed. */
async function start(
  name: string,
  env: Record<string, string>,
): Promise<{ child: ChildProcess; port: number; output: () => string }> {
  const child = spawn(process.execPath, [join(dir, `${name}.js`)], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  const until = Date.now() + 10_000;
  while (!/"port":(\d+)/.test(out)) {
    if (Date.now() > until || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, port: Number(/"port":(\d+)/.exec(out)?.[1]), output: () => out };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = await exited;
  return code as number | null;
}

const HEADER = 'PROXY TCP4 203.0.113.77 10.0.0.5 41000 443\r\n';
const body = (d: Buffer) => JSON.parse(d.toString().split('\r\n\r\n')[1] ?? 'null');

describe('examples run as documented', () => {
  it('express-existing-app: client IP from the header, one audit entry, clean SIGTERM', async () => {
    const file = tmpFile();
    const { child, port } = await start('express-existing-app', { AUDIT_LOG: file });
    const { data } = await raw(port, [`${HEADER}GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    assert.deepEqual(body(data), { clientIp: '203.0.113.77', ip: '203.0.113.77' });
    assert.equal(await stop(child), 0);
    assert.equal(requests(file)[0]?.client.ip, '203.0.113.77');
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('koa-app: route template in the log, not the record id', async () => {
    const file = tmpFile();
    const { child, port } = await start('koa-app', { AUDIT_LOG: file });
    const { data } = await raw(port, [`${HEADER}GET /records/555 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    assert.deepEqual(body(data), { id: '555', clientIp: '203.0.113.77' });
    assert.equal(await stop(child), 0);
    assert.equal(requests(file)[0]?.url.path, '/records/:id');
  });

  it('https-drop-in: TLS after the header', async () => {
    const { key, cert } = await certificate();
    const k = tmpFile('key.pem');
    const c = tmpFile('cert.pem');
    writeFileSync(k, key);
    writeFileSync(c, cert);
    const { child, port } = await start('https-drop-in', { TLS_KEY: k, TLS_CERT: c });
    const tls = await import('node:tls');
    const net = await import('node:net');
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(HEADER);
    const s = tls.connect({ socket, rejectUnauthorized: false });
    await once(s, 'secureConnect');
    s.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const chunks: Buffer[] = [];
    for await (const d of s) chunks.push(d as Buffer);
    assert.deepEqual(body(Buffer.concat(chunks)), { client: '203.0.113.77', balancer: '127.0.0.1', tlvs: 0 });
    assert.equal(await stop(child), 0);
  });

  it('cluster: one chain per worker in one file, all verified', async () => {
    const file = tmpFile();
    const { child, port, output } = await start('cluster', { AUDIT_LOG: file, WORKERS: '2' });
    const until = Date.now() + 10_000;
    while ((output().match(/listening/g) ?? []).length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 12; i++) await raw(port, [`${HEADER}GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    await stop(child);
    await new Promise((r) => setTimeout(r, 500)); // workers finish their close()
    const v = await verifyAuditLog(file);
    assert.equal(v.ok, true, v.reason);
    assert.equal(v.chains, 2);
    assert.equal(requests(file).length, 12);
  });
  it('fastify-app: route template in the log, request.clientIp from the header', async () => {
    const file = tmpFile();
    const { child, port } = await start('fastify-app', { AUDIT_LOG: file });
    const { data } = await raw(port, [`${HEADER}GET /patients/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    assert.deepEqual(body(data), { id: '7', clientIp: '203.0.113.77' });
    assert.equal(await stop(child), 0);
    const [e] = requests(file);
    assert.equal(e?.url.path, '/patients/:id');
    assert.equal(e?.client.ip, '203.0.113.77');
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('websocket: a plain request, an accepted session and a refused one, each audited', async () => {
    const file = tmpFile();
    const { child, port } = await start('websocket', { AUDIT_LOG: file });
    await raw(port, [`${HEADER}GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
    const connect = () => {
      const s = net.connect(port, '127.0.0.1');
      s.write(HEADER);
      return s;
    };
    const ws = new WebSocket('ws://x/live?token=demo-token', { createConnection: connect });
    await once(ws, 'open');
    ws.send('bed 4');
    assert.equal(String((await once(ws, 'message'))[0]), 'vitals ok: bed 4');
    ws.close();
    await once(ws, 'close');
    const denied = new WebSocket('ws://x/live?token=wrong', { createConnection: connect });
    denied.on('error', () => {});
    const [, res] = (await once(denied, 'unexpected-response')) as [unknown, { statusCode: number }];
    assert.equal(res.statusCode, 401);
    await sleep(50);
    assert.equal(await stop(child), 0);
    const web = entries(file).filter((e) => e.event.category === 'web');
    assert.deepEqual(
      web.map((e) => [e.event.action, e.url.path, e.http.response?.status_code, e.user?.id ?? null]),
      [
        ['http-request', '/status', 200, null],
        ['http-upgrade-started', '/live', 101, 'clinician-17'],
        ['http-upgrade', '/live', 101, 'clinician-17'],
        ['http-upgrade', '/live', 401, null],
      ],
    );
    assert.doesNotMatch(readFileSync(file, 'utf8'), /demo-token/);
    assert.equal((await verifyAuditLog(file)).ok, true);
  });
});
