import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createAuditLog } from '../../src/index.js';
import { joined, logFile, TestChain } from './log-builder.js';
import { tmpFile } from './util.js';

const execFileP = promisify(execFile);
const cli = join(__dirname, '..', '..', 'src', 'cli', 'index.js');
const keys = generateKeyPairSync('ed25519');
const pub = tmpFile('audit.pub');
writeFileSync(pub, keys.publicKey.export({ type: 'spki', format: 'pem' }));

/** Runs the CLI; resolves with the exit code and output whatever the code. */
async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [cli, ...args], { env: { ...process.env, AUDIT_KEY: 'k3y' } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

function crashedAndWitnessed(): string {
  const a = new TestChain();
  const b = new TestChain();
  const first = [a.start(), a.request('/1')];
  const tip = a.tip;
  return logFile(`${joined(first)}${a.request('/2').slice(0, 60)}\n${joined(b.life(2, 5, tip))}`);
}

const cases: { name: string; args: () => string[]; code: number; stdout: RegExp[] }[] = [
  {
    name: 'intact, with its notes',
    args: () => ['verify', crashedAndWitnessed()],
    code: 0,
    stdout: [
      /^INTACT: 6 entries in 2 chains \(1 closed, 1 crashed and witnessed\), 1 torn fragment skipped; hashes and links checked/,
      /\n {2}note {5}torn-fragment {8}\S+:3: torn fragment of 60 bytes/,
      /\n {2}note {5}writer-crashed {7}\S+:2: chain /,
    ],
  },
  {
    name: 'intact and signed',
    args: () => ['verify', logFile(joined(new TestChain({ signingKey: keys.privateKey }).life(6))), '--public-key', pub],
    code: 0,
    stdout: [/^INTACT: 10 entries in 1 chain \(1 closed\), 2 signed checkpoints verified\n$/],
  },
  {
    name: 'tampered',
    args: () => ['verify', logFile(joined(new TestChain().life(5).filter((_, i) => i !== 3)))],
    code: 1,
    stdout: [
      /^TAMPERED: \S+:4: sequence jumps from 3 to 5/,
      /\n {2}tampered sequence-gap/,
      /\n6 entries in 1 chain \(1 closed\)/,
    ],
  },
  {
    name: 'cannot verify: an empty file',
    args: () => ['verify', logFile('')],
    code: 2,
    stdout: [/^CANNOT VERIFY: no audit entry found/, /\n {2}error {4}empty-input/],
  },
  {
    name: 'cannot verify: a missing file',
    args: () => ['verify', '/nonexistent/audit.jsonl'],
    code: 2,
    stdout: [
      /^CANNOT VERIFY: \/nonexistent\/audit.jsonl: \/nonexistent\/audit.jsonl cannot be read: ENOENT/,
      /\n0 entries in 0 chains\n$/,
    ],
  },
  {
    name: 'cannot verify: an HMAC log without its key',
    args: () => ['verify', logFile(joined(new TestChain({ hashKey: 'k3y' }).life(2)))],
    code: 2,
    stdout: [/^CANNOT VERIFY: \S+:1: HMAC chain \S+: the hashKey is needed/],
  },
  {
    name: 'the same with its key from the environment',
    args: () => ['verify', logFile(joined(new TestChain({ hashKey: 'k3y' }).life(2))), '--hash-key-env', 'AUDIT_KEY'],
    code: 0,
    stdout: [/^INTACT: 4 entries/],
  },
  {
    name: 'unsealed',
    args: () => [
      'verify',
      logFile(joined(new TestChain({ signingKey: keys.privateKey }).life(12).slice(0, 15))),
      '--public-key',
      pub,
    ],
    code: 3,
    stdout: [
      /^UNSEALED: \S+:15: chain \S+ ends at sequence 15 without a final signed checkpoint/,
      /proves 12 entries, 3 follow unproven/,
    ],
  },
  { name: 'a usage error', args: () => ['verify', '--frobnicate'], code: 2, stdout: [/^$/] },
  { name: 'no file', args: () => ['verify'], code: 2, stdout: [/^$/] },
];

describe('CLI verify: exit codes and output', () => {
  for (const c of cases) {
    it(`${c.name}: exit ${c.code}`, async () => {
      const r = await run(...c.args());
      assert.equal(r.code, c.code, r.stdout + r.stderr);
      for (const re of c.stdout) assert.match(r.stdout, re);
    });
  }

  it('--json prints the whole result, with the same exit code', async () => {
    const r = await run('verify', crashedAndWitnessed(), '--json');
    assert.equal(r.code, 0);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(j).sort(), [
      'chainSummaries',
      'chains',
      'checkpoints',
      'entries',
      'exitCode',
      'findings',
      'findingsTotal',
      'fragments',
      'ok',
      'verdict',
    ]);
    assert.deepEqual(
      { ok: j.ok, verdict: j.verdict, exitCode: j.exitCode, entries: j.entries, chains: j.chains, fragments: j.fragments },
      { ok: true, verdict: 'intact', exitCode: 0, entries: 6, chains: 2, fragments: 1 },
    );
    assert.deepEqual(
      j.findings.map((f: { code: string; severity: string; line: number }) => [f.code, f.severity, f.line]),
      [
        ['torn-fragment', 'note', 3],
        ['writer-crashed', 'note', 2],
      ],
    );
    assert.deepEqual(
      j.chainSummaries.map((c: { status: string; entries: number }) => [c.status, c.entries]),
      [
        ['witnessed', 2],
        ['closed', 4],
      ],
    );
    const bad = await run('verify', logFile(''), '--json');
    assert.equal(bad.code, 2);
    assert.equal(JSON.parse(bad.stdout).verdict, 'cannot-verify');
  });

  it('the usage text names every exit code', async () => {
    const r = await run('help');
    assert.equal(r.code, 0);
    for (const re of [/Exit 0: intact/, /1: tampered/, /2: cannot verify/, /3: unsealed/]) assert.match(r.stdout, re);
  });

  it("COMMAND --help prints that command's usage (exit 0); --version the package version", async () => {
    const h = await run('verify', '--help');
    assert.equal(h.code, 0);
    assert.match(h.stdout, /^Usage:\n {2}proxy-protocol-audit verify FILE/);
    assert.doesNotMatch(h.stdout, /proxy-protocol-audit ship/);
    const v = await run('--version');
    assert.equal(v.code, 0);
    const { version } = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8'));
    assert.equal(v.stdout, `${version}\n`);
  });
});

describe('CLI verify: what an operator gets wrong', () => {
  async function realLog(options: Parameters<typeof createAuditLog>[0]): Promise<string> {
    const log = createAuditLog(options);
    for (let i = 0; i < 3; i++) log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/p/${i}` });
    await log.close();
    return options.filename as string;
  }

  it('a hash key file ending in a newline (made with echo) is the key without it; an empty key is refused', async () => {
    const file = await realLog({ filename: tmpFile(), hashKey: 'secret123' });
    const withNewline = tmpFile('key');
    writeFileSync(withNewline, 'secret123\n');
    assert.equal((await run('verify', file, '--hash-key-file', withNewline)).code, 0);
    const empty = tmpFile('empty-key');
    writeFileSync(empty, '');
    const r = await run('verify', file, '--hash-key-file', empty);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /hash key is empty/);
  });

  it("the private key given as --public-key verifies, with a warning to keep it off the auditor's machine", async () => {
    const file = logFile(joined(new TestChain({ signingKey: keys.privateKey }).life(2)));
    const key = tmpFile('signing.key');
    writeFileSync(key, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const r = await run('verify', file, '--public-key', key);
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stderr, /warning: \S+ is a private key: verify needs only the \.pub file/);
    assert.doesNotMatch((await run('verify', file, '--public-key', pub)).stderr, /warning/);
  });

  it('a rotated set named in any order (as a shell glob sorts it) is read oldest first', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file });
    log.write({ category: 'web', action: 'http-request', outcome: 'success', path: '/old' });
    await log.drained();
    renameSync(file, `${file}.1`);
    log.reopen();
    log.write({ category: 'web', action: 'http-request', outcome: 'success', path: '/new' });
    await log.close();
    const r = await run('verify', file, `${file}.1`, file);
    assert.equal(r.code, 0, r.stdout);
  });

  it('zero bytes a power loss left after the last line are a torn fragment, not tampering', async () => {
    const file = await realLog({ filename: tmpFile() });
    appendFileSync(file, Buffer.alloc(4096));
    assert.equal((await run('verify', file)).code, 0);
    await realLog({ filename: file }); // a next writer ends the run of zeros and goes on
    const r = await run('verify', file, '--json');
    const v = JSON.parse(r.stdout);
    assert.equal(v.verdict, 'intact');
    assert.ok(v.findings.some((f: { code: string }) => f.code === 'torn-fragment'));
  });
});
