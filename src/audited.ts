// Which responses have an audit entry under way: one request gets one entry, whichever audits run on it (an
// `auditLog` mounted twice, `auditRequests` beside a framework's middleware), and the connection-level watch
// does not record again a rejection Node makes of a request that has its own entry.
import type { ServerResponse } from 'node:http';

// Shared through the global registry, so that the ESM and CommonJS builds (and two copies of the package)
// agree about one response.
const key = Symbol.for('proxy-protocol-audit.audited');
const registry = globalThis as { [key]?: WeakSet<object> };
const audited: WeakSet<object> = registry[key] ?? new WeakSet<object>();
registry[key] = audited;

/** Marks `res` as audited; false when it was already (the caller then leaves it to the first audit). */
export function claim(res: ServerResponse): boolean {
  if (audited.has(res)) return false;
  audited.add(res);
  return true;
}

/** Whether an audit has an entry under way (or written) for `res`. */
export function isAudited(res: object | null | undefined): boolean {
  return res != null && audited.has(res);
}
