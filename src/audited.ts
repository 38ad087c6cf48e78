// Which responses have an audit entry under way, and for which log: one request gets one entry in a log,
// whichever audits of that log run on it (an `auditLog` mounted twice, `auditRequests` beside a framework's
// middleware): the later audit, closer to the app, makes it with its options. The connection-level watch
// does not record again a rejection Node makes of a request that has its own entry. Two audits writing to two
// logs each write their own.
import type { ServerResponse } from 'node:http';

/** A later audit of a request, whose options and target make the entry an earlier one opened. */
export interface Later {
  readonly log: object;
  readonly by: unknown;
  readonly target: unknown;
  /** The request id it picked (undefined: none of its own; the entry keeps the earlier audit's). */
  readonly requestId?: string | undefined;
}

// In the global registry, so that the ESM and CommonJS builds (and two copies of the package) agree about one
// response. Each response maps to its logs only: a map to the entries themselves (which hold the response)
// measured 0.89x–0.91x of the audited Express app head to head, a property on the response 0.954x, this
// 1.001x (bench/ab.mjs, 3 rounds each, against the build before one entry per request). The later audits,
// rare, are kept apart.
const key = Symbol.for('proxy-protocol-audit.audited');
interface Registry {
  logs: WeakMap<object, object | object[]>;
  later: WeakMap<object, Later[]>;
}
const global = globalThis as { [key]?: Registry };
const registry: Registry = global[key] ?? { logs: new WeakMap(), later: new WeakMap() };
global[key] = registry;

/** Whether an audit for `log` opened an entry for `res`. */
export function claimed(res: ServerResponse, log: object): boolean {
  const logs = registry.logs.get(res);
  return logs === log || (Array.isArray(logs) && logs.includes(log));
}

/** Records that an audit for `log` opened an entry for `res` (after {@link claimed} said none did). */
export function claim(res: ServerResponse, log: object): void {
  const logs = registry.logs.get(res);
  registry.logs.set(res, logs === undefined ? log : Array.isArray(logs) ? [...logs, log] : [logs, log]);
}

/** A later audit of `res` for a log that has its entry under way: its options will make the entry. */
export function handOver(res: ServerResponse, later: Later): void {
  const list = registry.later.get(res);
  if (list === undefined) registry.later.set(res, [later]);
  else list.push(later);
}

/** The latest audit of `res` for `log` that came after the one that opened the entry, if any came. */
export function takeOver(res: ServerResponse, log: object): Later | undefined {
  const list = registry.later.get(res);
  if (list === undefined) return undefined;
  for (let i = list.length - 1; i >= 0; i--) if ((list[i] as Later).log === log) return list[i];
  return undefined;
}

/** Whether an audit has an entry under way (or written) for `res`. */
export function isAudited(res: object | null | undefined): boolean {
  return res != null && registry.logs.has(res);
}
