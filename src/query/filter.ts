// The auditor's filters, compiled once: every given filter must match (AND); several values of one filter
// are alternatives (OR).

import { isIP } from 'node:net';
import { checkOptions, type Known } from '../known-options.js';
import { compileTrust } from '../trust.js';
import type { EntryView } from './entry.js';
import { parseTime } from './time.js';

type OneOrMany<T> = T | readonly T[];

/** Filters of {@link queryAuditLog} and {@link auditReport}. Each is optional; all given must match. */
export interface QueryFilters {
  /** Client address (`client.ip`): addresses, CIDRs, or `loopback`/`linklocal`/`uniquelocal`. */
  ip?: OneOrMany<string>;
  /** Client address outside all of these (as `ip`): `notIp: 'uniquelocal'` is "from outside our network". */
  notIp?: OneOrMany<string>;
  /** TCP peer (`network.peer.address`, the load balancer): as `ip`. */
  peer?: OneOrMany<string>;
  /** `user.id`, exactly. */
  user?: OneOrMany<string>;
  /** `url.path` is this or below it, by whole segments (`/patients/42` holds `/patients/42/notes`, not `/patients/421`). */
  path?: OneOrMany<string>;
  /** `http.route` (the template, e.g. `/patients/:id`), exactly. */
  route?: OneOrMany<string>;
  /** At or after this time: a Date, milliseconds, ISO-8601 (UTC unless an offset is given) or `7d`, `12h`… ago. */
  from?: Date | number | string;
  /** Before this time (exclusive), same forms as `from`. */
  to?: Date | number | string;
  /** `http.response.status_code`: a number, or a pattern such as `'4xx'` or `'40x'`. */
  status?: OneOrMany<number | string>;
  /** `event.outcome`: `'success'`, `'failure'` or `'unknown'`. */
  outcome?: OneOrMany<string>;
  /** `event.action`: `'http-request'`, `'connection-rejected'`, `'audit-log-started'`… */
  action?: OneOrMany<string>;
}

/** Compiled filters: {@link CompiledFilter.match} decides; {@link CompiledFilter.mayMatch} rules lines out cheaply. */
export interface CompiledFilter {
  match(e: EntryView): boolean;
  /**
   * False only when the raw line cannot match: some filter names an exact value whose JSON text is absent
   * from the line. Lines the writer produced spell values exactly so; for any other line (one that fails
   * verification) it may say false, and such lines are reported as damaged anyway.
   */
  mayMatch(line: string): boolean;
  /** Normalised filters, for the record of who asked what (`--audit-to`). */
  readonly description: Record<string, string[]>;
}

function list<T>(v: OneOrMany<T> | undefined, name: string): readonly T[] | undefined {
  if (v === undefined) return undefined;
  const a = Array.isArray(v) ? (v as readonly T[]) : [v as T];
  if (a.length === 0) throw new TypeError(`${name}: empty list`);
  return a;
}

function strings(v: OneOrMany<string> | undefined, name: string): readonly string[] | undefined {
  const a = list(v, name);
  if (a) for (const s of a) if (typeof s !== 'string') throw new TypeError(`${name}: ${String(s)} is not a string`);
  return a;
}

const OUTCOMES = ['success', 'failure', 'unknown'];
// Values that the writer's JSON escaping leaves as they are (printable ASCII without quote or backslash):
// only those can be looked for in the raw text.
const PLAIN = /^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/;

function statusTest(v: number | string): (s: number) => boolean {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599) return (s) => s === v;
  if (typeof v === 'string' && /^\d{3}$/.test(v)) return statusTest(Number(v));
  if (typeof v === 'string' && /^[1-5][0-9x]{2}$/i.test(v)) {
    const re = new RegExp(`^${v.toLowerCase().replace(/x/g, '\\d')}$`);
    return (s) => re.test(String(s));
  }
  throw new TypeError(`status: ${JSON.stringify(v)} is neither a status code nor a pattern like 4xx`);
}

type TextFilter = 'ip' | 'notIp' | 'peer' | 'user' | 'path' | 'route' | 'action' | 'outcome';
interface TextSpec {
  /** The field of the entry it tests. */
  field: keyof EntryView;
  /** Compiles the given values into a test of the field (a TypeError for a bad value). */
  test(values: readonly string[], name: string): (v: string) => boolean;
  /** The JSON text every line that matches the value holds (see mayMatch)… */
  needle?: (v: string) => string;
  /** …when the value has that one spelling. Default: printable ASCII without quote or backslash. */
  plain?: (v: string) => boolean;
}

/** `path` is `prefix` or below it, by whole segments: /patients/42 holds /patients/42/notes, not /patients/421. */
export function underPath(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.endsWith('/') || path.charCodeAt(prefix.length) === 0x2f;
}

const oneOf = (values: readonly string[]) => {
  const set = new Set(values);
  return (v: string) => set.has(v);
};
const within = (values: readonly string[], name: string) => compileTrust(values, name);
// Dotted IPv4 has one spelling, the one the writer logs; IPv6 and CIDRs have many, so they are not looked for.
const dotted = (v: string) => isIP(v) === 4;
const outcomes = (values: readonly string[], name: string) => {
  for (const o of values)
    if (!OUTCOMES.includes(o)) throw new TypeError(`${name}: ${JSON.stringify(o)} is not one of ${OUTCOMES.join(', ')}`);
  return oneOf(values);
};

/** The filters on text fields, as a table: the field, its test, and the text a matching line contains. */
const TEXT_FILTERS: Record<TextFilter, TextSpec> = {
  ip: { field: 'clientIp', test: within, needle: (v) => `"ip":"${v}"`, plain: dotted },
  notIp: {
    field: 'clientIp',
    test: (values, name) => {
      const inside = within(values, name);
      return (v) => !inside(v);
    },
  },
  peer: { field: 'peerIp', test: within, needle: (v) => `"address":"${v}"`, plain: dotted },
  user: { field: 'userId', test: oneOf, needle: (v) => `"id":"${v}"` },
  path: { field: 'path', test: (values) => (v) => values.some((p) => underPath(v, p)), needle: (v) => `"path":"${v}` },
  route: { field: 'route', test: oneOf, needle: (v) => `"route":"${v}"` },
  action: { field: 'action', test: oneOf, needle: (v) => `"action":"${v}"` },
  outcome: { field: 'outcome', test: outcomes, needle: (v) => `"outcome":"${v}"` },
};

/**
 * Compiles filters once (a `TypeError` names a bad one). `now` anchors relative times.
 *
 * @example
 * ```ts
 * const f = compileFilter({ ip: '10.0.0.0/8', status: '4xx' });
 * f.match(view(JSON.parse(line)));
 * ```
 */
const KNOWN: Known<QueryFilters> = {
  ip: true,
  notIp: true,
  peer: true,
  user: true,
  path: true,
  route: true,
  from: true,
  to: true,
  status: true,
  outcome: true,
  action: true,
};

export function compileFilter(filters: QueryFilters = {}, now = Date.now()): CompiledFilter {
  if (typeof filters !== 'object' || filters === null) throw new TypeError('filters must be an object');
  // (a mistyped filter would match every entry)
  checkOptions(filters, KNOWN, 'filters');
  const tests: ((e: EntryView) => boolean)[] = [];
  const needles: string[][] = [];
  const description: Record<string, string[]> = {};

  for (const [name, spec] of Object.entries(TEXT_FILTERS) as [TextFilter, TextSpec][]) {
    const values = strings(filters[name], name);
    if (!values) continue;
    const field = spec.field;
    const test = spec.test(values, name);
    tests.push((e) => {
      const v = e[field];
      return typeof v === 'string' && test(v);
    });
    const { needle } = spec;
    if (needle && values.every(spec.plain ?? ((v) => PLAIN.test(v)))) needles.push(values.map(needle));
    description[name] = [...values];
  }
  const status = list(filters.status, 'status');
  if (status) {
    const t = status.map(statusTest);
    tests.push((e) => e.status !== undefined && t.some((f) => f(e.status as number)));
    description.status = status.map(String);
  }
  if (filters.from !== undefined) {
    const from = parseTime(filters.from, now, 'from');
    tests.push((e) => e.time >= from);
    description.from = [new Date(from).toISOString()];
  }
  if (filters.to !== undefined) {
    const to = parseTime(filters.to, now, 'to');
    tests.push((e) => e.time < to);
    description.to = [new Date(to).toISOString()];
  }
  if (description.from && description.to && (description.from[0] as string) >= (description.to[0] as string)) {
    throw new TypeError('from must be before to');
  }

  return {
    description,
    match: function matchFilters(e: EntryView): boolean {
      for (const t of tests) if (!t(e)) return false;
      return true;
    },
    mayMatch: function mayMatch(line: string): boolean {
      for (const alternatives of needles) if (!alternatives.some((n) => line.includes(n))) return false;
      return true;
    },
  };
}
