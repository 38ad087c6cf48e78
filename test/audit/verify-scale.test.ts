import assert from 'node:assert/strict';
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { verifyAuditLog } from '../../src/index.js';
import { TestChain } from './log-builder.js';
import { tmpFile } from './util.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('verifyAuditLog at scale', () => {
  it('verifies a 100,000-line file streaming, with the heap growing by less than 8 MB', async () => {
    const file = tmpFile();
    const fd = openSync(file, 'w');
    // Four writers interleaved, one of them crashing half-way: every kind of per-chain state is exercised.
    const chains = [new TestChain(), new TestChain(), new TestChain(), new TestChain()];
    let batch: string[] = [];
    for (const c of chains) batch.push(c.start());
    for (let i = 0; batch.length > 0 || i < 100_000; i++) {
      if (i < 99_990) batch.push((chains[i % 4] as TestChain).request(`/patients/${i}`));
      else if (i === 99_990) for (const c of chains.slice(1)) batch.push(...c.stop());
      if (batch.length >= 1000 || i >= 99_990) {
        writeSync(fd, `${batch.join('\n')}\n`);
        batch = [];
      }
      if (i > 100_000) break;
    }
    closeSync(fd);
    assert.ok(statSync(file).size > 30e6, 'the file is larger than the bound asserted below');

    gc();
    const base = process.memoryUsage().heapUsed;
    let peak = base;
    const sampler = setInterval(() => {
      gc();
      peak = Math.max(peak, process.memoryUsage().heapUsed);
    }, 150);
    const r = await verifyAuditLog(file);
    clearInterval(sampler);
    gc();
    peak = Math.max(peak, process.memoryUsage().heapUsed);
    assert.equal(r.entries, 4 + 99_990 + 3);
    assert.equal(r.verdict, 'intact');
    assert.deepEqual(
      r.findings.map((f) => f.code),
      ['chain-open'],
    );
    assert.ok(peak - base < 8e6, `heap grew by ${((peak - base) / 1e6).toFixed(1)} MB`);
  });
});
