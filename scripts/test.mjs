// Runs every compiled *.test.js under build/test with node's test runner (Node 20 has no glob support in
// --test, and a bare directory would also run helpers and fixtures).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'fixtures' ? [] : find(p);
    return e.name.endsWith('.test.js') ? [p] : [];
  });
}

// Only tests whose source still exists: build/ is not cleaned, and a removed test's old output must not run.
const files = find('build/test')
  .filter((f) => existsSync(f.replace(/^build[\\/]/, '').replace(/\.js$/, '.ts')))
  .sort();
// A test that fails with a server still open must not keep its file's process alive (force-exit), and no
// test may hang the run (timeout per test).
const r = spawnSync(
  process.execPath,
  ['--test', '--test-force-exit', '--test-timeout=240000', ...process.argv.slice(2), ...files],
  {
    stdio: 'inherit',
  },
);
process.exit(r.status ?? 1);
