import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createAuditLog, ErrorCodes } from '../../src/index.js';
import { SpoolFile } from '../../src/store/spool.js';
import { sleep, tempDir } from '../helpers.js';
import { insertAfter, writeLog } from './log-files.js';

const dir = tempDir('ppa-spool-');

describe('the spool file read by the shipper', () => {
  it('parses a large batch in slices, letting the event loop run between them (PostgreSQL is fed meanwhile)', async () => {
    const file = join(dir, 'big.jsonl');
    const lines = await writeLog(file, 3000);
    const f = await SpoolFile.open(file, 1 << 16);
    try {
      // Turns of the event loop counted from the moment the file's bytes are in: those of the parse alone.
      const fh = (f as unknown as { fh: FileHandle }).fh;
      const read = fh.read.bind(fh);
      let bytesIn = false;
      (fh as { read: unknown }).read = async (...args: Parameters<FileHandle['read']>) => {
        const r = await read(...args);
        bytesIn = true;
        return r;
      };
      let turns = 0;
      let done = false;
      const spin = () => {
        if (done) return;
        if (bytesIn) turns++;
        setImmediate(spin);
      };
      setImmediate(spin);
      const c = await f.read(0, 4 * 1024 * 1024, 5000, 'test');
      done = true;
      assert.equal(c.batch.ends.length, lines, 'every line is a row');
      assert.equal(c.to, statSync(file).size, 'to the end of the file');
      assert.equal(c.raw.length, 0);
      // One turn every 256 lines at least (a parse in one go lets none run).
      assert.ok(turns >= Math.floor(lines / 256) - 1, `${turns} turns of the event loop while ${lines} lines were parsed`);
    } finally {
      await f.close();
    }
  });

  it('reads past every line longer than a batch, also after the first one grew its buffer', async () => {
    const file = join(dir, 'long.jsonl');
    const lines = await writeLog(file, 10);
    // Not entries: each is a raw piece. Longer than the 4 MiB a batch reads, the second shorter than the
    // buffer the first one left behind (it used to read as an unfinished tail there, for ever).
    insertAfter(file, 3, 'x'.repeat(5 * 1024 * 1024));
    insertAfter(file, 7, 'y'.repeat(4.5 * 1024 * 1024));
    insertAfter(file, 10, 'z'.repeat(17 * 1024 * 1024));
    const size = statSync(file).size;
    const f = await SpoolFile.open(file, 1 << 16);
    let rows = 0;
    const raw: number[] = [];
    try {
      let at = 0;
      for (let reads = 0; at < size; reads++) {
        assert.ok(reads < 20, `stuck at offset ${at} of ${size}`);
        const c = await f.read(at, 4 * 1024 * 1024, 5000, 'test');
        assert.ok(c.to > at, `no progress at offset ${at} of ${size}`);
        rows += c.batch.ends.length;
        for (const p of c.raw) raw.push(p.length);
        at = c.to;
      }
    } finally {
      await f.close();
    }
    assert.equal(rows, lines, 'every entry is a row');
    // (a line over 16 MiB is stored as its first 16 MiB, with its whole length)
    assert.deepEqual(raw, [5 * 1024 * 1024, 4.5 * 1024 * 1024, 17 * 1024 * 1024]);
  });
});

describe('the lag of a shipper whose store never answered', () => {
  it('counts the whole file (it read 0 while a backlog built up)', async () => {
    const file = join(dir, 'outage.jsonl');
    const nowhere = `postgresql://app@/audit?host=${encodeURIComponent(join(dir, 'no-such-socket-dir'))}`;
    const log = createAuditLog({ filename: file, postgres: nowhere });
    const shipper = log.shipper;
    assert.ok(shipper);
    for (let i = 0; i < 100; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/e/${i}` });
    await log.drained();
    const size = statSync(file).size;
    let lag = shipper.lag;
    for (let i = 0; i < 100 && lag.bytes < size; i++) {
      await sleep(50);
      lag = shipper.lag;
    }
    assert.ok(shipper.outage, 'the store is unreachable');
    assert.ok(lag.bytes >= size, `lag ${lag.bytes} bytes with ${size} in the file`);
    assert.ok(lag.ms > 0);
    await assert.rejects(log.close({ shipTimeout: 1 }), (e: { code: string }) => e.code === ErrorCodes.AUDIT_SHIP_TIMEOUT);
  });
});
