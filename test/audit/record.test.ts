// The bytes of a line: every value survives the trip into the file and back, whatever it holds, and the
// chain covers exactly what was written.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_STRING, serializeEntry, toEntry } from '../../src/audit/entry.js';
import { LineBuffer } from '../../src/audit/line-buffer.js';
import { type AuditFields, createAuditLog, verifyAuditLog } from '../../src/index.js';
import { entries, tmpFile } from './util.js';

const AWKWARD = [
  'plain',
  '',
  'quote " and backslash \\',
  'controls \u0000\u0001\n\r\t\u001f and DEL \u007f',
  'Ünïcödé – 東京 – emoji 🩺',
  'lone surrogate \ud800 end',
  '</script><!-- -->',
  'x'.repeat(3000),
];

describe('audit line bytes', () => {
  it('strings of any content round-trip through the file, and the chain verifies', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file, service: 'svc "quoted" ü', host: 'höst\\1' });
    const lines: string[] = [];
    log.on('entry', (line: string) => lines.push(line));
    for (const s of AWKWARD) {
      log.write({
        category: 'web',
        action: 'http-request',
        outcome: 'success',
        method: s,
        path: s,
        userAgent: s,
        userId: s,
        route: s,
        errorMessage: s,
      });
    }
    await log.close();
    const written = readFileSync(file, 'utf8').trimEnd().split('\n');
    // (the start entry is sealed at the end of the turn the log was created in, so the listener sees it too)
    assert.ok(
      lines.length === written.length && lines.every((l, i) => l === written[i]),
      "'entry' gives each line exactly as written",
    );
    const reqs = entries(file).filter((e) => e.event.action === 'http-request');
    assert.equal(reqs.length, AWKWARD.length);
    for (const [i, e] of reqs.entries()) {
      // JSON cannot carry a lone surrogate: like JSON.stringify, it is escaped, and read back as itself.
      const s = AWKWARD[i] as string;
      assert.equal(e.http.request.method, s);
      assert.equal(e.url.path, s);
      assert.equal(e.user_agent.original, s);
      assert.equal(e.user.id, s);
      assert.equal(e.http.route, s);
      assert.equal(e.error.message, s);
      assert.equal(e.service.name, 'svc "quoted" ü');
      assert.equal(e.host.name, 'höst\\1');
    }
    const v = await verifyAuditLog(file);
    assert.deepEqual(
      { verdict: v.verdict, ok: v.ok, entries: v.entries, chains: v.chains, checkpoints: v.checkpoints },
      { verdict: 'intact', ok: true, entries: written.length, chains: 1, checkpoints: 0 },
    );
  });

  it('numbers: integers digit for digit', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const statuses = [0, 9, 10, 200, 404, 999];
    const sizes = [0, 1, 1_000_000_007, Number.MAX_SAFE_INTEGER];
    for (const status of statuses) log.write({ category: 'web', action: 'http-request', outcome: 'success', status });
    for (const bytes of sizes) log.write({ category: 'web', action: 'http-request', outcome: 'success', bytes });
    log.write({ category: 'web', action: 'http-request', outcome: 'success', duration: 1234.6, clientPort: 65535 });
    await log.close();
    const reqs = entries(file).filter((e) => e.event.action === 'http-request');
    assert.deepEqual(
      reqs.slice(0, statuses.length).map((e) => e.http.response.status_code),
      statuses,
    );
    assert.deepEqual(
      reqs.slice(statuses.length, statuses.length + sizes.length).map((e) => e.http.response.body.bytes),
      sizes,
    );
    const last = reqs[statuses.length + sizes.length];
    assert.equal(last?.event.duration, 1235);
    assert.equal(last?.client, undefined, 'a port without an address writes no client object');
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  const BASE = { category: 'web', action: 'http-request', outcome: 'success' } as const;
  const BAD: { name: string; fields: unknown }[] = [
    { name: 'null', fields: null },
    { name: 'a string', fields: 'GET /' },
    { name: 'an array', fields: [] },
    { name: 'an outcome with a quote', fields: { ...BASE, outcome: 'succ"ess' } },
    { name: 'a kind outside the enumeration', fields: { ...BASE, kind: '€' } },
    { name: 'an unknown category', fields: { ...BASE, category: 'phi' } },
    { name: 'no action', fields: { category: 'web', outcome: 'success' } },
    { name: 'an empty action', fields: { ...BASE, action: '' } },
    { name: 'a timestamp NaN', fields: { ...BASE, timestamp: Number.NaN } },
    { name: 'an invalid Date', fields: { ...BASE, timestamp: new Date('nope') } },
    { name: 'a timestamp as a string', fields: { ...BASE, timestamp: '2026-01-01' } },
    { name: 'a user id as an array', fields: { ...BASE, userId: ['u1'] } },
    { name: 'a path as a number', fields: { ...BASE, path: 42 } },
    { name: 'a client address that is not an IP', fields: { ...BASE, clientIp: 'not-an-ip' } },
    { name: 'a client address with a newline', fields: { ...BASE, clientIp: '192.0.2.1\n' } },
    { name: 'a peer address that is empty', fields: { ...BASE, peerAddress: '' } },
    { name: 'a fractional status', fields: { ...BASE, status: 2.5 } },
    { name: 'a negative status', fields: { ...BASE, status: -3 } },
    { name: 'a status NaN', fields: { ...BASE, status: Number.NaN } },
    { name: 'a status of 1e21', fields: { ...BASE, status: 1e21 } },
    { name: 'a port above 65535', fields: { ...BASE, clientIp: '192.0.2.1', clientPort: 70000 } },
    { name: 'negative bytes', fields: { ...BASE, bytes: -1 } },
    { name: 'an infinite duration', fields: { ...BASE, duration: Number.POSITIVE_INFINITY } },
  ];

  it('write() checks its argument: a TypeError at the call, nothing written, the next entry unharmed', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    for (const { name, fields } of BAD) {
      assert.throws(() => log.write(fields as AuditFields), TypeError, name);
      log.write({ ...BASE, path: `/after/${name}` });
    }
    await log.close();
    const reqs = entries(file).filter((e) => e.event.action === 'http-request');
    assert.deepEqual(
      reqs.map((e) => e.url.path),
      BAD.map(({ name }) => `/after/${name}`),
    );
    assert.equal(log.stats.dropped, 0);
    const v = await verifyAuditLog(file);
    assert.equal(v.ok, true);
  });

  it('a Date as timestamp, and strings longer than the limit are cut, not refused', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    log.write({ ...BASE, timestamp: new Date(Date.UTC(2026, 0, 2)), userAgent: 'u'.repeat(MAX_STRING + 100) });
    await log.close();
    const [e] = entries(file).filter((x) => x.event.action === 'http-request');
    assert.equal(e?.['@timestamp'], '2026-01-02T00:00:00.000Z');
    assert.equal(e?.user_agent.original.length, MAX_STRING);
  });

  it('@timestamp is exactly what toISOString writes, at the edges of days, months, leap years and years', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const day = 86_400_000;
    const fixed = [
      0,
      1,
      999,
      59_999,
      day - 1,
      day,
      Date.UTC(2000, 1, 29, 23, 59, 59, 999), // a leap day (divisible by 400)
      Date.UTC(2100, 2, 1), // no leap day in 2100
      Date.UTC(2026, 11, 31, 23, 59, 59, 999),
      Date.UTC(2027, 0, 1),
      1_700_000_000_123.7, // a fraction of a millisecond is cut, as Date does
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(10000, 0, 1), // six-digit year: the engine's text
      -1, // before 1970: likewise
    ];
    let r = 7;
    const random = Array.from({ length: 300 }, () => {
      r = (r * 48_271) % 2_147_483_647;
      return Math.floor((r / 2_147_483_647) * Date.UTC(2200, 0, 1));
    });
    const all = [...fixed, ...random];
    for (const ms of all) log.write({ category: 'web', action: 'http-request', outcome: 'success', timestamp: ms });
    await log.close();
    assert.deepEqual(
      entries(file)
        .filter((e) => e.event.action === 'http-request')
        .map((e) => e['@timestamp']),
      all.map((ms) => new Date(ms).toISOString()),
    );
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('a batch far larger than the sink buffer in one turn: every line, in order, and an HMAC chain that verifies', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file, hashKey: 'k' });
    const n = 3000;
    const ua = 'Mozilla/5.0 '.repeat(40); // ~480 bytes: ~1.4 MB in one turn
    for (let i = 0; i < n; i++) {
      log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/p/${i}`, userAgent: ua });
    }
    await log.close();
    const reqs = entries(file).filter((e) => e.event.action === 'http-request');
    assert.deepEqual(
      reqs.map((e) => e.url.path),
      Array.from({ length: n }, (_, i) => `/p/${i}`),
    );
    assert.deepEqual(
      reqs.map((e) => e.event.sequence),
      Array.from({ length: n }, (_, i) => i + 2),
      'gap-free after the start entry',
    );
    assert.equal((await verifyAuditLog(file, { hashKey: 'k' })).ok, true);
    assert.equal((await verifyAuditLog(file, { hashKey: 'other' })).ok, false);
  });
});

/**
 * The line the serialiser must write for `f`, built independently of it: the ECS object with only the
 * members present (an object only when one of its members is), as JSON.stringify writes it, without the
 * closing brace (the chain's members follow).
 */
function expectedLine(f: AuditFields, sequence: number): string {
  const pick = (o: Record<string, unknown>): Record<string, unknown> | undefined => {
    const r: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) if (v !== undefined) r[k] = v;
    return Object.keys(r).length === 0 ? undefined : r;
  };
  const line = pick({
    '@timestamp': new Date(f.timestamp as number).toISOString(),
    event: pick({
      kind: f.kind ?? 'event',
      category: f.category,
      action: f.action,
      outcome: f.outcome,
      duration: f.duration === undefined ? undefined : Math.round(f.duration),
      sequence,
    }),
    client: pick({ ip: f.clientIp, port: f.clientIp === undefined ? undefined : f.clientPort }),
    network: pick({ peer: pick({ address: f.peerAddress, port: f.peerAddress === undefined ? undefined : f.peerPort }) }),
    http: pick({
      request: pick({ method: f.method, id: f.requestId, body: pick({ bytes: f.requestBytes }) }),
      response: pick({ status_code: f.status, body: pick({ bytes: f.bytes }) }),
      route: f.route,
      version: f.httpVersion,
    }),
    url: pick({ domain: f.domain, path: f.path, query: f.query }),
    user_agent: pick({ original: f.userAgent }),
    user: pick({ id: f.userId }),
    tls: pick({
      version: f.tlsVersion,
      version_protocol: f.tlsVersion === undefined ? undefined : 'tls',
      cipher: f.tlsCipher,
      client: pick({ x509: pick({ subject: pick({ common_name: f.tlsClientCn }) }) }),
    }),
    error: pick({ type: f.errorType, code: f.errorCode, message: f.errorMessage }),
  });
  return JSON.stringify(line).slice(0, -1);
}

describe('the serialiser', () => {
  it('any combination of present fields: exactly the bytes JSON.stringify gives the ECS object (property)', () => {
    const s = fc.oneof(fc.string(), fc.constantFrom(...AWKWARD));
    const n = fc.oneof(fc.constantFrom(0, 9, 10, 65535), fc.nat(65535));
    const ip = fc.constantFrom('203.0.113.7', '::1', '2001:db8::1', '10.0.0.5');
    const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
    const fields = fc.record({
      timestamp: fc.integer({ min: 0, max: 4_102_444_800_000 }),
      kind: opt(fc.constantFrom('event' as const, 'state' as const)),
      category: fc.constantFrom('web' as const, 'network' as const, 'configuration' as const),
      action: fc.constantFrom('http-request', 'http-upgrade', 'a "quoted" action'),
      outcome: fc.constantFrom('success' as const, 'failure' as const, 'unknown' as const),
      duration: opt(fc.double({ min: 0, max: 1e12, noNaN: true })),
      clientIp: opt(ip),
      clientPort: opt(n),
      peerAddress: opt(ip),
      peerPort: opt(n),
      method: opt(s),
      requestId: opt(s),
      httpVersion: opt(s),
      domain: opt(s),
      path: opt(s),
      query: opt(s),
      route: opt(s),
      status: opt(fc.nat(999)),
      bytes: opt(fc.maxSafeNat()),
      requestBytes: opt(fc.maxSafeNat()),
      userAgent: opt(s),
      userId: opt(s),
      tlsVersion: opt(s),
      tlsCipher: opt(s),
      tlsClientCn: opt(s),
      errorType: opt(s),
      errorCode: opt(s),
      errorMessage: opt(s),
    });
    fc.assert(
      fc.property(fc.array(fields, { minLength: 1, maxLength: 8 }), fc.nat(1e6), (list, sequence) => {
        // Several entries through one buffer: each line's bytes depend on its own fields only.
        const out = new LineBuffer();
        for (const f of list) {
          const e = toEntry(f as AuditFields);
          e.sequence = sequence;
          const start = out.pos;
          serializeEntry(e, out, false);
          assert.equal(out.text(start), expectedLine(f as AuditFields, sequence));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a generated request id: a fresh random UUID v4 in the line, kept in the entry with fill', () => {
    const seen = new Set<string>();
    for (const fill of [true, false]) {
      for (let i = 0; i < 300; i++) {
        const e = toEntry({ timestamp: 5, category: 'web', action: 'http-request', outcome: 'success', method: 'GET' });
        e.generateRequestId = true;
        const out = new LineBuffer();
        serializeEntry(e, out, fill);
        const id = JSON.parse(`${out.text(0)}}`).http.request.id as string;
        assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.ok(!seen.has(id), 'never the same id twice');
        seen.add(id);
        assert.equal(e.requestId, fill ? id : undefined);
      }
    }
  });
});

describe('the serialiser without code generation', () => {
  it('node --disallow-code-generation-from-strings: the package loads and writes the same bytes', () => {
    const fieldsList: AuditFields[] = [
      { timestamp: 1, category: 'web', action: 'http-request', outcome: 'success' },
      {
        timestamp: 1_700_000_000_123,
        category: 'web',
        action: 'http-request',
        outcome: 'failure',
        duration: 1234567,
        clientIp: '203.0.113.7',
        clientPort: 51000,
        peerAddress: '10.0.0.5',
        peerPort: 443,
        method: 'GET',
        requestId: 'req-1',
        httpVersion: '1.1',
        domain: 'ehr.example',
        path: '/patients/"12"',
        query: 'dob&name',
        route: '/patients/:id',
        status: 503,
        bytes: 0,
        requestBytes: 17,
        userAgent: 'curl/8 ü',
        userId: 'u1',
        tlsVersion: '1.3',
        tlsCipher: 'TLS_AES_128_GCM_SHA256',
        tlsClientCn: 'client',
        errorType: 'audit_unavailable',
        errorCode: 'E1',
        errorMessage: 'line\nbreak',
      },
      ...AWKWARD.map((s) => ({
        timestamp: 2,
        category: 'network' as const,
        action: 'x',
        outcome: 'unknown' as const,
        userAgent: s,
      })),
    ];
    const bytesOf = (list: AuditFields[]) =>
      list.map((f) => {
        const out = new LineBuffer();
        serializeEntry(toEntry(f), out, false);
        return out.text(0);
      });
    const here = bytesOf(fieldsList);
    const entryModule = join(__dirname, '..', '..', 'src', 'audit', 'entry.js');
    const bufferModule = join(__dirname, '..', '..', 'src', 'audit', 'line-buffer.js');
    const script = `
      const { serializeEntry, toEntry } = require(${JSON.stringify(entryModule)});
      const { LineBuffer } = require(${JSON.stringify(bufferModule)});
      require(${JSON.stringify(join(__dirname, '..', '..', 'src', 'index.js'))});
      let generated = true;
      try { new Function('return 1'); } catch { generated = false; }
      const list = JSON.parse(process.argv[1]);
      const lines = list.map((f) => { const out = new LineBuffer(); serializeEntry(toEntry(f), out, false); return out.text(0); });
      process.stdout.write(JSON.stringify({ generated, lines }));`;
    const child = JSON.parse(
      execFileSync(process.execPath, ['--disallow-code-generation-from-strings', '-e', script, JSON.stringify(fieldsList)], {
        encoding: 'utf8',
      }),
    );
    assert.equal(child.generated, false, 'the child really ran without code generation');
    assert.deepEqual(child.lines, here);
    assert.equal(JSON.parse(`${here[1]}}`).url.path, '/patients/"12"');
  });
});
