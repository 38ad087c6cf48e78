import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Chain, ownEntry } from '../../src/audit/chain.js';
import { type AuditFields, toEntry } from '../../src/audit/entry.js';
import { LineBuffer } from '../../src/audit/line-buffer.js';
import { Handoff } from '../../src/store/handoff.js';
import { SpoolFile } from '../../src/store/spool.js';
import { tempDir } from '../helpers.js';

const SOURCE = 'host-a:/var/log/app/audit.jsonl';
const WRITER = { service: 'ehr-api', host: 'host-a' };
const dir = tempDir('ppa-handoff-');
let files = 0;

/** One writer's chain sealing `entries` (after its start entry), each line handed over as the audit log does. */
function seal(entries: AuditFields[]): { lines: Buffer[]; handoff: Handoff; chain: Chain } {
  const chain = new Chain(WRITER);
  const handoff = new Handoff({ chain: chain.id, ...WRITER });
  const out = new LineBuffer();
  const lines: Buffer[] = [];
  for (const e of [ownEntry('audit-log-started', { pid: 1 }), ...entries.map(toEntry)]) {
    const start = out.pos;
    chain.seal(e, out, false);
    handoff.add(e, out.buf, start, out.pos, chain.lastHash);
    lines.push(Buffer.from(out.buf.subarray(start, out.pos)));
  }
  return { lines, handoff, chain };
}

/** Counts the rows `handoff` gives. */
function counted(handoff: Handoff): { taken: number } {
  const n = { taken: 0 };
  const take = handoff.take.bind(handoff);
  handoff.take = (...a) => {
    const r = take(...a);
    if (r) n.taken++;
    return r;
  };
  return n;
}

/** The file of `lines`, read as the shipper reads it, without and with the handed rows. */
async function readBoth(lines: Buffer[], handoff: Handoff) {
  const file = join(dir, `${++files}.jsonl`);
  writeFileSync(file, Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])));
  const f = await SpoolFile.open(file, 1 << 20);
  try {
    const parsed = await f.read(0, 1 << 24, 1e7, SOURCE);
    const handed = await f.read(0, 1 << 24, 1e7, SOURCE, handoff);
    return { parsed, handed };
  } finally {
    await f.close();
  }
}

function assertSame(parsed: Awaited<ReturnType<typeof readBoth>>['parsed'], handed: typeof parsed, name: string): void {
  assert.ok(parsed.batch.data.equals(handed.batch.data), `${name}: the same COPY data`);
  assert.deepEqual(handed.batch.ends, parsed.batch.ends, name);
  assert.deepEqual(handed.months, parsed.months, name);
  assert.deepEqual(handed.skipped, parsed.skipped, name);
  assert.equal(handed.to, parsed.to, name);
}

const request: AuditFields = {
  category: 'web',
  action: 'http-request',
  outcome: 'success',
  method: 'GET',
  path: '/patients/7/record',
  route: '/patients/:id/record',
  status: 200,
  clientIp: '203.0.113.9',
  clientPort: 41000,
  peerAddress: '10.0.0.1',
  peerPort: 5000,
  userAgent: 'curl/8.5',
  userId: 'u-1',
  requestId: 'r-1',
  httpVersion: '1.1',
  domain: 'ehr.example.org',
  duration: 1234,
};

describe('rows handed over by the writer', () => {
  it('are the rows of their lines read back from the file, byte for byte', async () => {
    const cases: { name: string; entry: Partial<AuditFields>; handed: boolean }[] = [
      { name: 'a request', entry: {}, handed: true },
      {
        name: 'few members',
        entry: { method: undefined, path: undefined, clientIp: undefined, status: undefined },
        handed: true,
      },
      { name: 'unicode and U+FFFD', entry: { userId: 'Zoë 🩺 \uFFFD', path: '/ü/€' }, handed: true },
      { name: 'IPv6 with a zone (inet has none)', entry: { clientIp: 'fe80::1%eth0', peerAddress: '::1' }, handed: true },
      {
        name: 'a long path and user (cut for the index)',
        entry: { path: `/${'x'.repeat(3000)}`, userId: 'u'.repeat(900) },
        handed: true,
      },
      { name: 'a long route (cut for its column)', entry: { route: `/${'r'.repeat(5000)}` }, handed: true },
      { name: 'a year PostgreSQL cannot partition (-infinity)', entry: { timestamp: Date.UTC(12000, 0, 1) }, handed: true },
      { name: 'a year before 1000', entry: { timestamp: Date.UTC(999, 11, 31) }, handed: true },
      { name: 'status 0 and 999', entry: { status: 0, bytes: 0, requestBytes: 7 }, handed: true },
      {
        name: 'TLS and error members',
        entry: { tlsVersion: 'TLSv1.3', tlsCipher: 'X', tlsClientCn: 'dr x', errorType: 'E' },
        handed: true,
      },
      // A backslash in the line (JSON escapes): read from the file, as COPY escapes it there.
      { name: 'quotes and backslashes', entry: { userAgent: 'a "b" \\c', path: '/p\\q' }, handed: false },
      { name: 'a NUL and control characters', entry: { userId: 'a\u0000b\u0001' }, handed: false },
      { name: 'a lone surrogate', entry: { userId: 'x\uD800y' }, handed: false },
    ];
    for (const c of cases) {
      const { lines, handoff } = seal([{ ...request, ...c.entry } as AuditFields]);
      const n = counted(handoff);
      const { parsed, handed } = await readBoth(lines, handoff);
      assert.equal(parsed.batch.ends.length, 2, c.name);
      assertSame(parsed, handed, c.name);
      // The start entry (its own audit members) is always parsed.
      assert.equal(n.taken, c.handed ? 1 : 0, c.name);
    }
  });

  it('any entry: the same rows either way (property)', async () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'binary' }));
    const entry = fc.record(
      {
        timestamp: fc.integer({ min: -8.64e15, max: 8.64e15 }),
        action: fc.string({ minLength: 1, maxLength: 128 }),
        outcome: fc.constantFrom('success' as const, 'failure' as const, 'unknown' as const),
        duration: fc.nat(),
        clientIp: fc.oneof(fc.ipV4(), fc.ipV6()),
        clientPort: fc.integer({ min: 0, max: 65535 }),
        peerAddress: fc.oneof(fc.ipV4(), fc.ipV6()),
        method: text,
        path: text,
        route: text,
        status: fc.integer({ min: 0, max: 999 }),
        userId: text,
        userAgent: text,
        query: text,
        errorMessage: text,
      },
      { requiredKeys: ['action', 'outcome'] },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { minLength: 1, maxLength: 20 }), async (entries) => {
        const { lines, handoff } = seal(entries.map((e) => ({ category: 'web', ...e })));
        const n = counted(handoff);
        const { parsed, handed } = await readBoth(lines, handoff);
        assert.equal(parsed.batch.ends.length, entries.length + 1);
        assertSame(parsed, handed, 'generated');
        assert.equal(n.taken, lines.slice(1).filter((l) => !l.includes(0x5c)).length, 'every line without a backslash');
      }),
      { numRuns: 100 },
    );
  });

  it('takes a row only for its own line: other writers, lines before, lines never written, a torn line', async () => {
    const { lines: other } = seal([request, request]);
    const { lines, handoff } = seal(Array.from({ length: 8 }, (_, i) => ({ ...request, path: `/p/${i}` })));
    const n = counted(handoff);
    // lines[1..8]: the requests. [2] was sealed and never reached this file; [1] was in the file before the
    // shipper started (not handed: a line of the same chain read before the handed ones); another writer's
    // lines and a torn fragment of [5] (rewritten whole after it) between them.
    const file = [
      other[0],
      lines[0],
      other[1],
      lines[3],
      (lines[5] as Buffer).subarray(0, 100),
      lines[4],
      lines[5],
      other[2],
      lines[6],
      lines[7],
      lines[8],
    ] as Buffer[];
    // The first rows (start entry, [1], [2]) were not handed: as if sealed before the hand-over began.
    handoff.passed(2);
    const { parsed, handed } = await readBoth(file, handoff);
    assertSame(parsed, handed, 'mixed');
    assert.equal(parsed.skipped.length, 1, 'the torn fragment');
    // [3], read while the row of [2] waited, is parsed and lets go of the rows up to its own.
    assert.equal(n.taken, 5, 'lines 4 to 8 from the hand-over');
  });

  it('lets go of rows whose lines the file does not hold, and keeps taking the later ones', async () => {
    const { lines, handoff } = seal(Array.from({ length: 6 }, (_, i) => ({ ...request, path: `/q/${i}` })));
    const n = counted(handoff);
    // [1] and [2] went elsewhere (a file rotated away): [3] read from the file lets go of them.
    const { parsed, handed } = await readBoth([lines[0], lines[3], lines[4], lines[5], lines[6]] as Buffer[], handoff);
    assertSame(parsed, handed, 'a gap');
    assert.equal(n.taken, 3, '[4], [5] and [6] ([3], read while the row of [1] waited, is parsed)');
  });

  it('keeps at most its bound: past it, lines are read from the file, with the same rows', async () => {
    const { lines, handoff } = seal(Array.from({ length: 14_000 }, (_, i) => ({ ...request, path: `/b/${i}` })));
    const n = counted(handoff);
    const { parsed, handed } = await readBoth(lines, handoff);
    assertSame(parsed, handed, 'past the bound');
    assert.ok(n.taken > 1000 && n.taken < 14_000, `some handed, not all: ${n.taken}`);
  });
});
