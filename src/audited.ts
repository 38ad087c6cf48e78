// Which responses have an audit entry under way, and for which log: one request gets one entry in a log,
// whichever audits run on it (an `auditLog` mounted twice, `auditRequests` beside a framework's middleware),
// and the connection-level watch does not record again a rejection Node makes of a request that has its own
// entry. Two audits writing to two logs each write their own.
import type { ServerResponse } from 'node:http';

/** An entry under way, which a later audit of the same request for the same log takes over (see claim). */
export interface Claim {
  readonly log: object;
  /** The later audit's options and target replace the earlier's: it runs closer to the app (route, user). */
  adopt(by: unknown, target: unknown): void;
}

// Shared through the global registry, so that the ESM and CommonJS builds (and two copies of the package)
// agree about one response.
const key = Symbol.for('proxy-protocol-audit.audited');
const registry = globalThis as { [key]?: WeakMap<object, Claim | Claim[]> };
const audited: WeakMap<object, Claim | Claim[]> = registry[key] ?? new WeakMap<object, Claim | Claim[]>();
registry[key] = audited;

/** The entry an audit made for `res` in `log`, if one did. */
export function claimed(res: ServerResponse, log: object): Claim | undefined {
  const prior = audited.get(res);
  if (prior === undefined) return undefined;
  if (!Array.isArray(prior)) return prior.log === log ? prior : undefined;
  return prior.find((p) => p.log === log);
}

/** Registers the entry `c` an audit opened for `res` (after {@link claimed} found none for its log). */
export function claim(res: ServerResponse, c: Claim): void {
  const prior = audited.get(res);
  if (prior === undefined) audited.set(res, c);
  else audited.set(res, Array.isArray(prior) ? [...prior, c] : [prior, c]);
}

/** Whether an audit has an entry under way (or written) for `res`. */
export function isAudited(res: object | null | undefined): boolean {
  return res != null && audited.has(res);
}
