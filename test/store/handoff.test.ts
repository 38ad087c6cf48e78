import assert from 'node:assert/strict';
import { renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type AuditFields, type AuditLog, createAuditLog, ErrorCodes } from '../../src/index.js';
import type { Handoff } from '../../src/store/handoff.js';
import { SpoolFile } from '../../src/store/spool.js';
import { tempDir } from '../helpers.js';
import { requestFields } from './log-files.js';

const dir = tempDir('ppa-handoff-');
/** The first instant PostgreSQL's timestamptz holds: 4714-11-24 BC (ISO year -4713). */
const PG_FIRST_MS = Date.UTC(-4713, 10, 24);
let files = 0;
// The shipper never reaches this database: what it was handed stays until the test reads it.
const NOWHERE = `postgresql://app@/audit?host=${encodeURIComponent(join(dir, 'no-such-socket-dir'))}`;

/** A log shipping to nowhere, its file and the rows it hands over (counted as they are taken). */
function shippingLog(extra: Record<string, unknown> = {}): {
  log: AuditLog;
  file: string;
  handoff: Handoff;
  taken: { rows: number };
} {
  const file = join(dir, `${++files}.jsonl`);
  const log = createAuditLog({ filename: file, service: 'ehr-api', host: 'host-a', postgres: NOWHERE, ...extra });
  const shipper = log.shipper;
  assert.ok(shipper);
  const handoff = shipper.handOver({ chain: log.chainId, service: 'ehr-api', host: 'host-a' });
  const taken = { rows: 0 };
  const take = handoff.take.bind(handoff);
  handoff.take = (...a) => {
    const c = take(...a);
    taken.rows += c?.batch.ends.length ?? 0;
    return c;
  };
  return { log, file, handoff, taken };
}

async function closed(log: AuditLog): Promise<void> {
  await assert.rejects(log.close({ shipTimeout: 1 }), (e: { code: string }) => e.code === ErrorCodes.AUDIT_SHIP_TIMEOUT);
}

interface Read {
  data: Buffer;
  /** Where each row ends in `data`. */
  ends: number[];
  months: string[];
  /** Raw pieces (lines that are not entry rows), each as file offset and bytes. */
  raw: string[];
  to: number;
  /** Reads it took. */
  chunks: number;
}

/** The whole file read as the shipper reads it, chunk after chunk, with or without the rows handed over. */
async function readAll(file: string, source: string, handoff?: Handoff): Promise<Read> {
  const f = await SpoolFile.open(file, 1 << 16);
  const parts: Buffer[] = [];
  const ends: number[] = [];
  const months = new Set<string>();
  const raw: string[] = [];
  let at = 0;
  let length = 0;
  let chunks = 0;
  try {
    const size = statSync(file).size;
    while (at < size) {
      const c = await f.read(at, 1 << 22, 700, source, handoff);
      assert.ok(c.to > at, `progress at ${at}`);
      parts.push(c.batch.data);
      for (const e of c.batch.ends) ends.push(length + e);
      length += c.batch.data.length;
      for (const m of c.months) months.add(m);
      // (`before` counts the rows of its own batch: here, of the whole file)
      for (const p of c.raw) raw.push(JSON.stringify({ ...p, before: ends.length - c.batch.ends.length + p.before }));
      at = c.to;
      chunks++;
    }
  } finally {
    await f.close();
  }
  return { data: Buffer.concat(parts), ends, months: [...months].sort(), raw, to: at, chunks };
}

/** The rows handed over for `file` and the rows of reading it back are the same, byte for byte. */
async function assertSame(log: AuditLog, file: string, handoff: Handoff, name: string): Promise<{ parsed: Read; handed: Read }> {
  const source = log.shipper?.source as string;
  const handed = await readAll(file, source, handoff);
  const parsed = await readAll(file, source);
  // Row by row, so that a difference shows as one row's text.
  const row = (r: Read, i: number) => r.data.toString('utf8', i === 0 ? 0 : r.ends[i - 1], r.ends[i]);
  for (let i = 0; i < Math.max(handed.ends.length, parsed.ends.length); i++) {
    assert.equal(row(handed, i), row(parsed, i), `${name}: row ${i + 1}`);
  }
  assert.ok(handed.data.equals(parsed.data), `${name}: byte for byte`);
  assert.deepEqual(handed.ends, parsed.ends, `${name}: the same rows`);
  assert.deepEqual(handed.months, parsed.months, name);
  assert.deepEqual(handed.raw, parsed.raw, name);
  assert.equal(handed.to, parsed.to, name);
  return { parsed, handed };
}

const request: AuditFields = { category: 'web', action: 'http-request', outcome: 'success', ...requestFields };

describe('rows handed over by the audit log to its shipper', () => {
  it('are the rows of their lines read back from the file, byte for byte', async () => {
    const cases: { name: string; entry: Partial<AuditFields>; rows?: number }[] = [
      { name: 'a request', entry: {} },
      { name: 'few members', entry: { method: undefined, path: undefined, clientIp: undefined, status: undefined } },
      { name: 'unicode and U+FFFD', entry: { userId: 'Zoë 🩺 \uFFFD', path: '/ü/€' } },
      { name: 'IPv6 with a zone (inet has none)', entry: { clientIp: 'fe80::1%eth0', peerAddress: '::1' } },
      { name: 'a long path and user (cut for the index)', entry: { path: `/${'x'.repeat(3000)}`, userId: 'u'.repeat(900) } },
      { name: 'a long route (cut for its column)', entry: { route: `/${'r'.repeat(5000)}` } },
      { name: 'a year past 9999 (no monthly partition)', entry: { timestamp: Date.UTC(12000, 0, 1) } },
      { name: 'a year before 1000', entry: { timestamp: Date.UTC(999, 11, 31) } },
      { name: 'the first millisecond of year 1000', entry: { timestamp: Date.UTC(1000, 0, 1) } },
      { name: 'the last millisecond before year 1000', entry: { timestamp: Date.UTC(1000, 0, 1) - 1 } },
      { name: 'the last millisecond of year 9999', entry: { timestamp: Date.UTC(10000, 0, 1) - 1 } },
      { name: 'the first millisecond of year 10000', entry: { timestamp: Date.UTC(10000, 0, 1) } },
      { name: 'a year BC', entry: { timestamp: Date.UTC(-40, 5, 1) } },
      // Before 4714-11-24 BC: no timestamptz holds it, so the line is kept as a raw piece, read from the file.
      { name: 'a time PostgreSQL cannot hold', entry: { timestamp: -8.64e15 }, rows: 1 },
      { name: 'status 0 and sizes', entry: { status: 0, bytes: 0, requestBytes: 7 } },
      { name: 'TLS and error members', entry: { tlsVersion: 'TLSv1.3', tlsCipher: 'X', tlsClientCn: 'dr x', errorType: 'E' } },
      { name: 'quotes and backslashes (COPY escapes)', entry: { userAgent: 'a "b" \\c', path: '/p\\q' } },
      { name: 'a NUL and control characters', entry: { userId: 'a\u0000b\u0001', route: 'tab\there' } },
      { name: 'a lone surrogate', entry: { userId: 'x\uD800y' } },
    ];
    for (const c of cases) {
      const { log, file, handoff, taken } = shippingLog();
      log.write({ ...request, ...c.entry } as AuditFields);
      await log.drained();
      const { parsed } = await assertSame(log, file, handoff, c.name);
      // The start entry (the log's own members) and the request (unless it is a raw piece).
      assert.equal(parsed.ends.length, c.rows ?? 2, c.name);
      assert.equal(parsed.raw.length, 2 - (c.rows ?? 2), c.name);
      // A write with a line that is no row is read from the file, whole.
      assert.equal(taken.rows, c.rows === undefined ? 2 : 0, `${c.name}: from the hand-over`);
      await closed(log);
    }
  });

  it('any entries, over several writes: the same rows either way (property)', async () => {
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
      fc.asyncProperty(fc.array(fc.array(entry, { maxLength: 12 }), { minLength: 1, maxLength: 4 }), async (writes) => {
        const { log, file, handoff, taken } = shippingLog();
        let rows = 0;
        let raw = 0;
        let handedRows = 0;
        for (const [w, batch] of writes.entries()) {
          for (const e of batch) log.write({ category: 'web', ...e });
          await log.drained(); // one write each (the first with the start entry)
          const lines = batch.length + (w === 0 ? 1 : 0);
          const cannot = batch.filter((e) => e.timestamp !== undefined && e.timestamp < PG_FIRST_MS).length;
          rows += lines - cannot;
          raw += cannot;
          // A write with a line that is no row (a raw piece) is read from the file, whole.
          if (cannot === 0) handedRows += lines;
        }
        const { parsed, handed } = await assertSame(log, file, handoff, 'generated');
        assert.deepEqual([parsed.ends.length, parsed.raw.length], [rows, raw]);
        assert.equal(taken.rows, handedRows, 'every row of a write without raw pieces from the hand-over');
        // The writes follow one another: one look takes them all (up to its 700 rows), as the file read would.
        if (raw === 0) assert.equal(handed.chunks, parsed.chunks, 'as many reads');
        await closed(log);
      }),
      { numRuns: 25 },
    );
  });

  it('lines another process wrote meanwhile: the writes around them are read from the file, the rest handed', async () => {
    const { log, file, handoff, taken } = shippingLog();
    const other = createAuditLog({ filename: file, service: 'other' }); // another process's writer, in effect
    for (let i = 0; i < 5; i++) {
      log.write({ ...request, path: `/a/${i}` });
      await log.drained();
    }
    other.write({ ...request, path: '/other' });
    await other.drained();
    for (let i = 0; i < 5; i++) {
      log.write({ ...request, path: `/b/${i}` });
      await log.drained();
    }
    await other.close();
    const { parsed } = await assertSame(log, file, handoff, 'interleaved');
    // 1 + 5 + 5 lines of this log, 1 + 1 + 1 of the other (start, request, stop).
    assert.equal(parsed.ends.length, 14);
    // The file grew by more than this log's write /b/0 (the other's lines came first): where it landed is not
    // known, so it is read from the file; every other write of this log is handed over (its start entry, /a/*
    // and /b/1-4), and the other's lines are read from the file.
    assert.equal(taken.rows, 10);
    await closed(log);
  });

  it('after a rotation, the rest of the renamed file is read from it; the new file is handed over', async () => {
    const { log, file, handoff, taken } = shippingLog();
    log.write({ ...request, path: '/before' });
    await log.drained();
    renameSync(file, `${file}.1`);
    log.write({ ...request, path: '/after' });
    await log.drained();
    const rotated = await readAll(`${file}.1`, log.shipper?.source as string, handoff);
    assert.equal(rotated.ends.length, 2); // read from the file: its rows were let go of at the rotation
    assert.equal(taken.rows, 0);
    const { parsed } = await assertSame(log, file, handoff, 'the new file');
    assert.equal(parsed.ends.length, 2); // the reopen entry and /after
    assert.equal(taken.rows, 2);
    await closed(log);
  });

  it('keeps at most its bound while the shipper is behind: past it, lines are read from the file', async () => {
    const { log, file, handoff, taken } = shippingLog();
    let n = 1;
    for (let w = 0; w < 40; w++) {
      for (let i = 0; i < 500; i++, n++) log.write({ ...request, path: `/bound/${w}/${i}`, userAgent: 'x'.repeat(200) });
      await log.drained();
    }
    const { parsed } = await assertSame(log, file, handoff, 'past the bound');
    assert.equal(parsed.ends.length, n);
    assert.ok(taken.rows > 5000 && taken.rows < n, `some handed, not all: ${taken.rows} of ${n}`);
    await closed(log);
  });
});
