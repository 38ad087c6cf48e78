// A full disk with two writers on one file: only whole lines and recognisable fragments, every entry
// written exactly once after recovery, and the file verifies; and an answer to a client that half-closed,
// held until the disk takes its entry. Needs root (a small tmpfs of its own).
import assert from 'node:assert/strict';
import { execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { auditRequests, createAuditLog, verifyAuditLog, withProxyProtocol } from '../../src/index.js';
import { close, listen, raw, tempDir } from '../helpers.js';

const MARKER = '{"@timestamp":"';

function mountTmpfs(dir: string): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('disk full', () => {
  const mnt = join(tempDir('ppa-enospc-'), 'mnt');
  mkdirSync(mnt);
  const mounted = mountTmpfs(mnt);
  after(() => {
    if (mounted) execFileSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });

  it('two processes on one file through ENOSPC: whole lines and fragments only, nothing lost, the file verifies', async (t) => {
    if (!mounted) {
      // Loud: without root (or mount) the fault cannot be made; CI runs as root and must run it.
      assert.ok(process.env.CI !== 'true', 'CI must be able to mount a tmpfs (run as root)');
      t.skip('SKIPPED: mounting a small tmpfs needs root');
      return;
    }
    const file = join(mnt, 'audit.jsonl');
    const filler = join(mnt, 'filler');
    writeFileSync(filler, Buffer.alloc(8 * 1024 * 1024 - 400 * 1024)); // ~400 KiB left
    const N = 2500; // ~450 bytes each: ~1.1 MB per writer, far more than is left
    const writers = ['a', 'b'].map((tag) =>
      fork(join(__dirname, 'fixtures', 'enospc-writer.js'), [file, String(N), tag], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
    const failed = writers.map((w) => once(w, 'message'));
    const [fa, fb] = await Promise.all(failed);
    assert.deepEqual([fa?.[0], fb?.[0]], ['failed', 'failed'], 'both writers hit the full disk');
    await new Promise((r) => setTimeout(r, 200));
    unlinkSync(filler); // room again
    const codes = await Promise.all(writers.map((w) => once(w, 'exit').then(([c]) => c)));
    assert.deepEqual(codes, [0, 0]);

    const physical = readFileSync(file, 'utf8').split('\n');
    assert.equal(physical.at(-1), '', 'the file ends with a newline');
    const whole: Record<string, unknown>[] = [];
    let fragments = 0;
    for (const line of physical.slice(0, -1)) {
      if (line === '') continue;
      // Every line starts like an entry — or with a fragment cut inside that very start — and a fragment may
      // have another writer's whole line glued after it.
      const [head = '', ...rest] = line.split(MARKER);
      assert.ok(MARKER.startsWith(head), `every line starts like an entry: ${line.slice(0, 40)}`);
      if (head !== '') fragments++;
      for (const piece of rest.map((p) => MARKER + p)) {
        try {
          whole.push(JSON.parse(piece));
        } catch {
          fragments++;
        }
      }
    }
    for (const tag of ['a', 'b']) {
      const paths = whole.map((e) => (e as { url?: { path?: string } }).url?.path).filter((p) => p?.startsWith(`/${tag}/`));
      assert.equal(paths.length, N, `writer ${tag}: every entry once`);
      assert.equal(new Set(paths).size, N);
    }
    t.diagnostic(`${fragments} torn fragments in the file`);
    const v = await verifyAuditLog(file);
    assert.equal(v.verdict, 'intact', JSON.stringify(v.findings.filter((f) => f.severity !== 'note')));
    assert.equal(v.chains, 2);
  });

  it("fail-closed: a half-closing client's answer waits for the disk, then goes out with its entry", async (t) => {
    if (!mounted) {
      assert.ok(process.env.CI !== 'true', 'CI must be able to mount a tmpfs (run as root)');
      t.skip('SKIPPED: mounting a small tmpfs needs root');
      return;
    }
    const file = join(mnt, 'half-close.jsonl');
    const log = createAuditLog({ filename: file, onSinkError: 'fail-closed', retryInterval: 50 });
    await log.drained(); // the start entry is on the disk
    const server = withProxyProtocol(http.createServer((_req, res) => res.end('ok')));
    // (an entry longer than a page: it cannot land in the free end of the file's last page of the tmpfs)
    auditRequests(server, { log, user: () => 'u'.repeat(6000) });
    const port = await listen(server);
    const filler = join(mnt, 'filler-2');
    fillUp(filler);
    let data: Buffer;
    try {
      const answer = raw(port, ['PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\nGET /held HTTP/1.1\r\nHost: x\r\n\r\n'], {
        end: true,
        timeout: 5000,
      });
      await new Promise((r) => setTimeout(r, 400)); // the entry cannot be written meanwhile: the answer waits
      assert.equal(log.accepting, false, 'the disk refused the entry');
      assert.ok(log.stats.pending > 0, 'its entry waits to be written');
      unlinkSync(filler); // room again: the entry is written, then the answer goes out
      data = (await answer).data;
    } finally {
      rmSync(filler, { force: true });
      await close(server);
      await log.close();
    }
    assert.match(data.toString(), /^HTTP\/1\.1 200 OK[\s\S]*\r\n\r\nok$/);
    // (whole lines: the short write left a torn fragment of the entry before it, written again whole)
    const held = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.includes('"path":"/held"') && l.endsWith('}}'))
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      held.map((e) => [e.http?.response?.status_code, e.client?.ip]),
      [[200, '203.0.113.7']],
    );
    assert.equal((await verifyAuditLog(file)).verdict, 'intact');
  });
});

/** Writes `file` until the disk is full. */
function fillUp(file: string): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}
