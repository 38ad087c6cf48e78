import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createAuditLog } from '../../src/index.js';
import { CopyWriter, copyFields, copyKeys, copyRows } from '../../src/store/encode.js';
import { RawReasons } from '../../src/store/raw.js';
import { COLUMNS, pgTimestamp, type Row, toRow, writerRow } from '../../src/store/row.js';
import { tempDir } from '../helpers.js';
import { requestFields } from './log-files.js';

/** Lines written by the audit log for `entries` (after its start entry), and its stop entry. */
async function written(entries: Record<string, unknown>[]): Promise<string[]> {
  const file = join(tempDir('ppa-row-'), 'audit.jsonl');
  const log = createAuditLog({ filename: file });
  for (const e of entries) log.write({ category: 'web', action: 'http-request', outcome: 'success', ...e });
  await log.close();
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}

const request = requestFields;

describe('rows of audit lines', () => {
  it('reads the columns of writer lines exactly as JSON.parse of the line does', async () => {
    const cases = [
      { name: 'a request', entry: request },
      {
        name: 'quotes, backslashes, tabs and newlines in strings',
        entry: { ...request, userAgent: 'a "b" \\c\td\ne\r', path: '/p\\"q' },
      },
      { name: 'unicode and escapes of control characters', entry: { ...request, userId: 'Zoë 🩺 \u0001\u2028', path: '/ü' } },
      { name: 'NUL in a text column', entry: { ...request, userId: 'a\u0000b' } },
      { name: 'IPv6 with a zone', entry: { ...request, clientIp: 'fe80::1%eth0', peerAddress: '::1' } },
      {
        name: 'TLS, error, query and body sizes',
        entry: {
          ...request,
          tlsVersion: 'TLSv1.3',
          tlsCipher: 'TLS_AES_128_GCM_SHA256',
          tlsClientCn: 'dr. "x"',
          errorType: 'E',
          errorCode: 'ECONNRESET',
          errorMessage: 'cut\n',
          query: 'a=1&b="2"',
          requestBytes: 10,
          bytes: 20,
        },
      },
      { name: 'few members', entry: {} },
      { name: 'a long path (cut for the index)', entry: { ...request, path: `/${'x'.repeat(2000)}` } },
    ];
    for (const c of cases) {
      const lines = await written([c.entry]);
      assert.equal(lines.length, 3, c.name);
      for (const [i, line] of lines.entries()) {
        const fast = toRow(line);
        assert.equal(typeof fast, 'object', `${c.name}: ${String(fast)}`);
        // The request entry is read by the layout; start and stop entries (extra audit members) are parsed.
        assert.deepEqual(writerRow(line), i === 1 ? fast : undefined, `${c.name}, line ${i + 1}`);
        assert.deepEqual(fast, toRow(line, true), c.name);
      }
    }
    const [, line] = await written([request]);
    const r = toRow(line as string) as Row;
    assert.deepEqual(
      [r.sequence, r.action, r.outcome, r.clientIp, r.peerIp, r.userId, r.method, r.path, r.route, r.status],
      [2, 'http-request', 'success', '203.0.113.9', '10.0.0.1', 'u-1', 'GET', '/patients/7/record', '/patients/:id/record', 200],
    );
    assert.equal(r.hash, (line as string).slice(-67, -3));
  });

  it('lines in another layout take JSON.parse, with the same result', async () => {
    const [, line] = await written([request]);
    const l = line as string;
    const e = JSON.parse(l);
    const cases = [
      { name: 'whitespace between members', line: l.replace('"event":{', '"event": {') },
      {
        name: 'a member twice (JSON.parse keeps the last)',
        line: l.replace('"user":{"id":"u-1"}', '"user":{"id":"u-1","id":"someone-else"}'),
      },
      {
        name: 'members in another order',
        line: l.replace(/"client":\{[^}]*\},/, '').replace('"user":{', `"client":${JSON.stringify(e.client)},"user":{`),
      },
      { name: 'an extra member', line: l.replace('"user":{"id":"u-1"}', '"user":{"id":"u-1","name":"x"}') },
      { name: 'an escaped key', line: l.replace('"path":', '"p\\u0061th":') },
      { name: 'not JSON', line: l.replace('"success"', '"success') },
      { name: 'a raw control character in a string', line: l.replace('curl/8.5', 'curl/8.5\u0001') },
    ];
    for (const c of cases) {
      assert.notEqual(c.line, l, c.name);
      assert.equal(writerRow(c.line), undefined, `${c.name}: not the writers' layout`);
      assert.deepEqual(toRow(c.line), toRow(c.line, true), c.name);
    }
    assert.equal((toRow(cases[1]?.line as string) as Row).userId, 'someone-else');
    assert.equal(toRow(cases[5]?.line as string), RawReasons.TORN_FRAGMENT);
  });

  it('a line of millions of characters gets its row or its reason, never a RangeError from the pattern', async () => {
    const [, line] = await written([request]);
    const l = line as string;
    // In the writers' layout but 9 M characters long: past the pattern engine's stack, so JSON.parse reads it.
    const long = l.replace('"/patients/7/record"', `"/${'a'.repeat(9_000_000)}"`);
    const row = toRow(long) as Row;
    assert.equal(typeof row, 'object', 'an entry row');
    assert.equal(row.line, long);
    assert.deepEqual(row, toRow(long, true));
    assert.deepEqual({ ...row, line: l, path: '/patients/7/record' }, toRow(l), 'the other columns are those of the short line');
    // Started as an entry, never ended: the reason of such a piece.
    assert.equal(typeof toRow(`{"@timestamp":"${'A'.repeat(9_000_000)}`), 'string');
  });

  it('pieces that are not entry rows get the reason the verifier would give them', async () => {
    const [, line] = await written([request]);
    const l = line as string;
    const cases = [
      { name: 'foreign text', line: 'GET /admin HTTP/1.1', reason: RawReasons.NOT_AN_ENTRY },
      { name: 'JSON that is no entry', line: '{"hello":"world"}', reason: RawReasons.NOT_AN_ENTRY },
      { name: 'a cut entry', line: l.slice(0, 200), reason: RawReasons.TORN_FRAGMENT },
      { name: 'cut inside the marker', line: '{"@time', reason: RawReasons.TORN_FRAGMENT },
      { name: 'zero bytes', line: '\0\0\0\0', reason: RawReasons.TORN_FRAGMENT },
      { name: 'zero bytes and a cut marker', line: '\0\0{"@times', reason: RawReasons.TORN_FRAGMENT },
      { name: 'an entry without its hash', line: l.replace(/,"hash":"[0-9a-f]{64}"/, ''), reason: RawReasons.NOT_AN_ENTRY },
      { name: 'an entry with a trailing \\r', line: `${l}\r`, reason: RawReasons.NOT_AN_ENTRY },
      { name: 'a sequence that is no number', line: l.replace(/"sequence":\d+/, '"sequence":"x"'), reason: RawReasons.NO_CHAIN },
      {
        name: 'a chain too long to index',
        line: l.replace(/"chain":"[^"]*"/, `"chain":"${'c'.repeat(201)}"`),
        reason: RawReasons.NO_CHAIN,
      },
      {
        name: 'a time PostgreSQL cannot hold',
        line: l.replace(/"@timestamp":"[^"]*"/, '"@timestamp":"-010000-01-01T00:00:00.000Z"'),
        reason: RawReasons.TIMESTAMP_RANGE,
      },
    ];
    for (const c of cases) {
      assert.equal(toRow(c.line), c.reason, c.name);
      assert.equal(toRow(c.line, true), c.reason, `${c.name} (parsed)`);
    }
  });

  it('timestamps of any year Date#toISOString writes land as the same instant in PostgreSQL', () => {
    const cases = [
      { at: '2026-03-04T05:06:07.089Z', expected: { ts: '2026-03-04T05:06:07.089Z', month: '2026-03' } },
      { at: '+010000-01-01T00:00:00.000Z', expected: { ts: '10000-01-01T00:00:00.000Z', month: undefined } },
      { at: '+275760-09-13T00:00:00.000Z', expected: { ts: '275760-09-13T00:00:00.000Z', month: undefined } },
      { at: '+002026-03-04T05:06:07.089Z', expected: { ts: '2026-03-04T05:06:07.089Z', month: '2026-03' } },
      { at: '0999-12-31T23:59:59.999Z', expected: { ts: '0999-12-31T23:59:59.999Z', month: undefined } },
      { at: '0000-01-01T00:00:00.000Z', expected: { ts: '0001-01-01T00:00:00.000Z BC', month: undefined } },
      { at: '-000001-06-01T12:00:00.000Z', expected: { ts: '0002-06-01T12:00:00.000Z BC', month: undefined } },
      { at: '-004713-11-24T00:00:00.000Z', expected: { ts: '4714-11-24T00:00:00.000Z BC', month: undefined } },
      { at: '-004713-11-23T23:59:59.999Z', expected: 'out-of-range' },
      { at: '-271821-04-20T00:00:00.000Z', expected: 'out-of-range' },
      { at: '+300000-01-01T00:00:00.000Z', expected: 'out-of-range' },
    ];
    for (const c of cases) assert.deepEqual(pgTimestamp(c.at), c.expected, String(c.at));
    // The expanded and early years are what the writers write (Date#toISOString) for those times.
    const written = [1, 2, 4, 5, 6, 7, 8, 9].map((i) => cases[i]?.at as string);
    for (const at of written) assert.equal(new Date(at).toISOString(), at);
  });

  it('timestamps of other writers: offsets, fractions, leap days, and what is no instant', () => {
    const cases: { name: string; at: unknown; expected: ReturnType<typeof pgTimestamp> }[] = [
      { name: 'Z', at: '2026-12-01T10:00:00.000Z', expected: { ts: '2026-12-01T10:00:00.000Z', month: '2026-12' } },
      { name: 'lower-case z and t', at: '2026-12-01t10:00:00z', expected: { ts: '2026-12-01T10:00:00Z', month: '2026-12' } },
      { name: 'a space for T', at: '2026-12-01 10:00:00Z', expected: { ts: '2026-12-01T10:00:00Z', month: '2026-12' } },
      { name: '+hh:mm', at: '2026-12-01T10:00:00.000+01:00', expected: { ts: '2026-12-01T09:00:00.000Z', month: '2026-12' } },
      { name: '-hh:mm', at: '2026-12-01T10:00:00.000-05:30', expected: { ts: '2026-12-01T15:30:00.000Z', month: '2026-12' } },
      { name: '+hhmm', at: '2026-12-01T10:00:00+0130', expected: { ts: '2026-12-01T08:30:00Z', month: '2026-12' } },
      { name: '+hh', at: '2026-12-01T10:00:00+02', expected: { ts: '2026-12-01T08:00:00Z', month: '2026-12' } },
      { name: '-00:00', at: '2026-12-01T10:00:00-00:00', expected: { ts: '2026-12-01T10:00:00Z', month: '2026-12' } },
      {
        name: 'an offset that moves it into the month before',
        at: '2026-12-01T00:30:00.5+01:00',
        expected: { ts: '2026-11-30T23:30:00.5Z', month: '2026-11' },
      },
      {
        name: 'an offset that moves it into the next year',
        at: '2026-12-31T23:30:00-01:00',
        expected: { ts: '2027-01-01T00:30:00Z', month: '2027-01' },
      },
      { name: 'into a leap day', at: '2028-03-01T00:10:00+00:20', expected: { ts: '2028-02-29T23:50:00Z', month: '2028-02' } },
      { name: 'no fraction', at: '2026-12-01T10:00:00Z', expected: { ts: '2026-12-01T10:00:00Z', month: '2026-12' } },
      { name: 'no seconds', at: '2026-12-01T10:00+01:00', expected: { ts: '2026-12-01T09:00:00Z', month: '2026-12' } },
      { name: '1 fraction digit', at: '2026-12-01T10:00:00.5Z', expected: { ts: '2026-12-01T10:00:00.5Z', month: '2026-12' } },
      {
        name: '6 fraction digits',
        at: '2026-12-01T10:00:00.123456Z',
        expected: { ts: '2026-12-01T10:00:00.123456Z', month: '2026-12' },
      },
      {
        name: '7 fraction digits (cut to microseconds)',
        at: '2026-12-01T10:00:00.1234567Z',
        expected: { ts: '2026-12-01T10:00:00.123456Z', month: '2026-12' },
      },
      {
        name: '9 fraction digits, never rounded into the next month',
        at: '2026-01-31T23:59:59.999999999Z',
        expected: { ts: '2026-01-31T23:59:59.999999Z', month: '2026-01' },
      },
      { name: 'a leap day', at: '2024-02-29T12:00:00Z', expected: { ts: '2024-02-29T12:00:00Z', month: '2024-02' } },
      {
        name: 'a leap day of a 400th year',
        at: '2000-02-29T12:00:00Z',
        expected: { ts: '2000-02-29T12:00:00Z', month: '2000-02' },
      },
      { name: 'no leap day in 2025', at: '2025-02-29T12:00:00Z', expected: 'invalid' },
      { name: 'no leap day in 1900', at: '1900-02-29T12:00:00Z', expected: 'invalid' },
      { name: 'no leap day in 2025 (with an offset)', at: '2025-02-29T12:00:00+01:00', expected: 'invalid' },
      { name: 'April 31', at: '2026-04-31T00:00:00.000Z', expected: 'invalid' },
      {
        name: 'a leap day of year 0 (1 BC)',
        at: '0000-02-29T00:00:00Z',
        expected: { ts: '0001-02-29T00:00:00Z BC', month: undefined },
      },
      {
        name: 'year 10000 with an offset',
        at: '+010000-01-01T00:30:00+01:00',
        expected: { ts: '9999-12-31T23:30:00Z', month: '9999-12' },
      },
      {
        name: 'the first instant PostgreSQL holds, with an offset',
        at: '-004713-11-24T01:00:00+01:00',
        expected: { ts: '4714-11-24T00:00:00Z BC', month: undefined },
      },
      { name: 'an offset that moves it before 4714 BC', at: '-004713-11-24T00:30:00+01:00', expected: 'out-of-range' },
      {
        name: 'the last year PostgreSQL holds',
        at: '+294276-12-31T23:59:59.999999Z',
        expected: { ts: '294276-12-31T23:59:59.999999Z', month: undefined },
      },
      { name: 'an offset that moves it past 294276', at: '+294276-12-31T23:30:00-01:00', expected: 'out-of-range' },
      {
        name: '24:00:00 is the next day',
        at: '2026-12-31T24:00:00Z',
        expected: { ts: '2027-01-01T00:00:00Z', month: '2027-01' },
      },
      { name: 'a leap second', at: '2016-12-31T23:59:60Z', expected: { ts: '2017-01-01T00:00:00Z', month: '2017-01' } },
      { name: '24:00:01', at: '2026-12-31T24:00:01Z', expected: 'invalid' },
      { name: '24:00:00.5', at: '2026-12-31T24:00:00.5Z', expected: 'invalid' },
      { name: 'hour 25', at: '2026-12-01T25:00:00Z', expected: 'invalid' },
      { name: 'minute 60', at: '2026-12-01T10:60:00Z', expected: 'invalid' },
      { name: 'second 61', at: '2026-12-01T10:00:61Z', expected: 'invalid' },
      { name: 'month 13', at: '2026-13-01T10:00:00Z', expected: 'invalid' },
      { name: 'day 0', at: '2026-12-00T10:00:00Z', expected: 'invalid' },
      { name: 'offset hour 24', at: '2026-12-01T10:00:00+24:00', expected: 'invalid' },
      { name: 'offset minute 60', at: '2026-12-01T10:00:00+01:60', expected: 'invalid' },
      { name: 'no zone (a local time: no instant)', at: '2026-12-01T10:00:00.000', expected: 'invalid' },
      { name: 'a date alone', at: '2026-12-01', expected: 'invalid' },
      { name: 'a zone name', at: '2026-12-01T10:00:00 CET', expected: 'invalid' },
      { name: 'a fraction without digits', at: '2026-12-01T10:00:00.Z', expected: 'invalid' },
      { name: 'five-digit year without a sign', at: '10000-01-01T00:00:00.000Z', expected: 'invalid' },
      { name: '-000000 (not a year ISO 8601 allows)', at: '-000000-01-01T00:00:00.000Z', expected: 'invalid' },
      { name: 'text after it', at: '2026-12-01T10:00:00Z ', expected: 'invalid' },
      { name: 'garbage', at: 'yesterday', expected: 'invalid' },
      { name: 'empty', at: '', expected: 'invalid' },
      { name: 'a number', at: 1234, expected: 'invalid' },
      { name: 'null', at: null, expected: 'invalid' },
    ];
    for (const c of cases) assert.deepEqual(pgTimestamp(c.at), c.expected, c.name);
    // Where Date reads it too, the instant is Date's.
    for (const c of cases) {
      if (typeof c.expected !== 'object' || typeof c.at !== 'string' || c.expected.ts.endsWith('BC')) continue;
      const d = Date.parse(c.at);
      if (Number.isNaN(d) || /\.\d{4}/.test(c.at) || /:60/.test(c.at)) continue;
      assert.equal(Date.parse(c.expected.ts), d, `${c.name}: the same instant as Date.parse`);
    }
  });

  it('an entry whose @timestamp is no instant goes to the raw table, whichever way the line is read', async () => {
    const [, line] = await written([request]);
    const l = line as string;
    const cases = [
      { at: '2025-02-29T00:00:00.000Z', reason: RawReasons.TIMESTAMP_INVALID },
      { at: '2026-12-01T10:00:00.000', reason: RawReasons.TIMESTAMP_INVALID },
      { at: 'soon', reason: RawReasons.TIMESTAMP_INVALID },
      { at: '-010000-01-01T00:00:00.000Z', reason: RawReasons.TIMESTAMP_RANGE },
    ];
    for (const c of cases) {
      const edited = l.replace(/"@timestamp":"[^"]*"/, `"@timestamp":"${c.at}"`);
      assert.equal(toRow(edited), c.reason, c.at);
      assert.equal(toRow(edited, true), c.reason, `${c.at} (parsed)`);
    }
    const offset = toRow(l.replace(/"@timestamp":"[^"]*"/, '"@timestamp":"2026-12-01T00:30:00.000+01:00"')) as Row;
    assert.deepEqual([offset.ts, offset.month], ['2026-11-30T23:30:00.000Z', '2026-11']);
  });

  it('COPY data: escapes, rows cut back out, and the key columns read back', async () => {
    const lines = await written([request, { ...request, userAgent: 'tab\there \\ back' }]);
    const rows = lines.map((l) => toRow(l) as Row);
    rows[1] = { ...(rows[1] as Row), chain: 'a\tb\\c\nd' };
    const w = new CopyWriter('host:/var/log/a\tb.jsonl', Buffer.alloc(16));
    for (const [i, r] of rows.entries()) {
      if (i === 0) w.add(r, Buffer.from(r.line), 0, Buffer.byteLength(r.line));
      else w.add(r);
    }
    const text = w.data.toString('utf8');
    const got = text.split('\n').slice(0, -1);
    assert.equal(got.length, rows.length);
    for (const [i, r] of rows.entries()) {
      const fields = (got[i] as string).split('\t');
      assert.equal(fields.length, COLUMNS.length + 2);
      const unescaped = (v: string) =>
        v === '\\N'
          ? null
          : v.replace(/\\([\\tnr])/g, (_, c: string) => ({ '\\': '\\', t: '\t', n: '\n', r: '\r' })[c] as string);
      assert.deepEqual(fields.map(unescaped), [
        ...COLUMNS.map(([k]) => (r[k] === null ? null : String(r[k]))),
        r.line,
        'host:/var/log/a\tb.jsonl',
      ]);
    }
    const keys = copyKeys({ data: w.data, ends: w.ends });
    assert.deepEqual(
      keys.chains,
      rows.map((r) => r.chain),
    );
    assert.deepEqual(
      keys.sequences,
      rows.map((r) => String(r.sequence)),
    );
    assert.deepEqual(
      keys.ts,
      rows.map((r) => r.ts),
    );
    // Every column read back as the text PostgreSQL's input functions get (what a held row is compared with).
    for (const [i, r] of rows.entries()) {
      assert.deepEqual(copyFields({ data: w.data, ends: w.ends }, i), [
        ...COLUMNS.map(([k]) => (r[k] === null ? null : String(r[k]))),
        r.line,
        'host:/var/log/a\tb.jsonl',
      ]);
    }
    const some = copyRows({ data: w.data, ends: w.ends }, [1, 3]);
    assert.equal(some.data.toString('utf8'), `${got[1]}\n${got[3]}\n`);
    assert.equal(some.ends.at(-1), some.data.length);
  });
});
