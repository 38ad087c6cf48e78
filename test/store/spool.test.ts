import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SpoolFile } from '../../src/store/spool.js';
import { tempDir } from '../helpers.js';
import { writeLog } from './log-files.js';

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
});
