// `query FILE --ip X --json` (the CLI, verifying every chain it reads) vs `jq -c 'select(.client.ip == "X")'`
// on the same file of ENTRIES entries (default 1,000,000), written by the real writer. Each tool runs as a
// child process, alternating, ROUNDS times (default 3); wall time, median, and the ratio. Needs jq on PATH.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRequests } from './requests.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENTRIES = Number(process.env.ENTRIES ?? 1_000_000);
const ROUNDS = Number(process.env.QUERY_ROUNDS ?? process.env.ROUNDS ?? 3);
const TARGET = '10.1.2.3';

try {
  execFileSync('jq', ['--version']);
} catch {
  console.log('\nquery vs jq: skipped (jq is not installed: apt-get install jq)');
  process.exit(0);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-query-'));
const file = path.join(dir, 'audit.jsonl');
try {
  await writeRequests(file, ENTRIES);
  const size = fs.statSync(file).size;

  const time = (cmd, args) =>
    new Promise((resolve, reject) => {
      const t = process.hrtime.bigint();
      const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ ms: Number(process.hrtime.bigint() - t) / 1e6, code, out, err }));
    });
  const cli = path.join(root, 'dist/cjs/cli/index.js');
  const q = [];
  const j = [];
  for (let r = 0; r < ROUNDS; r++) {
    const a = await time(process.execPath, [cli, 'query', file, '--ip', TARGET, '--json']);
    const b = await time('jq', ['-c', `select(.client.ip == "${TARGET}")`, file]);
    // Both must find the same entries (the same bytes), and query must have verified the file.
    if (a.code !== 0 || !/INTACT/.test(a.err)) throw new Error(`query failed: ${a.code} ${a.err}`);
    if (JSON.stringify(JSON.parse(a.out)) !== JSON.stringify(JSON.parse(b.out))) throw new Error('query and jq disagree');
    q.push(a.ms);
    j.push(b.ms);
  }
  const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  const mq = median(q);
  const mj = median(j);
  console.log(
    `\nquery vs jq: ${ENTRIES.toLocaleString('en')} entries (${(size / 1e6).toFixed(0)} MB), --ip ${TARGET}, ${ROUNDS} alternating rounds, median wall time`,
  );
  console.log(
    `  query --json (verifying)  ${(mq / 1000).toFixed(2)} s   rounds: ${q.map((x) => (x / 1000).toFixed(2)).join(' ')}`,
  );
  console.log(
    `  jq -c select(...)         ${(mj / 1000).toFixed(2)} s   rounds: ${j.map((x) => (x / 1000).toFixed(2)).join(' ')}`,
  );
  console.log(`  query is ${(mj / mq).toFixed(2)}x as fast as jq`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
