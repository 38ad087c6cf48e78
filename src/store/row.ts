// One audit line → the columns of its row. The line itself is stored byte for byte; the columns are copies
// of its members for the auditor's queries (indexes), never what verification reads.
import { isIP } from 'node:net';
import { type RawReason, RawReasons } from './raw.js';

/** Every line starts with these bytes, and no valid line contains them anywhere else. */
export const MARKER = '{"@timestamp":"';

/** The columns of one row, in the order of {@link COLUMNS}. */
export interface Row {
  chain: string;
  sequence: number;
  /**
   * `@timestamp` as PostgreSQL reads it (see {@link pgTimestamp}), or `-infinity` when the member is not an
   * ISO-8601 time at all (writers never write one; the row goes to the default partition).
   */
  ts: string;
  /** `YYYY-MM` of `ts` for years 1000-9999 (its monthly partition), else undefined (the default partition). */
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
/**
 * Any other year Date#toISOString writes: 0000-0999, or six digits with a sign (ISO 8601's expanded years,
 * `+010000-…`, `-000001-…`).
 */
const ISO_YEAR = /^([+-]\d{6}|\d{4})-((?:0[1-9]|1[0-2])-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z)$/;
/** PostgreSQL's timestamptz runs from 4714-11-24 BC (Julian day 0, UTC) to the end of 294276 AD. */
const PG_FIRST_BC_YEAR = 4714;
const PG_FIRST_BC_DAY = '11-24';
const PG_LAST_YEAR = 294276;

/**
 * `@timestamp` as text PostgreSQL reads as the same instant, with its month partition; `'out-of-range'` for
 * a time PostgreSQL cannot hold (before 4714-11-24 BC); undefined for a value that is not an ISO-8601 UTC
 * time. PostgreSQL reads years past 9999 without the sign (`10000-01-01T…Z`), and years before 1 AD only as
 * BC years (ISO year 0 is 1 BC, -1 is 2 BC).
 */
export function pgTimestamp(at: unknown): { ts: string; month: string | undefined } | 'out-of-range' | undefined {
  if (typeof at !== 'string') return undefined;
  if (ISO.test(at)) return { ts: at, month: at.slice(0, 7) };
  const m = ISO_YEAR.exec(at);
  if (m === null) return undefined;
  const year = Number(m[1]);
  const rest = m[2] as string;
  if (year > PG_LAST_YEAR) return 'out-of-range';
  if (year >= 1) {
    const y = String(year).padStart(4, '0');
    return { ts: `${y}-${rest}`, month: year >= 1000 && year <= 9999 ? `${y}-${rest.slice(0, 2)}` : undefined };
  }
  const bc = 1 - year;
  if (bc > PG_FIRST_BC_YEAR || (bc === PG_FIRST_BC_YEAR && rest.slice(0, 5) < PG_FIRST_BC_DAY)) return 'out-of-range';
  return { ts: `${String(bc).padStart(4, '0')}-${rest} BC`, month: undefined };
}
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
const INDEXED = 512;

/** A text column: strings only; NUL cannot be stored in PostgreSQL text (the exact value stays in `line`). */
function text(v: unknown, max = 4096): string | null {
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

/** The row of an entry's members, or why the table cannot hold it as one. */
export function rowOf(m: Members, line: string, h: string): Row | RawReason {
  const { chain, sequence, at, status } = m;
  // Writers' chains are UUIDs; a long one could not be indexed (and is not a writer's).
  if (typeof chain !== 'string' || chain === '' || chain.length > 200 || chain.includes('\0')) return RawReasons.NO_CHAIN;
  if (!Number.isSafeInteger(sequence) || (sequence as number) < 1) return RawReasons.NO_CHAIN;
  const t = pgTimestamp(at);
  if (t === 'out-of-range') return RawReasons.TIMESTAMP_RANGE;
  return {
    chain,
    sequence: sequence as number,
    ts: t === undefined ? '-infinity' : t.ts,
    month: t?.month,
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

/**
 * Longest line the layout pattern is tried on. A writer's line stays far below it (each string member is cut to
 * 8192 characters); past a few million characters V8's regular-expression engine runs out of stack (a
 * `RangeError` at ~8.3 M characters), so longer lines take `JSON.parse`, which gives the same row.
 */
const MAX_PATTERN_LINE = 1024 * 1024;

/** The row of a line in the writers' request layout, or undefined for any other line. */
export function writerRow(line: string): Row | RawReason | undefined {
  if (line.length > MAX_PATTERN_LINE) return undefined;
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
 * Whether a piece that does not begin with the marker is a torn fragment to the verifier: cut inside the
 * marker itself, or zero bytes a power loss left (with or without the start of a line after them).
 */
function fragmentOfMarker(piece: string): boolean {
  return MARKER.startsWith(piece) || MARKER.startsWith(piece.replace(/^\0+/, ''));
}

/**
 * The row of one candidate line (no newline), or why the table cannot hold it as an entry row (it is then
 * stored as it is: see raw.ts). A line whose hash does not match is still an entry: it is shipped as it is,
 * so that verification from the store sees the edit. The reasons follow the verifier's reading: a torn
 * fragment starts with the marker and is not JSON (or is a piece of the marker, or zero bytes); other text
 * is not an entry. `parse: true` always reads the line with JSON.parse (the tests compare both ways).
 */
export function toRow(line: string, parse = false): Row | RawReason {
  if (!line.startsWith(MARKER)) return fragmentOfMarker(line) ? RawReasons.TORN_FRAGMENT : RawReasons.NOT_AN_ENTRY;
  const fast = parse ? undefined : writerRow(line);
  if (fast !== undefined) return fast;
  let e: Json;
  try {
    e = JSON.parse(line);
  } catch {
    // A proper prefix of a JSON object is never valid JSON, so an entry cut anywhere lands here.
    return RawReasons.TORN_FRAGMENT;
  }
  const h = hashOf(line);
  if (h === undefined || obj(e) === undefined) return RawReasons.NOT_AN_ENTRY;
  return rowOf(parsedMembers(e), line, h);
}
