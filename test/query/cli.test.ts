import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { verifyAuditLog } from '../../src/index.js';
import { DAY, request, tmpFile, writeLog } from './util.js';

const cli = join(__dirname, '..', '..', 'src', 'cli', 'index.js');
const exec = promisify(execFile);

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [cli, ...args], { maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('CLI query', () => {
  let file: string;
  let lines: string[];
  before(async () => {
    ({ file, lines } = await writeLog());
  });

  it('--json: the original lines, byte for byte; the verdict on stderr; exit 0', async () => {
    const r = await run(['query', file, '--user', 'nurse-kim', '--json']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${lines[2]}\n${lines[4]}\n`);
    assert.match(r.stderr, /^query: verified 10 entries in 1 chain: INTACT; 2 matched\n$/);
  });

  it('without a format and not on a terminal: the original lines', async () => {
    const r = await run(['query', file, '--ip', '10.0.0.0/8']);
    assert.equal(r.stdout, `${lines[3]}\n${lines[5]}\n`);
  });

  it('--not-ip: every entry but those of the address or range (and those with none)', async () => {
    const all = await run(['query', file, '--json']);
    const inside = await run(['query', file, '--ip', '10.0.0.0/8', '--json']);
    const outside = await run(['query', file, '--not-ip', '10.0.0.0/8', '--json']);
    assert.equal(outside.code, 0, outside.stderr);
    const count = (t: string) => t.split('\n').filter((l) => l !== '').length;
    const withIp = all.stdout.split('\n').filter((l) => l.includes('"client":{"ip"')).length;
    assert.equal(count(outside.stdout), withIp - count(inside.stdout));
    assert.doesNotMatch(outside.stdout, /"ip":"10\./);
  });

  it('filters combine; a filter given twice matches either value', async () => {
    const r = await run(['query', file, '--user', 'dr-lee', '--status', '5xx', '--status', '201', '--json']);
    assert.deepEqual(
      r.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).http.response.status_code),
      [201, 500],
    );
    const none = await run(['query', file, '--user', 'dr-lee', '--outcome', 'failure', '--path', '/admin', '--json']);
    assert.equal(none.stdout, '');
    assert.equal(none.code, 0, 'no match is not an error');
  });

  it('--text, --csv, --fhir, --fhir-bundle', async () => {
    const t = await run(['query', file, '--user', 'nurse-kim', '--text']);
    assert.deepEqual(
      t.stdout.split('\n').map((l) => l.trim().split(/ +/)),
      [
        ['TIME', 'CLIENT', 'USER', 'METHOD', 'PATH', 'STATUS', 'OUTCOME'],
        ['2024-03-01T09:00:00.000Z', '203.0.113.8', 'nurse-kim', 'GET', '/patients/43', '200', 'success'],
        ['2024-03-01T11:00:00.000Z', '2001:db8::7', 'nurse-kim', 'GET', '/admin/users', '403', 'failure'],
        [''],
      ],
    );
    const c = await run(['query', file, '--user', 'nurse-kim', '--csv']);
    assert.equal(c.stdout.split('\r\n').length, 4);
    const f = await run(['query', file, '--user', 'nurse-kim', '--fhir']);
    assert.deepEqual(
      f.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).resourceType),
      ['AuditEvent', 'AuditEvent'],
    );
    const b = await run(['query', file, '--user', 'nurse-kim', '--fhir-bundle']);
    assert.equal(JSON.parse(b.stdout).entry.length, 2);
  });

  it('--limit', async () => {
    const r = await run(['query', file, '--action', 'http-request', '--limit', '3', '--json']);
    assert.equal(r.stdout.trimEnd().split('\n').length, 3);
    assert.match(r.stderr, /7 matched/);
  });

  it('damaged ranges on stderr and exit 1: consecutive edited lines are one range', async () => {
    const bad = [...lines];
    for (const i of [3, 4, 5]) bad[i] = (bad[i] as string).replace('"outcome":"', '"outcome":"x');
    const f = tmpFile();
    writeFileSync(f, `${bad.join('\n')}\n`);
    const r = await run(['query', f, '--user', 'nurse-kim', '--json']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, `${bad[2]}\n${bad[4]}\n`, 'the matches are still answered');
    assert.match(r.stderr, /TAMPERED/);
    assert.match(r.stderr, /1 of the matches did not verify/);
    assert.ok(r.stderr.includes(`${f}:4-6: tampered: hash-mismatch: `), r.stderr);
    assert.match(r.stderr, /\(3 lines\)/);
  });

  it('the table marks the damaged entry', async () => {
    const bad = [...lines];
    bad[4] = (bad[4] as string).replace('"/admin/users"', '"/admin/usersX"');
    const f = tmpFile();
    writeFileSync(f, `${bad.join('\n')}\n`);
    const r = await run(['query', f, '--user', 'nurse-kim', '--text']);
    const rows = r.stdout.split('\n');
    assert.ok(rows[1]?.startsWith('   '), 'verified: no mark');
    assert.ok(rows[2]?.startsWith('!  '), 'damaged: marked');
  });

  it('exit 3 for an unsealed signed chain, 2 for a missing file', async () => {
    const keys = generateKeyPairSync('ed25519');
    const signed = await writeLog(DAY, { signingKey: keys.privateKey });
    const cut = tmpFile();
    writeFileSync(cut, `${signed.lines.slice(0, 5).join('\n')}\n`);
    const pub = tmpFile('audit.pub');
    writeFileSync(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));
    const u = await run(['query', cut, '--public-key', pub, '--json']);
    assert.equal(u.code, 3);
    assert.match(u.stderr, /UNSEALED/);
    const m = await run(['query', `${file}.missing`, '--json']);
    assert.equal(m.code, 2);
    assert.match(m.stderr, /CANNOT-VERIFY/);
  });

  const usage: { name: string; args: string[] }[] = [
    { name: 'no file', args: ['query'] },
    { name: 'a bad address', args: ['query', 'f', '--ip', 'nowhere'] },
    { name: 'a bad time', args: ['query', 'f', '--from', 'last week'] },
    { name: 'a bad status', args: ['query', 'f', '--status', '99'] },
    { name: 'two formats', args: ['query', 'f', '--json', '--csv'] },
    { name: 'a bad limit', args: ['query', 'f', '--limit', 'ten'] },
    { name: 'an unknown option', args: ['query', 'f', '--everything'] },
    { name: 'report without a file', args: ['report'] },
  ];
  for (const c of usage) {
    it(`usage error, exit 2: ${c.name}`, async () => {
      const r = await run(c.args);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^proxy-protocol-audit: .*\nUsage:/);
    });
  }

  it('--audit-to: the access is itself an entry (who, which filters, what was found), in a log that verifies', async () => {
    const trail = tmpFile('access.jsonl');
    await run(['query', file, '--user', 'dr-lee', '--from', '2024-03-01', '--json', '--audit-to', trail]);
    await run(['report', file, '--ip', '10.0.0.0/8', '--audit-to', trail]);
    const entries = readFileSync(trail, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    const queries = entries.filter((e) => e.event.action === 'audit-query');
    assert.equal(queries.length, 2);
    const [q, r] = queries;
    assert.equal(q.event.category, 'configuration');
    assert.equal(q.event.outcome, 'success');
    assert.equal(typeof q.user.id, 'string');
    assert.ok(q.user.id.length > 0);
    const params = new URLSearchParams(q.url.query);
    assert.equal(params.get('command'), 'query');
    assert.equal(params.get('user'), 'dr-lee');
    assert.equal(params.get('from'), '2024-03-01T00:00:00.000Z');
    assert.deepEqual(params.getAll('source'), [file]);
    assert.equal(params.get('matched'), '4');
    assert.equal(params.get('verdict'), 'intact');
    assert.equal(new URLSearchParams(r.url.query).get('command'), 'report');
    assert.equal(new URLSearchParams(r.url.query).get('ip'), '10.0.0.0/8');
    assert.equal((await verifyAuditLog(trail)).verdict, 'intact');
  });

  it('--audit-to into the keyed, signed log it reads: with its keys the log still verifies intact; without, a warning', async () => {
    const keys = generateKeyPairSync('ed25519');
    const priv = tmpFile('audit.key');
    const pub = tmpFile('audit.pub');
    writeFileSync(priv, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));
    const hashFile = tmpFile('hash.key');
    writeFileSync(hashFile, 'k3y\n');
    const { createAuditLog } = await import('../../src/index.js');
    const make = async (name: string) => {
      const f = tmpFile(name);
      const log = createAuditLog({ filename: f, hashKey: 'k3y', signingKey: keys.privateKey });
      log.write({ category: 'web', action: 'http-request', outcome: 'success', path: '/p', userId: 'dr-lee' });
      await log.close();
      return f;
    };
    const own = await make('own.jsonl');
    const readKeys = ['--public-key', pub, '--hash-key-file', hashFile];
    const bare = await run(['query', own, '--user', 'dr-lee', '--json', ...readKeys, '--audit-to', own]);
    assert.equal(bare.code, 0, bare.stderr);
    assert.match(
      bare.stderr,
      /warning: .* is keyed and signed, but the audit-query entry is written without --audit-hash-key-file \| --audit-hash-key-env and --audit-signing-key/,
    );
    // Also into a keyed, signed log other than the one read; with only the hash key, the signing key is missing.
    const other = await make('other.jsonl');
    const half = await run(['query', file, '--json', '--audit-to', other, '--audit-hash-key-file', hashFile]);
    assert.match(
      half.stderr,
      /warning: .*other\.jsonl is keyed and signed, but the audit-query entry is written without --audit-signing-key: verify will read its chain as chain-unsealed/,
    );
    const unkeyed = await verifyAuditLog(own, { publicKey: keys.publicKey, hashKey: 'k3y' });
    assert.equal(unkeyed.verdict, 'unsealed');
    // Again, with the log's keys: the new record's chain is keyed and signed.
    const log2 = await make('own2.jsonl');
    assert.equal((await verifyAuditLog(log2, { publicKey: keys.publicKey, hashKey: 'k3y' })).verdict, 'intact');
    const r = await run([
      'query',
      log2,
      '--user',
      'dr-lee',
      '--json',
      ...readKeys,
      '--audit-to',
      log2,
      '--audit-hash-key-file',
      hashFile,
      '--audit-signing-key',
      priv,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warning/);
    const after = await verifyAuditLog(log2, { publicKey: keys.publicKey, hashKey: 'k3y' });
    assert.equal(after.verdict, 'intact', JSON.stringify(after.findings));
    assert.equal(after.chains, 2);
  });

  it('a reader that goes away (query | head) ends the query quietly', async () => {
    const big = await writeLog(Array.from({ length: 20_000 }, (_, i) => request(i / 100)));
    const child = spawn(process.execPath, [cli, 'query', big.file, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(code, 0);
    assert.doesNotMatch(stderr, /Error|\n\s+at /, 'no error, no stack trace');
    assert.match(stderr, /stopped early/);
  });
});

describe('CLI report', () => {
  it('text: the verdict, the period, and every section', async () => {
    const { file } = await writeLog();
    const r = await run(['report', file]);
    assert.equal(r.code, 0);
    for (const s of [
      'Verification: INTACT',
      'Per day',
      'Per user',
      'Per client address',
      'Per route',
      'Failures',
      'Refused connections by reason',
    ]) {
      assert.ok(r.stdout.includes(s), s);
    }
    assert.match(r.stdout, /\n {2}dr-lee +4 +1 +2024-03-01T08:00:00\.000Z +2024-03-02T11:00:00\.000Z\n/);
    assert.match(r.stdout, /\n {2}2024-03-01 +5 +2\n/);
  });

  it('--json: the whole report; exit code of the verdict', async () => {
    const { file, lines } = await writeLog();
    const j = await run(['report', file, '--json']);
    assert.equal(JSON.parse(j.stdout).requests.requests, 7);
    lines.splice(2, 1);
    const f = tmpFile();
    writeFileSync(f, `${lines.join('\n')}\n`);
    const bad = await run(['report', f, '--json']);
    assert.equal(bad.code, 1);
    assert.equal(JSON.parse(bad.stdout).verification.verdict, 'tampered');
  });
});
