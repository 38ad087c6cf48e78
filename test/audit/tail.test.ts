import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { endsWithNewline, inspectTail, type TailInfo } from '../../src/audit/tail.js';
import { joined, TestChain, type Tip } from './log-builder.js';
import { tmpFile } from './util.js';

function inspect(content: string | Buffer): TailInfo & { endsWithNewline: boolean } {
  const f = tmpFile();
  writeFileSync(f, content);
  const fd = openSync(f, 'r');
  try {
    return { ...inspectTail(fd), endsWithNewline: endsWithNewline(fd) };
  } finally {
    closeSync(fd);
  }
}

const a = new TestChain();
const lines = a.life(3);
const last = JSON.parse(lines.at(-1) as string);
const lastTip: Tip = { chain: a.id, sequence: last.event.sequence, hash: last.audit.hash };
const whole = joined(lines);
const b = new TestChain();
const other = b.start();

const c = new TestChain();
const long = [c.start(), c.request(`/${'z'.repeat(150_000)}`)];
const longTip: Tip = { chain: c.id, sequence: 2, hash: JSON.parse(long[1] as string).audit.hash };

const cases: { name: string; content: () => string | Buffer; expected: Omit<TailInfo, 'size'>; newline: boolean }[] = [
  { name: 'an empty file', content: () => '', expected: { tornBytes: 0 }, newline: true },
  { name: 'whole lines', content: () => whole, expected: { tornBytes: 0, previous: lastTip }, newline: true },
  {
    name: 'a torn tail',
    content: () => `${whole}${other.slice(0, 33)}`,
    expected: { tornBytes: 33, previous: lastTip },
    newline: false,
  },
  {
    name: 'a torn tail longer than one read',
    content: () => `${whole}{"@timestamp":"${'x'.repeat(200_000)}`,
    expected: { tornBytes: 200_015, previous: lastTip },
    newline: false,
  },
  {
    name: 'a last line longer than one read',
    content: () => `${joined([...lines, `{"@timestamp":"${'y'.repeat(100_000)}`])}`,
    expected: { tornBytes: 0 },
    newline: true,
  },
  {
    name: 'a whole entry longer than one read as the last line',
    content: () => joined(long),
    expected: { tornBytes: 0, previous: longTip },
    newline: true,
  },
  { name: 'garbage as the last line', content: () => `${whole}not json\n`, expected: { tornBytes: 0 }, newline: true },
  {
    name: 'a JSON last line that is not an entry',
    content: () => `${whole}{"@timestamp":"2026-01-01T00:00:00.000Z","msg":"x"}\n`,
    expected: { tornBytes: 0 },
    newline: true,
  },
  {
    name: 'a fragment only, no newline at all',
    content: () => other.slice(0, 50),
    expected: { tornBytes: 50 },
    newline: false,
  },
  {
    name: 'a terminated fragment as the last line',
    content: () => `${whole}${other.slice(0, 50)}\n`,
    expected: { tornBytes: 0 },
    newline: true,
  },
  {
    name: "a fragment glued before another writer's whole line",
    content: () => `${joined(lines.slice(0, -1))}${other.slice(0, 50)}${lines.at(-1)}\n`,
    expected: { tornBytes: 0, previous: lastTip },
    newline: true,
  },
  {
    name: 'CRLF line ends',
    content: () => lines.map((l) => `${l}\r\n`).join(''),
    expected: { tornBytes: 0, previous: lastTip },
    newline: true,
  },
  {
    name: 'a torn multi-byte character',
    content: () => Buffer.concat([Buffer.from(whole), Buffer.from('{"@timestamp":"€').subarray(0, 16)]),
    expected: { tornBytes: 16, previous: lastTip },
    newline: false,
  },
  {
    name: 'one whole line',
    content: () => `${lines[0]}\n`,
    expected: { tornBytes: 0, previous: { chain: a.id, sequence: 1, hash: JSON.parse(lines[0] as string).audit.hash } },
    newline: true,
  },
  {
    name: 'an edited last line whose hash member was removed',
    content: () => `${joined(lines.slice(0, -1))}${(lines.at(-1) as string).replace(/,"hash":"[0-9a-f]+"/, '')}\n`,
    expected: { tornBytes: 0 },
    newline: true,
  },
];

describe('inspectTail', () => {
  for (const c of cases) {
    it(c.name, () => {
      const content = c.content();
      const got = inspect(content);
      assert.deepEqual(got, { size: Buffer.byteLength(content), ...c.expected, endsWithNewline: c.newline });
    });
  }
});
