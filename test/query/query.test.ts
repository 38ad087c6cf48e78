import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  auditReport,
  createAuditLog,
  formatReport,
  type QueryFilters,
  type QueryMatch,
  queryAuditLog,
  Verifier,
} from '../../src/index.js';
import { DAY, request, tmpFile, writeLog } from './util.js';

async function all(files: string | string[], filters: QueryFilters = {}, options = {}) {
  const q = queryAuditLog(files, filters, options);
  const matches: QueryMatch[] = [];
  for await (const m of q) matches.push(m);
  return { matches, result: await q.result };
}

function rewrite(lines: string[], name?: string): string {
  const f = tmpFile(name);
  writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
}

describe('queryAuditLog', () => {
  it('yields the matching entries, verified, with their original text and place', async () => {
    const { file, lines } = await writeLog();
    const { matches, result } = await all(file, { user: 'nurse-kim' });
    assert.deepEqual(
      matches.map((m) => [m.line, m.lineNumber, m.verified, m.source]),
      [
        [lines[2], 3, true, file],
        [lines[4], 5, true, file],
      ],
    );
    assert.deepEqual(matches[0]?.entry, JSON.parse(lines[2] as string));
    assert.equal(result.verdict, 'intact');
    assert.equal(result.exitCode, 0);
    assert.equal(result.entries, lines.length);
    assert.equal(result.matched, 2);
    assert.equal(result.complete, true);
  });

  it('an edited entry: the match is marked, the verdict is tampered, the finding names the line', async () => {
    const { lines } = await writeLog();
    lines[4] = (lines[4] as string).replace('"status_code":403', '"status_code":200');
    const f = rewrite(lines);
    const { matches, result } = await all(f, { user: 'nurse-kim' });
    assert.deepEqual(
      matches.map((m) => [m.lineNumber, m.verified, m.fields.status]),
      [
        [3, true, 200],
        [5, false, 200],
      ],
    );
    assert.equal(result.verdict, 'tampered');
    assert.equal(result.exitCode, 1);
    assert.equal(result.unverifiedMatches, 1);
    assert.ok(result.findings.some((x) => x.code === 'hash-mismatch' && x.line === 5 && x.source === f));
  });

  it('a removed entry is found even when no match is near it', async () => {
    const { lines } = await writeLog();
    lines.splice(6, 1);
    const { matches, result } = await all(rewrite(lines), { user: 'nurse-kim' });
    assert.equal(matches.length, 2);
    assert.equal(result.verdict, 'tampered');
    assert.ok(result.findings.some((x) => x.code === 'sequence-gap'));
  });

  it('a torn fragment is a note; the entries after it still verify', async () => {
    const { lines } = await writeLog();
    lines.splice(3, 0, (lines[3] as string).slice(0, 40));
    const { matches, result } = await all(rewrite(lines), { ip: '10.0.0.0/8' });
    assert.deepEqual(
      matches.map((m) => m.verified),
      [true, true],
    );
    assert.equal(result.verdict, 'intact');
    assert.ok(result.findings.some((x) => x.code === 'torn-fragment' && x.severity === 'note'));
  });

  it('a signed chain cut short is unsealed (exit 3) with the public key', async () => {
    const keys = generateKeyPairSync('ed25519');
    const { lines } = await writeLog(DAY, { signingKey: keys.privateKey, checkpointEvery: 3 });
    const cut = rewrite(lines.slice(0, 7));
    const { result } = await all(cut, { user: 'dr-lee' }, { publicKey: keys.publicKey });
    assert.equal(result.verdict, 'unsealed');
    assert.equal(result.exitCode, 3);
  });

  it('an HMAC log: verified with its key, cannot-verify (exit 2) without', async () => {
    const { file } = await writeLog(DAY, { hashKey: 'k'.repeat(32) });
    assert.equal((await all(file, {}, { hashKey: 'k'.repeat(32) })).result.verdict, 'intact');
    const without = await all(file, { user: 'dr-lee' });
    assert.equal(without.result.verdict, 'cannot-verify');
    assert.equal(without.matches.length, 4, 'the entries are still answered, marked as not verified');
    assert.ok(without.matches.every((m) => !m.verified));
  });

  it('a missing file: cannot-verify, and the other files are still read', async () => {
    const { file } = await writeLog();
    const { matches, result } = await all([`${file}.missing`, file], { user: 'nurse-kim' });
    assert.equal(matches.length, 2);
    assert.equal(result.verdict, 'cannot-verify');
    assert.ok(result.findings.some((x) => x.code === 'unreadable' && x.source === `${file}.missing`));
  });

  it('rotated files, one compressed, given in any order, are read oldest first and verify as one chain', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file, service: 'ehr-api', host: 'app-1' });
    for (const e of DAY.slice(0, 4)) log.write(e);
    await log.drained();
    renameSync(file, `${file}.2`);
    log.reopen();
    for (const e of DAY.slice(4, 6)) log.write(e);
    await log.drained();
    renameSync(file, `${file}.1`);
    log.reopen();
    for (const e of DAY.slice(6)) log.write(e);
    await log.close();
    writeFileSync(`${file}.2.gz`, gzipSync(readFileSync(`${file}.2`)));
    const { matches, result } = await all([file, `${file}.1`, `${file}.2.gz`], { user: 'dr-lee' });
    assert.equal(result.verdict, 'intact', JSON.stringify(result.findings));
    assert.deepEqual(
      matches.map((m) => [m.source, m.fields.path]),
      [
        [`${file}.2.gz`, '/patients/42'],
        [`${file}.2.gz`, '/patients/42/notes'],
        [file, '/patients/42'],
        [file, '/patients/44'],
      ],
    );
    const q = queryAuditLog([file, `${file}.1`, `${file}.2.gz`]);
    assert.deepEqual(q.sources, [`${file}.2.gz`, `${file}.1`, file]);
  });

  it('limit caps the matches, and the whole input is still verified', async () => {
    const { lines } = await writeLog();
    lines[8] = (lines[8] as string).replace('"/patients/44"', '"/patients/45"');
    const { matches, result } = await all(rewrite(lines), { action: 'http-request' }, { limit: 2 });
    assert.equal(matches.length, 2);
    assert.equal(result.yielded, 2);
    assert.equal(result.matched, 7);
    assert.equal(result.verdict, 'tampered', 'the edit past the limit is still found');
  });

  it('a caller that stops early gets a result that says so', async () => {
    const { file } = await writeLog();
    const q = queryAuditLog(file);
    for await (const _ of q) break;
    const r = await q.result;
    assert.equal(r.complete, false);
  });

  it('a query is iterated once', async () => {
    const { file } = await writeLog();
    const q = queryAuditLog(file);
    for await (const _ of q) {
    }
    await assert.rejects(async () => {
      for await (const _ of q) {
      }
    }, /only once/);
  });

  const bad: { name: string; call: () => unknown }[] = [
    { name: 'no file', call: () => queryAuditLog([]) },
    { name: 'an empty name', call: () => queryAuditLog(['']) },
    { name: 'a bad filter', call: () => queryAuditLog('x', { ip: 'nowhere' }) },
    { name: 'a bad limit', call: () => queryAuditLog('x', {}, { limit: -1 }) },
    { name: 'a bad key', call: () => queryAuditLog('x', {}, { publicKey: 'not a key' }) },
  ];
  for (const c of bad) it(`throws at the call: ${c.name}`, () => assert.throws(c.call));
});

describe('the verifier’s fast path', () => {
  it('reads the same entry as a full parse, for every kind of line (checkpoints, witnesses, HMAC)', async () => {
    const keys = generateKeyPairSync('ed25519');
    const file = tmpFile();
    const first = createAuditLog({ filename: file, signingKey: keys.privateKey, checkpointEvery: 2, hashKey: 'secret' });
    for (const e of DAY) first.write(e);
    await first.close();
    const second = createAuditLog({ filename: file, signingKey: keys.privateKey, hashKey: 'secret' });
    second.write(request(30, { userId: 'a\\"b}', path: '/q"}' }));
    await second.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const v = new Verifier({ publicKey: keys.publicKey, hashKey: 'secret' });
    lines.forEach((l, i) => {
      const [got] = v.line(l, { source: file, line: i + 1 });
      assert.equal(got?.ok, true);
      assert.deepEqual(got?.entry, JSON.parse(l));
    });
    assert.equal(v.end().verdict, 'intact');
  });
});

describe('the verifier’s fast path does not change verdicts', () => {
  it('any one character changed in any line but the last is never intact (property)', async () => {
    const { lines } = await writeLog();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: lines.length - 2 }),
        fc.nat(),
        fc.integer({ min: 0x20, max: 0x7e }),
        async (i, at, code) => {
          const line = lines[i] as string;
          const pos = at % line.length;
          const c = String.fromCharCode(code);
          fc.pre(line[pos] !== c);
          const bad = [...lines];
          bad[i] = line.slice(0, pos) + c + line.slice(pos + 1);
          const v = new Verifier();
          bad.forEach((l, n) => {
            v.line(l, { source: 'f', line: n + 1 });
          });
          // Tampered — or cannot-verify when the edit hits the algorithm's name (an unknown algorithm).
          const { verdict } = v.end();
          assert.ok(
            verdict === 'tampered' || verdict === 'cannot-verify',
            `line ${i + 1}, position ${pos}, ${JSON.stringify(c)}: ${verdict}`,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('auditReport', () => {
  it('counts per day, user, client and route; failures; refused connections; first and last access', async () => {
    const { file } = await writeLog();
    const r = await auditReport(file);
    assert.equal(r.verification.verdict, 'intact');
    assert.deepEqual(r.sources, [file]);
    assert.deepEqual(r.requests, { requests: 7, failures: 3 });
    assert.deepEqual(r.perDay, [
      { day: '2024-03-01', requests: 5, failures: 2 },
      { day: '2024-03-02', requests: 2, failures: 1 },
    ]);
    assert.deepEqual(r.perUser, [
      { user: 'dr-lee', requests: 4, failures: 1, first: '2024-03-01T08:00:00.000Z', last: '2024-03-02T11:00:00.000Z' },
      { user: 'nurse-kim', requests: 2, failures: 1, first: '2024-03-01T09:00:00.000Z', last: '2024-03-01T11:00:00.000Z' },
    ]);
    assert.deepEqual(r.anonymous, { requests: 1, failures: 1 });
    assert.deepEqual(r.perClient[0], { ip: '203.0.113.7', requests: 2, failures: 1 });
    assert.equal(r.perClient.length, 6);
    assert.deepEqual(r.perRoute[0], { route: '/patients/:id', requests: 4, failures: 1 });
    assert.deepEqual(
      r.perRoute.at(-1),
      { route: '/favicon.ico', requests: 1, failures: 1 },
      'the path where no route was recorded',
    );
    assert.deepEqual(r.failures.map((f) => [f.reason, f.count]).sort(), [
      ['403', 1],
      ['404', 1],
      ['500', 1],
    ]);
    assert.deepEqual(r.refused, {
      total: 1,
      byCode: [{ code: 'ERR_PROXY_UNTRUSTED', count: 1 }],
      byPeer: [{ peer: '198.51.100.9', count: 1 }],
    });
  });

  it('filters narrow what is counted', async () => {
    const { file } = await writeLog();
    const r = await auditReport(file, { from: '2024-03-02', to: '2024-03-03' });
    assert.deepEqual(r.requests, { requests: 2, failures: 1 });
    assert.deepEqual(r.filters, { from: ['2024-03-02T00:00:00.000Z'], to: ['2024-03-03T00:00:00.000Z'] });
  });

  it('a bad filter throws at the call', () => {
    assert.throws(() => auditReport('x', { status: 'bad' }), TypeError);
  });

  it('text: long lists are cut at top rows, and say how many more there are', async () => {
    const { file } = await writeLog();
    const text = formatReport(await auditReport(file), 2);
    const perClient = text.slice(text.indexOf('Per client address'), text.indexOf('Per route'));
    assert.equal(perClient.split('\n').filter((l) => /^ {2}\S/.test(l)).length, 4, 'heading, 2 rows, the note');
    assert.match(perClient, /… and 4 more \(--json lists all\)/);
  });

  it('text: values are shown escaped', async () => {
    const { file } = await writeLog([request(0, { userId: 'x\u001b]0;owned\u0007' })]);
    const text = formatReport(await auditReport(file));
    assert.ok(text.includes('x\\u001b]0;owned\\u0007'));
    assert.ok(!text.includes('\u001b'));
  });
});
