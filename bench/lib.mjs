// Small helpers shared by the benchmarks: the load process, timing loops, medians, a table printer.
import { execFileSync, fork, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Starts the load generator (bench/load.mjs) in its own process. Where taskset exists, this process (the
 * servers) runs on core 0 and the load on core 1, so the two never compete for one core.
 */
export function startLoad() {
  let pinned = false;
  try {
    execFileSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });
    pinned = true;
  } catch {}
  const script = fileURLToPath(new URL('./load.mjs', import.meta.url));
  return pinned
    ? spawn('taskset', ['-c', '1', process.execPath, script], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : fork(script);
}
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Calls fn in batches for about `ms` milliseconds; returns calls per second. */
export function opsPerSecond(fn, ms = 150) {
  let n = 0;
  const batch = 2000;
  const start = process.hrtime.bigint();
  const budget = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  do {
    for (let i = 0; i < batch; i++) fn();
    n += batch;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  return (n * 1e9) / Number(elapsed);
}

/** Calls batch(count) repeatedly for about `ms` milliseconds; batch runs `count` operations itself. */
export function batchOpsPerSecond(batch, ms = 150, count = 4096) {
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  do {
    batch(count);
    n += count;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  return (n * 1e9) / Number(elapsed);
}

export function fmt(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(1);
}

export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  for (const r of rows) console.log(r.map((c, i) => String(c).padEnd(widths[i])).join('  '));
}
