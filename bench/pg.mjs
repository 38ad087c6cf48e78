// A private PostgreSQL for the store benchmarks: initdb in a temp dir, a Unix socket in that dir (no TCP
// port, no system service), its default durability settings. Stopped and removed by stop(). `core`: pin the
// cluster to one CPU (taskset, where it exists), as a database on its own host would not share the
// application's.
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function pgBin() {
  const root = '/usr/lib/postgresql';
  const v = existsSync(root)
    ? readdirSync(root)
        .filter((d) => existsSync(path.join(root, d, 'bin', 'initdb')))
        .sort((a, b) => b - a)[0]
    : undefined;
  if (v === undefined) throw new Error('PostgreSQL is not installed (apt-get install postgresql)');
  return path.join(root, v, 'bin');
}

/**
 * Starts the server; returns its connection string, a psql runner (ms taken), `query` (psql's unaligned
 * output), its version, whether it was pinned, `cpuMs()` (its processes' CPU time so far), and stop().
 */
export function startPostgres({ core } = {}) {
  const bin = pgBin();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-pg-'));
  // PostgreSQL refuses to run as root.
  const as =
    os.userInfo().uid === 0
      ? { uid: Number(execFileSync('id', ['-u', 'postgres'])), gid: Number(execFileSync('id', ['-g', 'postgres'])) }
      : {};
  if (as.uid !== undefined) chownSync(dir, as.uid, as.gid);
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { ...as, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stdout}${r.stderr}`);
  };
  const data = path.join(dir, 'data');
  run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale']);
  const start = [
    path.join(bin, 'pg_ctl'),
    '-D',
    data,
    '-l',
    path.join(dir, 'log'),
    '-w',
    '-o',
    `-c listen_addresses='' -c unix_socket_directories='${dir}'`,
    'start',
  ];
  let pinned = false;
  if (core !== undefined) {
    try {
      execFileSync('taskset', ['-c', String(core), 'true'], { stdio: 'ignore' });
      pinned = true;
    } catch {}
  }
  if (pinned) run('taskset', ['-c', String(core), ...start]);
  else run(start[0], start.slice(1));
  const postmaster = readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0];
  return {
    dir,
    pinned,
    /**
     * CPU ms of this cluster so far, from /proc: the postmaster's (with its children that have exited: a
     * pool's sessions end with it) and its live children's. Other clusters on the machine are not counted.
     */
    cpuMs() {
      let ticks = 0;
      for (const p of readdirSync('/proc')) {
        if (!/^\d+$/.test(p)) continue;
        let stat;
        try {
          stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        } catch {
          continue;
        }
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (p === postmaster || f[1] === postmaster) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      }
      return ticks * 10;
    },
    url: `postgresql://postgres@/postgres?host=${encodeURIComponent(dir)}`,
    version: execFileSync(path.join(bin, 'postgres'), ['--version']).toString().trim(),
    psql(args) {
      const t = process.hrtime.bigint();
      execFileSync('psql', ['-X', '-q', '-h', dir, '-U', 'postgres', ...args]);
      return Number(process.hrtime.bigint() - t) / 1e6;
    },
    query(sql) {
      return execFileSync('psql', ['-X', '-q', '-A', '-t', '-h', dir, '-U', 'postgres', '-c', sql], { encoding: 'utf8' }).trim();
    },
    stop() {
      run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
