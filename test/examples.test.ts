import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { verifyAuditLog } from '../src/index.js';
import { requests, tmpFile } from './audit/util.js';
import { certificate, raw } from './helpers.js';

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
});
