// One audit line → the columns of its row. The line itself is stored byte for byte; the columns are copies
// of its members for the auditor's queries (indexes), never what verification reads.
import { isIP } from 'node:net';

/** Every line starts with these bytes, and no valid line contains them anywhere else. */
export const MARKER = '{"@timestamp":"';

/** The columns of one row, in the order of {@link COLUMNS}. */
export interface Row {
  chain: string;
  sequence: number;
  /** ISO-8601 text PostgreSQL reads, or `-infinity` for a timestamp it cannot hold (the default partition). */
  ts: string;
  /** `YYYY-MM` of `ts`, or undefined for `-infinity`. */
  month: string | undefined;
  action: string | null;
  outcome: string | null;
  clientIp: string | null;
  peerIp: string | null;
  userId: string | null;
  method: string | null;
  path: string | null;
  route: string | null;
  status: number | null;
  host: string | null;
  service: string | null;
  hash: string | null;
  line: string;
}

/** The table's columns the shipper fills from a row's members (`line` travels apart), with their types. */
export const COLUMNS: readonly (readonly [column: keyof Row, sql: string, type: string])[] = [
  ['chain', 'chain', 'text'],
  ['sequence', 'sequence', 'bigint'],
  ['ts', 'ts', 'timestamptz'],
  ['action', 'action', 'text'],
  ['outcome', 'outcome', 'text'],
  ['clientIp', 'client_ip', 'inet'],
  ['peerIp', 'peer_ip', 'inet'],
  ['userId', 'user_id', 'text'],
  ['method', 'method', 'text'],
  ['path', 'path', 'text'],
  ['route', 'route', 'text'],
  ['status', 'status', 'integer'],
  ['host', 'host', 'text'],
  ['service', 'service', 'text'],
  ['hash', 'hash', 'text'],
];

/** What writers produce (Date#toISOString), for years 1000–9999 that PostgreSQL partitions by month. */
const ISO = /^[1-9]\d{3}-(0[1-9]|1[0-2])-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$/;
const HASH_KEY = ',"hash":"';
const HEX64 = /^[0-9a-f]{64}$/;
/** `,"hash":"<64 hex>"}}`. */
const SUFFIX = HASH_KEY.length + 64 + 3;

/** The hash at the end of a line, or undefined. (Sliced, not a `…$` regex: that one is tried at every offset.) */
function hashOf(line: string): string | undefined {
  const at = line.length - SUFFIX;
  if (at < 0 || !line.endsWith('"}}') || !line.startsWith(HASH_KEY, at)) return undefined;
  const h = line.slice(at + HASH_KEY.length, line.length - 3);
  return HEX64.test(h) ? h : undefined;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined;

/**
 * Indexed text columns hold at most this many UTF-16 units: at 3 bytes each at most, a B-tree entry stays
 * below PostgreSQL's limit of about 2700 bytes (a longer value would make the whole batch fail).
 */
export const INDEXED = 512;

/** A text column: strings only; NUL cannot be stored in PostgreSQL text (the exact value stays in `line`). */
export function text(v: unknown, max = 4096): string | null {
  if (typeof v !== 'string') return null;
  const s = v.length > max ? v.slice(0, max) : v;
  return s.includes('\0') ? s.replaceAll('\0', '\uFFFD') : s;
}

/** An inet column: a literal address (zone index dropped: inet has none), else null. */
function inet(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const pct = v.indexOf('%');
  const a = pct < 0 ? v : v.slice(0, pct);
  return isIP(a) === 0 ? null : a;
}

/** The values {@link rowOf} reads from a line: what JSON.parse of the line would give at these places. */
export interface Members {
  at: unknown;
  action: unknown;
  outcome: unknown;
  sequence: unknown;
  clientIp: unknown;
  peerAddress: unknown;
  method: unknown;
  status: unknown;
  route: unknown;
  path: unknown;
  userId: unknown;
  service: unknown;
  host: unknown;
  chain: unknown;
}

/** The row of an entry's members, or why it is not an entry. */
export function rowOf(m: Members, line: string, h: string): Row | string {
  const { chain, sequence, at, status } = m;
  // Writers' chains are UUIDs; a long one could not be indexed (and is not a writer's).
  if (typeof chain !== 'string' || chain === '' || chain.length > 200 || chain.includes('\0')) return 'no chain';
  if (!Number.isSafeInteger(sequence) || (sequence as number) < 1) return 'no sequence';
  const iso = typeof at === 'string' && ISO.test(at);
  return {
    chain,
    sequence: sequence as number,
    ts: iso ? (at as string) : '-infinity',
    month: iso ? (at as string).slice(0, 7) : undefined,
    action: text(m.action),
    outcome: text(m.outcome),
    clientIp: inet(m.clientIp),
    peerIp: inet(m.peerAddress),
    userId: text(m.userId, INDEXED),
    method: text(m.method),
    path: text(m.path, INDEXED),
    route: text(m.route),
    status: Number.isInteger(status) && (status as number) >= 0 && (status as number) < 1000 ? (status as number) : null,
    host: text(m.host),
    service: text(m.service),
    hash: h,
    line,
  };
}

/** The members of a parsed line, read as objects. */
function parsedMembers(e: Json): Members {
  const event = obj(e.event);
  const http = obj(e.http);
  return {
    at: e['@timestamp'],
    action: event?.action,
    outcome: event?.outcome,
    sequence: event?.sequence,
    clientIp: obj(e.client)?.ip,
    peerAddress: obj(obj(e.network)?.peer)?.address,
    method: obj(http?.request)?.method,
    status: obj(http?.response)?.status_code,
    route: http?.route,
    path: obj(e.url)?.path,
    userId: obj(e.user)?.id,
    service: obj(e.service)?.name,
    host: obj(e.host)?.name,
    chain: obj(e.audit)?.chain,
  };
}

// The layout the writers give a request entry (src/audit/entry.ts, then the chain's service, host and audit
// members), as one anchored regular expression made of JSON's own grammar for each value. A line it matches
// is valid JSON with exactly these members, in this order, once each: the captured values are what
// JSON.parse would give there. Any other line (signed checkpoints, start entries, other writers, damage)
// takes JSON.parse. Measured on bench/store.mjs's lines (one process, best of 7 passes over 20,000): 1.4 us
// per line against 3.4 us for JSON.parse alone.
const STR = String.raw`"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"`;
const NUM = String.raw`-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?`;
/** A member of an object: after `{` without a comma, after another member with one. */
const SEP = String.raw`(?:(?<=\{)|(?<!\{),)`;
type Layout = readonly (readonly [key: string, value: string | Layout, capture?: keyof Members])[];
const ENTRY: Layout = [
  [
    'event',
    [
      ['kind', STR],
      ['category', STR],
      ['action', STR, 'action'],
      ['outcome', STR, 'outcome'],
      ['duration', NUM],
      ['sequence', NUM, 'sequence'],
    ],
  ],
  [
    'client',
    [
      ['ip', STR, 'clientIp'],
      ['port', NUM],
    ],
  ],
  [
    'network',
    [
      [
        'peer',
        [
          ['address', STR, 'peerAddress'],
          ['port', NUM],
        ],
      ],
    ],
  ],
  [
    'http',
    [
      [
        'request',
        [
          ['method', STR, 'method'],
          ['id', STR],
          ['body', [['bytes', NUM]]],
        ],
      ],
      [
        'response',
        [
          ['status_code', NUM, 'status'],
          ['body', [['bytes', NUM]]],
        ],
      ],
      ['route', STR, 'route'],
      ['version', STR],
    ],
  ],
  [
    'url',
    [
      ['domain', STR],
      ['path', STR, 'path'],
      ['query', STR],
    ],
  ],
  ['user_agent', [['original', STR]]],
  ['user', [['id', STR, 'userId']]],
  [
    'tls',
    [
      ['version', STR],
      ['version_protocol', STR],
      ['cipher', STR],
      ['client', [['x509', [['subject', [['common_name', STR]]]]]]],
    ],
  ],
  [
    'error',
    [
      ['type', STR],
      ['code', STR],
      ['message', STR],
    ],
  ],
  ['service', [['name', STR, 'service']]],
  ['host', [['name', STR, 'host']]],
];

/** The members of `layout`, each optional, and the names of the groups they capture (in order). */
function layoutSource(layout: Layout, names: (keyof Members)[]): string {
  let out = '';
  for (const [key, value, capture] of layout) {
    let v: string;
    if (typeof value !== 'string') v = `\\{${layoutSource(value, names)}\\}`;
    else if (capture) {
      names.push(capture);
      v = `(${value})`;
    } else v = value;
    out += `(?:${SEP}"${key}":${v})?`;
  }
  return out;
}
const CAPTURED: (keyof Members | 'hash')[] = ['at'];
const WRITER_LINE = new RegExp(
  `^\\{"@timestamp":(${STR})${layoutSource(ENTRY, CAPTURED as (keyof Members)[])},"audit":\\{"chain":(${STR}),"alg":${STR},"prev":${STR},"hash":"([0-9a-f]{64})"\\}\\}$`,
);
CAPTURED.push('chain', 'hash');
/** Each capture's group number. */
const G = Object.fromEntries(CAPTURED.map((k, i) => [k, i + 1])) as Record<keyof Members | 'hash', number>;

/** A captured JSON value: strings without escapes are sliced (JSON.parse gives the same text). */
function value(token: string | undefined): unknown {
  if (token === undefined) return undefined;
  if (token.charCodeAt(0) !== 0x22) return Number(token);
  return token.includes('\\') ? JSON.parse(token) : token.slice(1, -1);
}

/** The row of a line in the writers' request layout, or undefined for any other line. */
export function writerRow(line: string): Row | string | undefined {
  const m = WRITER_LINE.exec(line);
  if (m === null) return undefined;
  const members: Members = {
    at: value(m[G.at]),
    action: value(m[G.action]),
    outcome: value(m[G.outcome]),
    sequence: value(m[G.sequence]),
    clientIp: value(m[G.clientIp]),
    peerAddress: value(m[G.peerAddress]),
    method: value(m[G.method]),
    status: value(m[G.status]),
    route: value(m[G.route]),
    path: value(m[G.path]),
    userId: value(m[G.userId]),
    service: value(m[G.service]),
    host: value(m[G.host]),
    chain: value(m[G.chain]),
  };
  return rowOf(members, line, m[G.hash] as string);
}

/**
 * The row of one candidate line (no newline), or a reason why it is not an audit entry. A line whose hash does
 * not match is still an entry: it is shipped as it is, so that verification from the store sees the edit.
 * `parse: true` always reads the line with JSON.parse (the tests compare both ways).
 */
export function toRow(line: string, parse = false): Row | string {
  if (!line.startsWith(MARKER)) return 'not an audit entry';
  const fast = parse ? undefined : writerRow(line);
  if (fast !== undefined) return fast;
  const h = hashOf(line);
  if (h === undefined) return 'torn fragment (no hash at the end)';
  let e: Json;
  try {
    e = JSON.parse(line);
  } catch {
    return 'torn fragment (not valid JSON)';
  }
  return rowOf(parsedMembers(e), line, h);
}

/**
 * The candidate lines of one physical line: a torn fragment may have another writer's whole line glued
 * after it, so it is split before every occurrence of the marker (which a valid line holds only at its start).
 */
export function candidates(physical: string): string[] {
  let at = physical.indexOf(MARKER, 1);
  if (at < 0) return [physical];
  const out: string[] = [];
  let from = 0;
  while (at >= 0) {
    out.push(physical.slice(from, at));
    from = at;
    at = physical.indexOf(MARKER, at + 1);
  }
  out.push(physical.slice(from));
  return out;
}
