// Small helpers shared by the benchmarks: the load process, timing loops, medians, a table printer, the
// store benchmarks' file of request entries.
import { execFileSync, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let pinned;
/** Whether taskset can pin processes (tried once, by pinning this process to core 0). */
function canPin() {
  if (pinned === undefined) {
    try {
      execFileSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });
      pinned = true;
    } catch {
      pinned = false;
    }
  }
  return pinned;
}

function start(script, args, core, env = process.env) {
  const file = fileURLToPath(new URL(script, import.meta.url));
  return canPin()
    ? spawn('taskset', ['-c', String(core), process.execPath, file, ...args], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env,
      })
    : fork(file, args, { env });
}

/**
 * Starts the load generator (bench/load.mjs) in its own process. Where taskset exists, servers run on core 0
 * and the load on core 1, so the two never compete for one core.
 */
export function startLoad() {
  return start('./load.mjs', [], 1);
}

/** Asks a child process something and waits for its answer. */
async function ask(child, message) {
  child.send(message);
  const [answer] = await once(child, 'message');
  return answer;
}

/**
 * Starts one server of bench/server.mjs in its own process on core 0. Returns its port, its CPU time so far
 * (microseconds) and a close function. `dist`: another build of the package to run (default `dist/cjs`).
 */
export async function startServer(kind, dir = '', dist = undefined) {
  const env = dist === undefined ? process.env : { ...process.env, BENCH_DIST: dist };
  const child = start('./server.mjs', [kind, dir], 0, env);
  const [m] = await once(child, 'message');
  return {
    kind,
    port: m.port,
    async cpu() {
      const { cpu } = await ask(child, 'cpu');
      return cpu.user + cpu.system;
    },
    async close() {
      await ask(child, 'close');
      if (child.exitCode === null) await once(child, 'exit');
    },
    /** Ends the server at once (a benchmark that failed). */
    kill() {
      child.kill('SIGKILL');
    },
  };
}

/**
 * One load window against one server: requests per second, and the server's capacity (operations per second
 * of its own CPU time: independent of how busy the load generator or the machine's neighbours were).
 */
export async function measure(load, server, params) {
  const cpu0 = await server.cpu();
  load.send({ ...params, port: server.port });
  const [r] = await once(load, 'message');
  const cpu = (await server.cpu()) - cpu0;
  if (r.errors > r.n / 100) throw new Error(`${server.kind}: ${r.errors} errors in ${r.n} requests`);
  return { rate: r.rate, capacity: (r.n * 1e6) / cpu };
}

/** Milliseconds of load each server gets before a comparison is measured (env WARMUP). */
export const WARMUP = Number(process.env.WARMUP ?? 6000);

/**
 * Side by side: a warm-up under load, then `pairs` pairs of windows, alternating which server goes first.
 * Returns the median rates and the median of the per-pair ratios A/B (rate and capacity).
 */
export async function comparePairs(load, a, b, { pairs, params, paramsB = params, warmup = WARMUP }) {
  // Warm-up: an Express app keeps getting faster for several seconds of load while the JIT settles; ratios
  // taken before that compare a cold server with a warm one.
  for (let spent = 0; spent < warmup; spent += 2 * params.ms) {
    await measure(load, a, params);
    await measure(load, b, paramsB);
  }
  const ra = [];
  const rb = [];
  const rates = [];
  const caps = [];
  for (let i = 0; i < pairs; i++) {
    let x;
    let y;
    if (i % 2 === 0) {
      x = await measure(load, a, params);
      y = await measure(load, b, paramsB);
    } else {
      y = await measure(load, b, paramsB);
      x = await measure(load, a, params);
    }
    ra.push(x.rate);
    rb.push(y.rate);
    rates.push(x.rate / y.rate);
    caps.push(x.capacity / y.capacity);
  }
  return {
    a: median(ra),
    b: median(rb),
    ratio: median(rates),
    capacity: median(caps),
    spread: quartiles(rates),
    ra,
    rb,
    rates,
    caps,
  };
}

/** Rounds of a comparison (env ROUNDS): fresh server processes each round. */
export const ROUNDS = Number(process.env.ROUNDS ?? 3);

/**
 * `rounds` comparisons of kinds A and B, each between freshly started server processes (started in
 * alternating order): one process's JIT and heap layout can make it several percent faster or slower than the
 * next one of the same code, so a single pair of processes is not enough. Returns the medians and quartiles
 * over every pair of every round. `roundDir()` gives each round a directory of its own (else `dir`), and
 * `afterRound(dir)` runs once its servers closed.
 */
export async function compareRounds(load, kindA, kindB, { rounds = ROUNDS, dir = '', roundDir, afterRound, ...options }) {
  const all = { ra: [], rb: [], rates: [], caps: [], perRound: [] };
  for (let r = 0; r < rounds; r++) {
    const d = roundDir ? roundDir() : dir;
    let a;
    let b;
    if (r % 2 === 0) {
      a = await startServer(kindA, d);
      b = await startServer(kindB, d);
    } else {
      b = await startServer(kindB, d);
      a = await startServer(kindA, d);
    }
    const res = await comparePairs(load, a, b, options);
    await a.close();
    await b.close();
    afterRound?.(d);
    for (const k of ['ra', 'rb', 'rates', 'caps']) all[k].push(...res[k]);
    all.perRound.push(res.ratio);
  }
  return {
    a: median(all.ra),
    b: median(all.rb),
    ratio: median(all.rates),
    capacity: median(all.caps),
    spread: quartiles(all.rates),
    perRound: all.perRound,
  };
}

/** The first and third quartiles, to show how much the pairs of one comparison disagreed. */
export function quartiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))];
  return [at(0.25), at(0.75)];
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

/** Nanoseconds of wall time. */
export const wallClock = () => Number(process.hrtime.bigint());

/** Nanoseconds of this process's CPU time (every thread's, the garbage collector's helpers included). */
export const cpuClock = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};

/**
 * Calls batch(count) repeatedly for about `ms` milliseconds of `clock`; batch runs `count` operations itself.
 */
export function batchOpsPerSecond(batch, ms = 150, count = 4096, clock = wallClock) {
  let n = 0;
  const start = clock();
  const budget = ms * 1e6;
  let elapsed = 0;
  do {
    batch(count);
    n += count;
    elapsed = clock() - start;
  } while (elapsed < budget);
  return (n * 1e9) / elapsed;
}

export function fmt(n) {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(1);
}

export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  for (const r of rows) console.log(r.map((c, i) => String(c).padEnd(widths[i])).join('  '));
}

/** Prints `compareRounds` results, one row each: `rows` is a list of `[name, result]`. */
export function comparisonTable(rows) {
  table([
    ['comparison', 'ours req/s', 'baseline req/s', 'ratio (rate)', 'pairs Q1–Q3', 'per round', 'ratio (server CPU per op)'],
    ...rows.map(([name, r]) => [
      name,
      Math.round(r.a),
      Math.round(r.b),
      `${r.ratio.toFixed(3)}x`,
      `${r.spread[0].toFixed(2)}–${r.spread[1].toFixed(2)}`,
      r.perRound.map((x) => x.toFixed(2)).join(' '),
      `${r.capacity.toFixed(3)}x`,
    ]),
  ]);
}

/**
 * `compareRounds` where every round's servers write to files of their own under `dir`, deleted after the
 * round: each round starts from the same state instead of appending to files that grow by hundreds of
 * megabytes over a run (the cost of appending varies with how much page cache the run has filled, which made
 * later rows pay more). Returns the comparison function and a counter of the audit lines written.
 */
export function freshFileRounds(load, dir, options) {
  const counted = { lines: 0 };
  const run = (a, b) =>
    compareRounds(load, a, b, {
      ...options,
      roundDir: () => fs.mkdtempSync(path.join(dir, 'round-')),
      afterRound: (roundDir) => {
        const audit = path.join(roundDir, 'audit.jsonl');
        if (fs.existsSync(audit)) counted.lines += fs.readFileSync(audit, 'utf8').split('\n').length - 1;
        fs.rmSync(roundDir, { recursive: true, force: true });
      },
    });
  return { run, counted };
}

/**
 * Writes `entries` request entries as the Express middleware writes them (about 820 bytes each) to `file`
 * with `createAuditLog` (the build's), and closes the log: the file of bench/store.mjs and its companions.
 */
export async function writeRequestLog(createAuditLog, file, entries) {
  const log = createAuditLog({ filename: file, maxQueue: entries + 10 });
  for (let i = 0; i < entries; i++) {
    log.write({
      category: 'web',
      action: 'http-request',
      outcome: i % 10 ? 'success' : 'failure',
      duration: 1234567,
      method: 'GET',
      path: `/patients/${i % 5000}/record`,
      route: '/patients/:id/record',
      status: i % 10 ? 200 : 403,
      clientIp: `203.0.113.${i % 250}`,
      clientPort: 40000 + (i % 20000),
      peerAddress: '10.0.0.1',
      peerPort: 5000,
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) curl/8.5',
      userId: `user-${i % 700}`,
      requestId: `req-${i}`,
      httpVersion: '1.1',
      domain: 'ehr.example.org',
    });
    if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
  }
  await log.close();
}
