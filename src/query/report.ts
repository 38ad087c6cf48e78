// auditReport: the summary an auditor puts in a review — counts per day, user, client and route, failures,
// refused connections, first and last access per user — over verified sources.

import type { StoreSource } from '../store/query-store.js';
import type { EntryView } from './entry.js';
import type { QueryFilters } from './filter.js';
import { type AuditQuery, type QueryOptions, type QueryResult, queryAuditLog } from './query.js';

/** A count of requests and of those that failed. */
export interface Tally {
  requests: number;
  failures: number;
}

/** What {@link auditReport} found. Lists are sorted by requests, most first (days by date). */
export interface AuditReport {
  /** The files read, in reading order. */
  sources: string[];
  /** The filters as applied (times absolute). */
  filters: Record<string, string[]>;
  /** Verification of everything read: verdict, exit code, findings. */
  verification: QueryResult;
  /** Entries that matched the filters (requests, refused connections and the log's own entries). */
  entries: number;
  /** `@timestamp` of the first and last matching entry. */
  first?: string;
  last?: string;
  /** HTTP requests (`event.category` web) and how many failed (`event.outcome` failure). */
  requests: Tally;
  perDay: (Tally & { day: string })[];
  /** Per `user.id`, with its first and last access. */
  perUser: (Tally & { user: string; first: string; last: string })[];
  /** Requests without a `user.id`. */
  anonymous: Tally;
  perClient: (Tally & { ip: string })[];
  /** Per `http.route` (the path where no route was recorded). */
  perRoute: (Tally & { route: string })[];
  /** Failed requests by status code (or error type when none was sent: `client_aborted`, `timeout`…). */
  failures: { reason: string; count: number }[];
  /** Connections refused before any request (`connection-rejected`): total, by error code, by peer. */
  refused: { total: number; byCode: { code: string; count: number }[]; byPeer: { peer: string; count: number }[] };
}

function bump(map: Map<string, Tally>, key: string, failed: boolean): Tally {
  let t = map.get(key);
  if (!t) {
    t = { requests: 0, failures: 0 };
    map.set(key, t);
  }
  t.requests++;
  if (failed) t.failures++;
  return t;
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

const byRequests = (a: Tally, b: Tally) => b.requests - a.requests;

/**
 * Reads, verifies and summarises audit files (as {@link queryAuditLog}; the same filters narrow what is
 * counted).
 *
 * @example
 * ```ts
 * const r = await auditReport(['audit.jsonl'], { from: '7d' });
 * console.log(r.verification.verdict, r.requests, r.perUser[0]);
 * ```
 */
export function auditReport(
  files: string | readonly string[] | StoreSource,
  filters: QueryFilters = {},
  options: Omit<QueryOptions, 'limit'> = {},
): Promise<AuditReport> {
  // Bad filters or options throw here, at the call, not as a rejection.
  return summarise(queryAuditLog(files, filters, { ...options, limit: undefined }));
}

async function summarise(q: AuditQuery): Promise<AuditReport> {
  const days = new Map<string, Tally>();
  const users = new Map<string, Tally & { first: string; last: string }>();
  const clients = new Map<string, Tally>();
  const routes = new Map<string, Tally>();
  const failures = new Map<string, number>();
  const refusedCodes = new Map<string, number>();
  const refusedPeers = new Map<string, number>();
  const requests: Tally = { requests: 0, failures: 0 };
  const anonymous: Tally = { requests: 0, failures: 0 };
  let refused = 0;
  let entries = 0;
  let first: string | undefined;
  let last: string | undefined;

  const request = (f: EntryView, ts: string) => {
    const failed = f.outcome === 'failure';
    requests.requests++;
    if (failed) {
      requests.failures++;
      count(failures, f.status === undefined ? (f.errorType ?? 'no response') : String(f.status));
    }
    bump(days, ts.slice(0, 10), failed);
    if (f.userId === undefined) {
      anonymous.requests++;
      if (failed) anonymous.failures++;
    } else {
      let u = users.get(f.userId);
      if (!u) {
        u = { requests: 0, failures: 0, first: ts, last: ts };
        users.set(f.userId, u);
      }
      u.requests++;
      if (failed) u.failures++;
      if (ts < u.first) u.first = ts;
      if (ts > u.last) u.last = ts;
    }
    bump(clients, f.clientIp ?? 'unknown', failed);
    bump(routes, f.route ?? f.path ?? 'unknown', failed);
  };

  for await (const m of q) {
    const f = m.fields;
    const ts = f.timestamp ?? '';
    entries++;
    if (first === undefined || ts < first) first = ts;
    if (last === undefined || ts > last) last = ts;
    if (f.category === 'web') request(f, ts);
    else if (f.action === 'connection-rejected') {
      refused++;
      count(refusedCodes, f.errorCode ?? f.errorType ?? 'unknown');
      count(refusedPeers, f.peerIp ?? 'unknown');
    }
  }
  const verification = await q.result;
  const counted = (m: Map<string, number>) => [...m].map(([k, n]) => ({ k, n })).sort((a, b) => b.n - a.n);
  return {
    sources: q.sources,
    filters: q.filters,
    verification,
    entries,
    first,
    last,
    requests,
    perDay: [...days].map(([day, t]) => ({ day, ...t })).sort((a, b) => (a.day < b.day ? -1 : 1)),
    perUser: [...users].map(([user, t]) => ({ user, ...t })).sort(byRequests),
    anonymous,
    perClient: [...clients].map(([ip, t]) => ({ ip, ...t })).sort(byRequests),
    perRoute: [...routes].map(([route, t]) => ({ route, ...t })).sort(byRequests),
    failures: counted(failures).map(({ k, n }) => ({ reason: k, count: n })),
    refused: {
      total: refused,
      byCode: counted(refusedCodes).map(({ k, n }) => ({ code: k, count: n })),
      byPeer: counted(refusedPeers).map(({ k, n }) => ({ peer: k, count: n })),
    },
  };
}
