// Faults of the process and of the file: SIGKILL under load, torn tails, process.exit(), a cluster primary
// that goes away. "Nothing lost" is checked by counting what the clients received against the file.
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createAuditLog, VerifyCodes, verifyAuditLog } from '../../src/index.js';
import { sleep } from '../helpers.js';
import { entries, tmpFile } from './util.js';

const fixture = (name: string) => join(__dirname, 'fixtures', name);

async function startServer(file: string, durability = 'write'): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fixture('crash-server.js'), [file, durability], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [m] = (await once(child, 'message')) as [{ port: number }];
  return { child, port: m.port };
}

/**
 * Keep-alive load with a unique request id per request until `stop()`; resolves with the ids whose whole
 * response arrived.
 */
function load(port: number, connections: number, prefix: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const answered: string[] = [];
  let running = true;
  let n = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const id = `${prefix}-${n++}`;
      const req = http.get({ port, host: '127.0.0.1', path: '/r', agent, headers: { 'x-request-id': id } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          if (res.statusCode === 200 && body === '{"ok":true}') answered.push(id);
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
    });
  const loops = Array.from({ length: connections }, async () => {
    while (running) await one();
  });
  return {
    answered,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return answered;
    },
  };
}

function loggedIds(file: string): Set<string> {
  const ids = new Set<string>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /"http":\{"request":\{"method":"GET","id":"([^"]+)"/.exec(line);
    if (m) ids.add(m[1] as string);
  }
  return ids;
}

describe('crashes', () => {
  for (const durability of ['write', 'fsync']) {
    it(`SIGKILL under load, three times, restarting on the same file (durability '${durability}'): every answered request has its entry`, async () => {
      const file = tmpFile();
      let answered = 0;
      let missing = 0;
      for (let round = 0; round < 3; round++) {
        const { child, port } = await startServer(file, durability);
        const l = load(port, 16, `k${round}`);
        // Kill under load: once enough answers came back (a busy machine is slow to get going), at a moment
        // that differs from round to round.
        const until = Date.now() + 10_000;
        while (l.answered.length < 150 && Date.now() < until) await sleep(10);
        await sleep(37 * round);
        child.kill('SIGKILL');
        await once(child, 'exit');
        const ids = await l.stop();
        const logged = loggedIds(file);
        answered += ids.length;
        missing += ids.filter((id) => !logged.has(id)).length;
      }
      // A last, clean writer witnesses the end of the last killed one.
      const log = createAuditLog({ filename: file });
      await log.close();
      assert.ok(answered > 300, `load reached the servers (${answered} answered)`);
      assert.equal(missing, 0, `answered requests without an entry (of ${answered})`);
      const v = await verifyAuditLog(file);
      assert.equal(v.verdict, 'intact', JSON.stringify(v.findings));
      assert.equal(v.chains, 4);
      // A kill can cut a write short: the next writer ends the fragment with a newline, and verification
      // notes it as a torn fragment. Every line that is not JSON must be one of those.
      const lines = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '');
      const parsed = lines.flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return [];
        }
      });
      const torn = v.findings.filter((f) => f.code === VerifyCodes.TORN_FRAGMENT).length;
      assert.equal(lines.length - parsed.length, torn, 'every line that is not JSON is a noted torn fragment');
      const starts = parsed.filter((e) => e.event.action === 'audit-log-started');
      assert.equal(starts[0]?.audit.previous, undefined, 'the first writer found an empty file');
      for (const s of starts.slice(1))
        assert.equal(typeof s.audit.previous?.chain, 'string', 'each later writer names the last line');
    });
  }
});

describe('torn tails', () => {
  it('a writer opening a file that ends mid-line ends the fragment, records it, and links to the last whole line', async () => {
    const file = tmpFile();
    const first = createAuditLog({ filename: file });
    first.write({ category: 'web', action: 'http-request', outcome: 'success', path: '/a' });
    await first.drained();
    const fragment = '{"@timestamp":"2026-12-01T00:00:00.000Z","event":{"kind":"ev';
    appendFileSync(file, fragment); // what a SIGKILL in the middle of a write leaves
    const second = createAuditLog({ filename: file });
    second.write({ category: 'web', action: 'http-request', outcome: 'success', path: '/b' });
    await second.close();
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines[2], fragment, 'the fragment stands alone on its line');
    const start = JSON.parse(lines[3] as string);
    assert.equal(start.event.action, 'audit-log-started');
    assert.equal(start.audit.torn_bytes, Buffer.byteLength(fragment));
    const prev = JSON.parse(lines[1] as string);
    assert.deepEqual(start.audit.previous, { chain: prev.audit.chain, sequence: prev.event.sequence, hash: prev.audit.hash });
    const v = await verifyAuditLog(file);
    assert.equal(v.verdict, 'intact');
    assert.ok(v.findings.some((f) => f.code === 'torn-fragment'));
    await first.close();
  });

  it('a file that is only a fragment', async () => {
    const file = tmpFile();
    writeFileSync(file, '{"@timestamp":"20');
    const log = createAuditLog({ filename: file });
    await log.close();
    const [frag, start] = readFileSync(file, 'utf8').split('\n');
    assert.equal(frag, '{"@timestamp":"20');
    const s = JSON.parse(start as string);
    assert.equal(s.audit.torn_bytes, 17);
    assert.equal(s.audit.previous, undefined);
  });
});

describe('ending without close()', () => {
  it('process.exit() writes what was written, the open entries as shutdown, and the stop entry', async () => {
    const file = tmpFile();
    const child = fork(fixture('exit-writer.js'), [file], { stdio: 'inherit' });
    const [code] = (await once(child, 'exit')) as [number];
    assert.equal(code, 3);
    const all = entries(file);
    assert.deepEqual(
      all.filter((e) => e.event.action === 'http-request').map((e) => e.url.path),
      Array.from({ length: 8 }, (_, i) => `/e/${i}`),
    );
    assert.equal(all.filter((e) => e.error?.type === 'shutdown').length, 1);
    const last = all.at(-1);
    assert.equal(last?.event.action, 'audit-log-stopped');
    assert.equal(last?.audit.reason, 'exit');
    assert.equal((await verifyAuditLog(file)).verdict, 'intact');
  });

  it('a cluster worker whose primary is killed closes its chain', async () => {
    const file = tmpFile();
    const primary = fork(fixture('cluster-primary.js'), [file], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const [m] = (await once(primary, 'message')) as [{ worker: number }];
    primary.kill('SIGKILL');
    await once(primary, 'exit');
    const until = Date.now() + 5000;
    let stopped = false;
    while (!stopped && Date.now() < until) {
      await sleep(50);
      stopped = entries(file).some((e) => e.event.action === 'audit-log-stopped');
    }
    assert.ok(stopped, 'the worker wrote its stop entry');
    const alive = () => {
      try {
        process.kill(m.worker, 0);
        return true;
      } catch {
        return false;
      }
    };
    while (alive() && Date.now() < until) await sleep(20);
    assert.equal(alive(), false, 'the worker is gone');
    assert.equal((await verifyAuditLog(file)).verdict, 'intact');
  });
});
