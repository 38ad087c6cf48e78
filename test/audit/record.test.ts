// The bytes of a line: every value survives the trip into the file and back, whatever it holds, and the
// chain covers exactly what was written.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
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
    // (the start entry was sealed when the log was created, before the listener)
    assert.ok(
      lines.length === written.length - 1 && lines.every((l, i) => l === written[i + 1]),
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
    assert.deepEqual(await verifyAuditLog(file), { ok: true, entries: written.length, chains: 1, checkpoints: 0 });
  });

  it('numbers: integers digit for digit, anything else still valid JSON', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    const cases: [Partial<AuditFields>, unknown][] = [
      [{ status: 0 }, 0],
      [{ status: 9 }, 9],
      [{ status: 10 }, 10],
      [{ status: 200 }, 200],
      [{ status: 1_000_000_007 }, 1_000_000_007],
      [{ status: Number.MAX_SAFE_INTEGER }, Number.MAX_SAFE_INTEGER],
      [{ status: 2.5 }, 2.5],
      [{ status: -3 }, -3],
      [{ status: Number.NaN }, null],
      [{ status: Number.POSITIVE_INFINITY }, null],
      [{ status: 1e21 }, 1e21],
    ];
    for (const [f] of cases) log.write({ category: 'web', action: 'http-request', outcome: 'success', ...f });
    log.write({ category: 'web', action: 'http-request', outcome: 'success', duration: 1234.6, clientPort: 65535 });
    await log.close();
    const reqs = entries(file).filter((e) => e.event.action === 'http-request');
    assert.deepEqual(
      reqs.slice(0, cases.length).map((e) => e.http.response.status_code),
      cases.map(([, want]) => want),
    );
    const last = reqs[cases.length];
    assert.equal(last?.event.duration, 1235);
    assert.equal(last?.client, undefined, 'a port without an address writes no client object');
    assert.equal((await verifyAuditLog(file)).ok, true);
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
