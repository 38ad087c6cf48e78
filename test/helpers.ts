// Shared network helpers: servers on 127.0.0.1:0, raw clients that write bytes whole, split or byte by byte.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import selfsigned from 'selfsigned';

export { sleep };

const tempDirs: string[] = [];
/** A fresh directory under the system temp dir, removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (tempDirs.length === 0) {
    process.on('exit', () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  tempDirs.push(dir);
  return dir;
}

/** Runs the `proxy-protocol-audit` command line (the compiled one beside the tests) with `args`. */
export async function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [join(__dirname, '../src/cli/index.js'), ...args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

export async function listen<S extends net.Server>(server: S, host = '127.0.0.1'): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

export async function close(server: net.Server): Promise<void> {
  const s = server as net.Server & { closeAllConnections?: () => void };
  const done = new Promise<void>((resolve) => server.close(() => resolve()));
  s.closeAllConnections?.();
  await done;
}

export interface RawOptions {
  /** Source address of the client socket (a second loopback address makes the peer differ). */
  localAddress?: string;
  /** Pause between chunks, ms. */
  delay?: number;
  /** Half-close after writing. Default false. */
  end?: boolean;
  /** Stop reading after this many ms of silence once something arrived, or overall. Default 3000. */
  timeout?: number;
  /** Resolve as soon as the received text contains this. */
  until?: string | ((received: Buffer) => boolean);
}

/** Connects, writes each chunk (with `delay` between them), and collects everything until close. */
export async function raw(
  port: number,
  chunks: (string | Uint8Array)[],
  opts: RawOptions = {},
): Promise<{ data: Buffer; closed: boolean }> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: opts.localAddress });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const received: Buffer[] = [];
  let closed = false;
  const finished = new Promise<void>((resolve) => {
    const t = setTimeout(resolve, opts.timeout ?? 3000);
    const check = () => {
      const u = opts.until;
      if (!u) return;
      const all = Buffer.concat(received);
      if (typeof u === 'string' ? all.includes(u) : u(all)) {
        clearTimeout(t);
        resolve();
      }
    };
    socket.on('data', (d) => {
      received.push(d);
      check();
    });
    socket.on('close', () => {
      closed = true;
      clearTimeout(t);
      resolve();
    });
  });
  for (const c of chunks) {
    if (socket.destroyed) break;
    socket.write(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
    if (opts.delay) await sleep(opts.delay);
  }
  if (opts.end) socket.end();
  await finished;
  socket.destroy();
  return { data: Buffer.concat(received), closed };
}

/** Reads a request body, calling back with its length and SHA-256 (hex) at its end. */
export function digestBody(
  req: { on(event: 'data', l: (d: Buffer) => void): unknown; on(event: 'end', l: () => void): unknown },
  done: (bytes: number, sha256: string) => void,
): void {
  const h = createHash('sha256');
  let n = 0;
  req.on('data', (d: Buffer) => {
    h.update(d);
    n += d.length;
  });
  req.on('end', () => done(n, h.digest('hex')));
}

/** Splits bytes into one-byte chunks. */
export function bytewise(b: Uint8Array | string): Uint8Array[] {
  const buf = typeof b === 'string' ? Buffer.from(b, 'latin1') : Buffer.from(b);
  return [...buf].map((x) => Buffer.from([x]));
}

let certCache: Promise<{ key: string; cert: string }> | undefined;
/** A self-signed certificate for 127.0.0.1 and localhost, generated once per process. */
export function certificate(): Promise<{ key: string; cert: string }> {
  certCache ??= selfsigned
    .generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      extensions: [
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            { type: 7, ip: '127.0.0.1' },
          ],
        },
      ],
    } as never)
    .then((p: { private: string; cert: string }) => ({ key: p.private, cert: p.cert }));
  return certCache;
}

/** Counts the process's active timers (a leak check). */
export function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/**
 * A stand-in for a layer-4 balancer: a TCP forwarder on 127.0.0.1 that opens a connection to `port` for each
 * client and sends `header(n)` (n: the client's number, from 0) before the client's bytes.
 */
export async function proxyFront(port: number, header: (n: number) => string): Promise<{ port: number; close(): Promise<void> }> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const front = net.createServer((client) => {
    const up = net.connect(port, '127.0.0.1');
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        up.destroy();
      });
    }
    up.write(header(n++));
    client.pipe(up);
    up.pipe(client);
  });
  const p = await listen(front);
  return {
    port: p,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => front.close(() => resolve()));
    },
  };
}
