import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createAuditLog, verifyAuditLog } from '../../src/index.js';
import { tmpFile } from './util.js';

const run = promisify(execFile);
const keys = generateKeyPairSync('ed25519');
const otherKeys = generateKeyPairSync('ed25519');

async function makeLog(
  options: Partial<Parameters<typeof createAuditLog>[0]> = {},
  n = 20,
): Promise<{ file: string; lines: string[] }> {
  const file = tmpFile();
  const log = createAuditLog({ filename: file, ...options });
  for (let i = 0; i < n; i++) {
    log.write({
      category: 'web',
      action: 'http-request',
      outcome: 'success',
      method: 'GET',
      path: `/r/${i}`,
      status: 200,
      clientIp: `192.0.2.${i}`,
    });
  }
  await log.close();
  return { file, lines: readFileSync(file, 'utf8').trimEnd().split('\n') };
}

function rewrite(lines: string[]): string {
  const f = tmpFile();
  writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
}

describe('verifyAuditLog: tampering', () => {
  let plain: { file: string; lines: string[] };
  let signed: { file: string; lines: string[] };
  before(async () => {
    plain = await makeLog();
    signed = await makeLog({ signingKey: keys.privateKey, checkpointEvery: 5 });
  });

  it('an untouched log verifies', async () => {
    const r = await verifyAuditLog(plain.file);
    assert.deepEqual(
      { ok: r.ok, verdict: r.verdict, exitCode: r.exitCode, entries: r.entries, chains: r.chains, checkpoints: r.checkpoints },
      { ok: true, verdict: 'intact', exitCode: 0, entries: plain.lines.length, chains: 1, checkpoints: 0 },
    );
    assert.deepEqual(r.findings, []);
    const s = await verifyAuditLog(signed.file, { publicKey: keys.publicKey });
    assert.equal(s.ok, true);
    assert.equal(s.checkpoints, 6, 'one after the start entry, 4 periodic, 1 final');
  });

  const cases: { name: string; mutate: (l: string[]) => string[]; line: number; reason: RegExp }[] = [
    {
      name: 'editing a field',
      mutate: (l) => l.map((x, i) => (i === 6 ? x.replace('"status_code":200', '"status_code":404') : x)),
      line: 7,
      reason: /edited/,
    },
    {
      name: 'editing the client IP',
      mutate: (l) => l.map((x, i) => (i === 3 ? x.replace('192.0.2.2', '192.0.2.99') : x)),
      line: 4,
      reason: /edited/,
    },
    { name: 'deleting an entry', mutate: (l) => l.filter((_, i) => i !== 8), line: 9, reason: /removed/ },
    {
      name: 'inserting a copy',
      mutate: (l) => [...l.slice(0, 5), l[3] as string, ...l.slice(5)],
      line: 6,
      reason: /reordered or duplicated/,
    },
    {
      name: 'swapping two entries',
      mutate: (l) => [...l.slice(0, 4), l[5] as string, l[4] as string, ...l.slice(6)],
      line: 5,
      reason: /removed|reordered/,
    },
    { name: 'removing the head', mutate: (l) => l.slice(2), line: 1, reason: /beginning is missing/ },
    {
      // Blank lines are benign; the entry they replaced leaves a gap in the sequence.
      name: 'a blank line in place of an entry',
      mutate: (l) => l.map((x, i) => (i === 10 ? '' : x)),
      line: 12,
      reason: /removed/,
    },
    {
      name: 'editing and re-hashing one entry',
      mutate: (l) =>
        l.map((x, i) => {
          if (i !== 6) return x;
          const edited = x.replace('"status_code":200', '"status_code":403');
          const covered = `${edited.slice(0, -76)}}}`;
          return `${edited.slice(0, -76)},"hash":"${createHash('sha256').update(covered).digest('hex')}"}}`;
        }),
      line: 8,
      reason: /does not link/,
    },
  ];
  for (const c of cases) {
    it(`detects ${c.name}`, async () => {
      const r = await verifyAuditLog(rewrite(c.mutate(plain.lines)));
      assert.equal(r.ok, false);
      assert.equal(r.verdict, 'tampered');
      assert.equal(r.exitCode, 1);
      assert.equal(r.firstBadLine, c.line);
      assert.match(r.reason ?? '', c.reason);
    });
  }

  it('a torn last line without a key is a crash or a cut: intact, with notes for the fragment and the open chain', async () => {
    const r = await verifyAuditLog(rewrite([...plain.lines.slice(0, -1), (plain.lines.at(-1) as string).slice(0, 40)]));
    assert.equal(r.verdict, 'intact');
    assert.deepEqual(
      r.findings.map((f) => [f.code, f.line]),
      [
        ['torn-fragment', 22],
        ['chain-open', 21],
      ],
    );
  });

  it('a cut tail passes the hash chain alone but not the signed checkpoints', async () => {
    const cut = rewrite(signed.lines.slice(0, -4));
    assert.equal((await verifyAuditLog(cut)).ok, true, 'without the key, truncation is invisible: that is why checkpoints exist');
    const r = await verifyAuditLog(cut, { publicKey: keys.publicKey });
    assert.equal(r.ok, false);
    assert.equal(r.verdict, 'unsealed');
    assert.match(r.reason ?? '', /tail was cut/);
  });

  it('a checkpoint signed by another key is rejected', async () => {
    const r = await verifyAuditLog(signed.file, { publicKey: otherKeys.publicKey });
    assert.equal(r.ok, false);
    assert.match(r.reason ?? '', /another key/);
  });

  it('HMAC chains need the key, and the right one', async () => {
    const h = await makeLog({ hashKey: 'k3y' });
    const noKey = await verifyAuditLog(h.file);
    assert.match(noKey.reason ?? '', /hashKey is needed/);
    assert.equal(noKey.verdict, 'cannot-verify', 'without the key nothing is proven either way: exit 2, not 1');
    assert.equal(noKey.exitCode, 2);
    assert.match((await verifyAuditLog(h.file, { hashKey: 'wrong' })).reason ?? '', /edited/);
    assert.equal((await verifyAuditLog(h.file, { hashKey: 'k3y' })).ok, true);
  });
});

describe('several processes, one file', () => {
  it('each writer keeps its own chain and every chain verifies', async () => {
    const file = tmpFile();
    const writer = join(__dirname, 'fixtures', 'writer.js');
    const startAt = String(Date.now() + 1500);
    await Promise.all([1, 2, 3].map(() => run(process.execPath, [writer, file, '300', startAt])));
    const r = await verifyAuditLog(file);
    assert.equal(r.ok, true, r.reason);
    assert.equal(r.chains, 3);
    assert.equal(r.entries, 3 * 302, 'start + 300 + stop per writer');
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const pids = new Set(lines.map((l) => JSON.parse(l).service.name));
    assert.equal(pids.size, 3);
    // The writers really interleaved: the file is not three blocks one after another.
    const switches = lines.filter(
      (l, i) => i > 0 && JSON.parse(l).audit.chain !== JSON.parse(lines[i - 1] as string).audit.chain,
    ).length;
    assert.ok(switches > 2, `only ${switches} switches between writers`);
  });
});

describe('CLI', () => {
  const cli = join(__dirname, '..', '..', 'src', 'cli', 'index.js');
  it('exit 0 and a summary for an intact log; 1 for a tampered one; 2 for a missing file', async () => {
    const { file, lines } = await makeLog({ signingKey: keys.privateKey });
    const pub = tmpFile('audit.pub');
    writeFileSync(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));
    const ok = await run(process.execPath, [cli, 'verify', file, '--public-key', pub]);
    assert.match(ok.stdout, /^INTACT: 24 entries in 1 chain \(1 closed\), 2 signed checkpoints verified/);
    const bad = rewrite(lines.filter((_, i) => i !== 4));
    await assert.rejects(run(process.execPath, [cli, 'verify', bad]), (e: { code: number; stdout: string }) => {
      assert.equal(e.code, 1);
      assert.match(e.stdout, /^TAMPERED: .*:5: sequence jumps from 4 to 6/);
      return true;
    });
    await assert.rejects(
      run(process.execPath, [cli, 'verify', '/nonexistent/audit.jsonl']),
      (e: { code: number }) => e.code === 2,
    );
    await assert.rejects(run(process.execPath, [cli, 'frobnicate']), (e: { code: number }) => e.code === 2);
    const json = await run(process.execPath, [cli, 'verify', file, '--json']);
    assert.equal(JSON.parse(json.stdout).ok, true);
  });

  it('keygen writes a usable key pair', async () => {
    const prefix = tmpFile('k');
    await run(process.execPath, [cli, 'keygen', prefix]);
    const { file } = await makeLog({ signingKey: readFileSync(`${prefix}.key`) }, 3);
    assert.equal((await verifyAuditLog(file, { publicKey: readFileSync(`${prefix}.pub`) })).ok, true);
  });

  it('keygen refuses a missing directory and an existing file, and then writes neither half', async () => {
    const missing = join(tmpFile('nodir'), 'k');
    await assert.rejects(run(process.execPath, [cli, 'keygen', missing]), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 2);
      assert.match(e.stderr, /keygen: no directory .*nodir/);
      return true;
    });
    const dir = tmpFile('keys');
    mkdirSync(dir);
    for (const asDir of [dir, `${dir}/`]) {
      await assert.rejects(run(process.execPath, [cli, 'keygen', asDir]), (e: { code: number; stderr: string }) => {
        assert.match(e.stderr, /is a directory: give a file prefix in it/);
        return e.code === 2;
      });
    }
    assert.deepEqual(readdirSync(dir), []);
    const prefix = tmpFile('k');
    writeFileSync(`${prefix}.pub`, 'mine');
    await assert.rejects(run(process.execPath, [cli, 'keygen', prefix]), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 2);
      assert.match(e.stderr, /\.pub exists \(not overwritten\)/);
      return true;
    });
    assert.equal(existsSync(`${prefix}.key`), false, 'no private key without its public half');
    assert.equal(readFileSync(`${prefix}.pub`, 'utf8'), 'mine');
  });
});

describe('log rotation', () => {
  it('reopen() after a rename continues the chain in a new file; both verify together, oldest first', async () => {
    const { renameSync } = await import('node:fs');
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    for (let i = 0; i < 5; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/a/${i}` });
    await log.drained();
    renameSync(file, `${file}.1`);
    log.reopen();
    for (let i = 0; i < 5; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/b/${i}` });
    await log.close();
    assert.equal(readFileSync(`${file}.1`, 'utf8').trimEnd().split('\n').length, 6);
    const fresh = readFileSync(file, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      fresh.map((e) => e.event.action),
      ['audit-log-reopened', ...Array(5).fill('http-request'), 'audit-log-stopped'],
      'the new file starts with the reopen entry, which continues the chain',
    );
    assert.equal(fresh[0].audit.reason, 'reopen');
    assert.equal(fresh[0].audit.previous, undefined, 'the new file was empty');
    assert.equal((await verifyAuditLog([`${file}.1`, file])).ok, true);
    assert.equal((await verifyAuditLog(file)).ok, false, 'the new file alone lacks the head of the chain');
  });

  it('reopen() in the same turn as the writes: entries written before it land in the old file', async () => {
    const { renameSync } = await import('node:fs');
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    await log.drained(); // the start entry opened the file
    for (let i = 0; i < 3; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/a/${i}` });
    renameSync(file, `${file}.1`);
    log.reopen();
    log.write({ category: 'web', action: 'http-request', outcome: 'success', path: '/b/0' });
    await log.close();
    const old = readFileSync(`${file}.1`, 'utf8').trimEnd().split('\n');
    assert.deepEqual(
      old.map((l) => JSON.parse(l).url?.path),
      [undefined, '/a/0', '/a/1', '/a/2'],
    );
    const fresh = readFileSync(file, 'utf8').trimEnd().split('\n');
    assert.equal(JSON.parse(fresh[0] as string).event.action, 'audit-log-reopened');
    assert.equal(JSON.parse(fresh[1] as string).url.path, '/b/0');
    assert.equal((await verifyAuditLog([`${file}.1`, file])).ok, true);
  });
});
