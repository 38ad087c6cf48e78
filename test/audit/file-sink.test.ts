import assert from 'node:assert/strict';
import fs, {
  appendFileSync,
  copyFileSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileSink, type Opened, type Written } from '../../src/audit/file-sink.js';
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

describe('file sink: a write cut short', () => {
  /** Runs `body` with the next write of more than one byte to any descriptor cut at byte `at` of its buffer. */
  function cutOnce(at: (buf: Buffer) => number, body: () => void): void {
    const real = fs.writeSync;
    let cut = false;
    (fs as { writeSync: unknown }).writeSync = (fd: number, buf: Buffer, offset = 0, length = buf.length - offset) => {
      if (cut || length <= 1) return real(fd, buf, offset, length);
      cut = true;
      return real(fd, buf, offset, at(buf.subarray(offset, offset + length)));
    };
    try {
      body();
    } finally {
      fs.writeSync = real;
    }
  }
  const lines = (n: number) => Array.from({ length: n }, (_, i) => `{"n":${i},"pad":"${'x'.repeat(40)}"}`);

  it('right before a newline: the line stays once, only its newline follows (not the line again)', () => {
    const { sink, file } = tracked();
    const want = lines(3);
    for (const l of want) line(sink, l);
    cutOnce(
      (b) => b.indexOf(0x0a, b.indexOf(0x0a) + 1), // the second line's newline
      () => sink.flush(),
    );
    sink.closeSync();
    assert.equal(readFileSync(file, 'utf8'), `${want.join('\n')}\n`);
  });

  it('inside a line: the fragment is ended by a newline and the line written again whole', () => {
    const { sink, file } = tracked();
    const want = lines(3);
    for (const l of want) line(sink, l);
    cutOnce(
      (b) => b.indexOf(0x0a) + 10,
      () => sink.flush(),
    );
    sink.closeSync();
    const [first, second, ...rest] = want;
    assert.equal(readFileSync(file, 'utf8'), `${first}\n${(second as string).slice(0, 9)}\n${second}\n${rest.join('\n')}\n`);
  });
});

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

describe('file sink: rotation noticed without reopen()', () => {
  const cases: {
    name: string;
    rotate: (file: string) => void;
    reason: Opened['reason'] | undefined;
    /** What the rotated copy holds afterwards, if there is one. */
    kept?: string;
  }[] = [
    {
      name: 'renamed (what logrotate does by default)',
      rotate: (f) => renameSync(f, `${f}.1`),
      reason: 'rotated',
      kept: 'aaa\n',
    },
    { name: 'removed', rotate: (f) => unlinkSync(f), reason: 'rotated' },
    {
      name: 'copytruncate',
      rotate: (f) => {
        copyFileSync(f, `${f}.1`);
        truncateSync(f, 0);
      },
      reason: 'truncated',
      kept: 'aaa\n',
    },
    { name: 'cut in place with no copy', rotate: (f) => truncateSync(f, 0), reason: 'truncated' },
    { name: 'another writer appended (not a rotation)', rotate: (f) => appendFileSync(f, 'other\n'), reason: undefined },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.reason === undefined ? 'the file stays open' : `reopened at the next batch as ${c.reason}`}`, () => {
      const file = join(dir, `${++files}.jsonl`);
      const sink = new FileSink({ filename: file });
      const opened: Opened['reason'][] = [];
      sink.on('opened', (o: Opened) => opened.push(o.reason));
      sink.open('start');
      line(sink, 'aaa');
      sink.flush();
      assert.equal(sink.follow(), false, 'nothing happened yet');
      c.rotate(file);
      assert.equal(sink.follow(), c.reason !== undefined, 'noticed before the next batch');
      assert.deepEqual(opened, c.reason === undefined ? ['start'] : ['start', c.reason]);
      line(sink, 'bbb');
      sink.flush();
      assert.equal(sink.follow(), false, 'and only once');
      sink.closeSync();
      const now = readFileSync(file, 'utf8');
      assert.ok(now.endsWith('bbb\n'), `the next line is in the file at filename: ${JSON.stringify(now)}`);
      if (c.reason !== undefined) assert.ok(!now.includes('aaa'), 'and only the lines after the rotation');
      if (c.kept !== undefined) assert.equal(readFileSync(`${file}.1`, 'utf8'), c.kept);
    });
  }
});
