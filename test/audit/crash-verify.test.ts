// The real writer crashed by SIGKILL, then a second writer opening the same file: the verdicts end to end.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { verifyAuditLog } from '../../src/index.js';
import { sleep } from '../helpers.js';
import { tmpFile } from './util.js';

const run = promisify(execFile);
const writer = join(__dirname, 'fixtures', 'busy-writer.js');
const keys = generateKeyPairSync('ed25519');
const keyFile = tmpFile('audit.key');
writeFileSync(keyFile, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));

/** Starts a writer that never stops, waits until the file holds `bytes`, kills it with SIGKILL. */
async function crash(file: string, bytes: number): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, [writer, file, '1000000000', keyFile], { stdio: 'ignore' });
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    await sleep(5);
    try {
      if (statSync(file).size >= bytes) break;
    } catch {}
  }
  child.kill('SIGKILL');
  await once(child, 'exit');
}

describe('a real writer killed by SIGKILL', () => {
  let crashed: string;
  let restarted: string;
  before(async () => {
    crashed = tmpFile();
    await crash(crashed, 400_000);
    restarted = tmpFile();
    await crash(restarted, 400_000);
    await run(process.execPath, [writer, restarted, '100', keyFile]);
  });

  it('alone, its signed chain is unsealed: proven up to its last checkpoint, the rest unproven (exit 3)', async () => {
    const r = await verifyAuditLog(crashed, { publicKey: keys.publicKey });
    assert.equal(r.verdict, 'unsealed', JSON.stringify(r.findings));
    assert.equal(r.exitCode, 3);
    const [c] = r.chainSummaries;
    assert.equal(c?.status, 'unsealed');
    assert.ok((c?.proven ?? 0) > 0);
    assert.equal((c?.proven ?? 0) + (c?.unproven ?? 0), c?.lastSequence);
    assert.ok((c?.unproven ?? 99) < 41 + 25, 'at most a checkpoint interval and a batch follow the last checkpoint');
    assert.ok(r.findings.every((f) => f.severity === 'note' || f.code === 'chain-unsealed'));
  });

  it('followed by the next writer of the file, the crash is witnessed: intact (exit 0), with a note', async () => {
    const r = await verifyAuditLog(restarted, { publicKey: keys.publicKey });
    assert.equal(r.verdict, 'intact', JSON.stringify(r.findings));
    assert.deepEqual(
      r.chainSummaries.map((c) => c.status),
      ['witnessed', 'closed'],
    );
    assert.ok(r.findings.some((f) => f.code === 'writer-crashed'));
    assert.ok(r.findings.every((f) => f.severity === 'note'));
    assert.equal(
      r.chainSummaries[1]?.entries,
      1 + 1 + 100 + 2 + 2,
      'start and its checkpoint, 100 requests, 2 periodic checkpoints, stop and final',
    );
  });

  it("deleting the crashed writer's whole chain is found through the witness (tampered), keys or not", async () => {
    const lines = readFileSync(restarted, 'utf8').split('\n');
    const second = JSON.parse(lines.filter((l) => l.startsWith('{')).at(-1) as string).audit.chain;
    const kept = lines.filter((l) => l === '' || l.includes(second));
    const cut = tmpFile();
    writeFileSync(cut, kept.join('\n'));
    for (const options of [{}, { publicKey: keys.publicKey }]) {
      const r = await verifyAuditLog(cut, options);
      assert.equal(r.verdict, 'tampered');
      assert.deepEqual(
        r.findings.filter((f) => f.severity !== 'note').map((f) => [f.code, f.line]),
        [['witness-missing', 1]],
      );
    }
  });
});
