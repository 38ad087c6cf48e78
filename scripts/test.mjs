// Runs every compiled *.test.js under build/test with node's test runner (Node 20 has no glob support in
// --test, and a bare directory would also run helpers and fixtures).
import { spawn } from 'node:child_process';
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
// No --test-force-exit: with it Node's runner can exit a file's process before the verdicts of its last tests
// are reported, and the run then passes with fewer tests than it has (seen here with a property-test file;
// nodejs/node#64833). Without it, a file that leaves a server or timer behind keeps its process alive: the
// watchdog below then fails the whole run, naming the cause, instead of hanging it. Each test still has its
// own timeout.
const limitMs = Number(process.env.TEST_RUN_TIMEOUT_MS ?? 30 * 60_000);
const child = spawn(process.execPath, ['--test', '--test-timeout=240000', ...process.argv.slice(2), ...files], {
  stdio: 'inherit',
  // Its own process group, so that the watchdog (and Ctrl-C) end the test files' processes too.
  detached: true,
});
const killAll = (signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
};
const watchdog = setTimeout(() => {
  console.error(
    `\nscripts/test.mjs: the run did not end within ${limitMs / 60_000} minutes: a test file left a handle open ` +
      '(a server, socket, timer or child process) or hung; every test process was killed.',
  );
  killAll('SIGKILL');
  process.exit(1);
}, limitMs);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll(signal);
    process.exit(1);
  });
}
child.on('exit', (code, signal) => {
  clearTimeout(watchdog);
  process.exit(code ?? (signal ? 1 : 0));
});
