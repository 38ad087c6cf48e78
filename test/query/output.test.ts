// A long answer to a slow reader: the output waits for the pipe, and leaves no listener behind per wait.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { Output } from '../../src/cli/output.js';

describe('CLI output to a slow pipe', () => {
  it('waits for drain each time the pipe is full, with no listener left over from a wait', async () => {
    const chunks: string[] = [];
    const slow = new Writable({
      highWaterMark: 16,
      write(chunk, _enc, cb) {
        chunks.push(String(chunk));
        setImmediate(cb);
      },
    });
    const out = new Output(slow);
    const base = { error: slow.listenerCount('error'), close: slow.listenerCount('close'), drain: slow.listenerCount('drain') };
    for (let i = 0; i < 200; i++) {
      await out.write(`${'x'.repeat(70_000)}\n`);
    }
    await out.flush();
    assert.equal(chunks.length, 200, 'every write reached the reader');
    assert.deepEqual(
      { error: slow.listenerCount('error'), close: slow.listenerCount('close'), drain: slow.listenerCount('drain') },
      base,
    );
  });
});
