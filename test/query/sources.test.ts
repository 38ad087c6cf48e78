import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { orderFiles } from '../../src/index.js';
import { readLines } from '../../src/query/sources.js';
import { tempDir } from '../helpers.js';

describe('orderFiles', () => {
  const cases: { name: string; input: string[]; expected: string[] }[] = [
    {
      name: 'numbered rotations: highest number (oldest) first, live file last',
      input: ['a/audit.jsonl', 'a/audit.jsonl.1', 'a/audit.jsonl.10.gz', 'a/audit.jsonl.2.gz'],
      expected: ['a/audit.jsonl.10.gz', 'a/audit.jsonl.2.gz', 'a/audit.jsonl.1', 'a/audit.jsonl'],
    },
    {
      name: 'dated rotations by date, before the live file',
      input: ['audit.jsonl', 'audit.jsonl-20240302.gz', 'audit.jsonl-20240301'],
      expected: ['audit.jsonl-20240301', 'audit.jsonl-20240302.gz', 'audit.jsonl'],
    },
    {
      name: 'separate sets keep the order they were named in',
      input: ['b.jsonl', 'a.jsonl.1', 'a.jsonl', 'b.jsonl.1'],
      expected: ['b.jsonl.1', 'b.jsonl', 'a.jsonl.1', 'a.jsonl'],
    },
    { name: 'a file named twice is read once', input: ['x.jsonl', 'x.jsonl'], expected: ['x.jsonl'] },
    {
      name: 'the same name in two folders is two sets',
      input: ['p/x.jsonl', 'q/x.jsonl.1'],
      expected: ['p/x.jsonl', 'q/x.jsonl.1'],
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(orderFiles(c.input), c.expected));
});

async function collect(files: string[]) {
  const out: unknown[] = [];
  for await (const b of readLines(files))
    out.push('error' in b ? { file: b.file, lines: b.lines, code: (b.error as NodeJS.ErrnoException).code } : b);
  return out;
}

describe('readLines', () => {
  const dir = tempDir('ppa-lines-');
  it('reads plain and gzip files, and says whether each ended with a newline', async () => {
    const plain = join(dir, 'a.jsonl');
    const gz = join(dir, 'a.jsonl.1.gz');
    writeFileSync(plain, 'one\ntwo');
    writeFileSync(gz, gzipSync('zero\n€\n'));
    assert.deepEqual(await collect([gz, plain]), [
      { file: gz, first: 1, lines: ['zero', '€'] },
      { file: gz, endsWithNewline: true },
      { file: plain, first: 1, lines: ['one'] },
      { file: plain, first: 2, lines: ['two'] },
      { file: plain, endsWithNewline: false },
    ]);
  });
  it('a gzip file is recognised by its bytes, whatever its name', async () => {
    const f = join(dir, 'compressed-without-suffix');
    writeFileSync(f, gzipSync('x\n'));
    assert.deepEqual(await collect([f]), [
      { file: f, first: 1, lines: ['x'] },
      { file: f, endsWithNewline: true },
    ]);
  });
  it('a missing file is reported and the next one still read', async () => {
    const ok = join(dir, 'ok.jsonl');
    writeFileSync(ok, 'y\n');
    const missing = join(dir, 'missing.jsonl');
    assert.deepEqual(await collect([missing, ok]), [
      { file: missing, lines: 0, code: 'ENOENT' },
      { file: ok, first: 1, lines: ['y'] },
      { file: ok, endsWithNewline: true },
    ]);
  });
  it('a corrupt gzip stream is reported after the lines read before it', async () => {
    const f = join(dir, 'bad.gz');
    const z = gzipSync(`${'line\n'.repeat(1000)}`);
    writeFileSync(f, Buffer.concat([z.subarray(0, z.length - 12), Buffer.from('garbage!')]));
    const out = (await collect([f])) as { code?: string }[];
    const last = out[out.length - 1] as { code?: string; file: string };
    assert.equal(last.file, f);
    assert.ok(last.code?.startsWith('Z_'), `a zlib error, got ${JSON.stringify(last)}`);
  });
});
