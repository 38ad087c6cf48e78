// Starting real HAProxy and nginx processes on loopback for the interoperability tests.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { sleep, tempDir } from '../helpers.js';

/** Absolute path of a binary, or undefined. */
export function which(name: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', ...(process.env.PATH ?? '').split(':')]) {
    try {
      execFileSync('test', ['-x', join(dir, name)]);
      return join(dir, name);
    } catch {}
  }
  return undefined;
}

/**
 * `{ skip }` for node:test when a peer binary is missing. In CI a missing binary is a failure, never a skip:
 * .ci/run installs them.
 */
export function needs(name: string): { skip: string | false } {
  if (which(name)) return { skip: false };
  if (process.env.CI) throw new Error(`${name} is required in CI (.ci/run installs it) but was not found`);
  const msg = `SKIPPED: ${name} is not installed; these interoperability tests did not run (apt-get install haproxy nginx-light libnginx-mod-stream curl)`;
  console.error(`\n!!!!!!!! ${msg} !!!!!!!!\n`);
  return { skip: msg };
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export async function waitForPort(port: number, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
}

export interface Peer {
  stop(): Promise<void>;
  output(): string;
}

function run(cmd: string, args: string[]): Peer {
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  return {
    output: () => out,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(3000).then(() => child.kill('SIGKILL'))]);
    },
  };
}

/** Starts `name` and waits until it listens on every port; on failure, stops it and says what it printed. */
async function start(name: string, args: string[], ports: number[]): Promise<Peer> {
  const p = run(which(name) as string, args);
  try {
    for (const port of ports) await waitForPort(port);
  } catch (e) {
    await p.stop();
    throw new Error(`${(e as Error).message}\n${name} said:\n${p.output()}`);
  }
  return p;
}

/** The global and defaults sections of the test configurations: TCP mode, short timeouts. */
export const HAPROXY_TCP = `global
  maxconn 256
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
`;

/** Runs HAProxy in the foreground with `config`. */
export async function haproxy(config: string, ports: number[]): Promise<Peer> {
  const dir = tempDir('ppa-haproxy-');
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  return start('haproxy', ['-db', '-f', file], ports);
}

/** Runs nginx in the foreground with a `stream { … }` block. */
export async function nginxStream(stream: string, ports: number[]): Promise<Peer> {
  const dir = tempDir('ppa-nginx-');
  const module = ['/usr/lib/nginx/modules/ngx_stream_module.so', '/usr/share/nginx/modules/ngx_stream_module.so'].find((m) => {
    try {
      execFileSync('test', ['-f', m]);
      return true;
    } catch {
      return false;
    }
  });
  const conf = `${module ? `load_module ${module};\n` : ''}daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
stream { ${stream} }
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  return start('nginx', ['-e', 'stderr', '-p', dir, '-c', join(dir, 'nginx.conf')], ports);
}
