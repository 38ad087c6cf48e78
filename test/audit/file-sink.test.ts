import assert from 'node:assert/strict';
import { appendFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileSink, type Written } from '../../src/audit/file-sink.js';
import { tempDir } from '../helpers.js';

const dir = tempDir('ppa-sink-');
let files = 0;

/** A sink on a fresh file whose tracker records what it is told. */
function tracked(initial = ''): { sink: FileSink; file: string; told: (Written | undefined | 'closed')[] } {
  const file = join(dir, `${++files}.jsonl`);
  if (initial !== '') writeFileSync(file, initial);
  const sink = new FileSink({ filename: file });
  const told: (Written | undefined | 'closed')[] = [];
  sink.tracker = { written: (w) => told.push(w), closed: () => told.push('closed') };
  sink.open('start');
  return { sink, file, told };
}

function line(sink: FileSink, text: string): void {
  sink.out.utf8(text);
  sink.endLine();
}

describe('file sink: where each write lands', () => {
  it('tells the byte range and the lines of every write, or that it is not known', () => {
    type Landed = Omit<Written, 'ino' | 'dev'> | undefined;
    const cases: { name: string; initial?: string; foreign?: string; expected: Landed[] }[] = [
      {
        name: 'two writes of its own, one after the other',
        expected: [
          { from: 0, to: 8, lines: 2 },
          { from: 8, to: 12, lines: 1 },
        ],
      },
      {
        name: 'a file that held lines, and one that ended in a torn fragment (ended by the sink)',
        initial: 'old\ntor',
        expected: [
          { from: 8, to: 16, lines: 2 },
          { from: 16, to: 20, lines: 1 },
        ],
      },
      {
        name: 'another process appended between the writes',
        foreign: 'other\n',
        expected: [{ from: 0, to: 8, lines: 2 }, undefined],
      },
    ];
    for (const c of cases) {
      const { sink, file, told } = tracked(c.initial);
      const { ino, dev } = statSync(file);
      line(sink, 'aaa');
      line(sink, 'bbb');
      sink.flush();
      if (c.foreign) appendFileSync(file, c.foreign);
      line(sink, 'ccc');
      sink.flush();
      const want = c.expected.map((w) => (w === undefined ? w : { ino, dev, ...w }));
      assert.deepEqual(told, want, c.name);
      sink.closeSync();
    }
  });

  it('says so when it closes its descriptor (rotation, reopen): inode numbers are reused', () => {
    const { sink, told } = tracked();
    line(sink, 'aaa');
    sink.flush();
    sink.open('reopen');
    assert.deepEqual(
      told.map((t) => (typeof t === 'object' ? 'written' : t)),
      ['written', 'closed'],
    );
    sink.closeSync();
  });
});
