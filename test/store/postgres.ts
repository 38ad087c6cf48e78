// A private PostgreSQL cluster for the store tests: initdb in a temp dir, listening only on a Unix socket in
// that dir (no TCP port, no system service), trust authentication, stopped by the test's `after`.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, readdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { sleep, tempDir } from '../helpers.js';

/** The directory holding initdb, pg_ctl and postgres: Debian keeps them in /usr/lib/postgresql/<ver>/bin. */
export function postgresBin(): string | undefined {
  const roots = ['/usr/lib/postgresql', '/usr/local/lib/postgresql'];
  for (const root of roots) {
    if (!existsSync(root)) continue;
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0] !== undefined) return join(root, versions[0], 'bin');
  }
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  return undefined;
}

/**
 * `{ skip }` for node:test when PostgreSQL is not installed. In CI a missing PostgreSQL is a failure: .ci/run
 * installs Debian's postgresql package.
 */
export function needsPostgres(): { skip: string | false } {
  if (postgresBin()) return { skip: false };
  if (process.env.CI) throw new Error('PostgreSQL (initdb, pg_ctl) is required in CI (.ci/run installs it) but was not found');
  const msg =
    'SKIPPED: PostgreSQL is not installed (no initdb); the PostgreSQL store tests did not run (apt-get install postgresql)';
  console.error(`\n!!!!!!!! ${msg} !!!!!!!!\n`);
  return { skip: msg };
}

export interface TestPostgres {
  /** A connection string for the superuser `postgres` over the Unix socket. */
  url: string;
  /** A connection string for another role of the cluster. */
  urlAs(role: string): string;
  /** Runs SQL through psql as the superuser; returns its output (unaligned, tuples only). */
  psql(sql: string): string;
  /** Stops the server (fast shutdown: sessions are cut). */
  stop(): Promise<void>;
  /** Starts it again on the same socket. */
  start(): Promise<void>;
  dir: string;
}

/** The user the server runs as: PostgreSQL refuses to run as root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name]).toString());
      const gid = Number(execFileSync('id', ['-g', name]).toString());
      return { uid, gid };
    } catch {}
  }
  throw new Error('running as root and no postgres or nobody user to run PostgreSQL as');
}

function run(bin: string, args: string[], as: { uid: number; gid: number } | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(as ?? {}) });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${bin} ${args.join(' ')} exited ${code}:\n${out}`)),
    );
  });
}

/**
 * initdb + pg_ctl start in a fresh temp dir. `settings` are server settings (`-c`): e.g. `listen_addresses`
 * and `port` for a test that needs TCP (the socket and the URLs follow `port`).
 */
export async function startPostgres(settings: Record<string, string> = {}): Promise<TestPostgres> {
  const bin = postgresBin();
  if (!bin) throw new Error('PostgreSQL is not installed');
  const as = runAs();
  const dir = tempDir('ppa-pg-');
  if (as) chownSync(dir, as.uid, as.gid);
  const data = join(dir, 'data');
  await run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'], as);
  const opts = {
    listen_addresses: "''",
    unix_socket_directories: `'${dir}'`,
    port: '5432',
    fsync: 'off',
    max_connections: '100',
    ...settings,
  };
  const o = Object.entries(opts)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ');
  const ctl = (args: string[]) => run(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'server.log'), ...args], as);
  const start = async () => {
    await ctl(['-w', '-t', '30', '-o', o, 'start']);
  };
  await start();
  const port = opts.port;
  const urlAs = (role: string) => `postgresql://${role}@/postgres?host=${encodeURIComponent(dir)}&port=${port}`;
  const psqlBin = existsSync(join(bin, 'psql')) ? join(bin, 'psql') : 'psql';
  const pg: TestPostgres = {
    dir,
    url: urlAs('postgres'),
    urlAs,
    psql: (sql) =>
      execFileSync(
        psqlBin,
        ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', dir, '-p', port, '-U', 'postgres', '-c', sql],
        {
          encoding: 'utf8',
        },
      ).trim(),
    async stop() {
      await ctl(['-w', '-t', '30', '-m', 'fast', 'stop']);
    },
    async start() {
      for (let i = 0; ; i++) {
        try {
          await start();
          return;
        } catch (e) {
          if (i > 5) throw e;
          await sleep(200);
        }
      }
    },
  };
  return pg;
}
