// A full disk with two writers on one file: only whole lines and recognisable fragments, every entry
// written exactly once after recovery, and the file verifies. Needs root (a small tmpfs of its own).
import assert from 'node:assert/strict';
import { execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { verifyAuditLog } from '../../src/index.js';
import { tempDir } from '../helpers.js';

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
});
