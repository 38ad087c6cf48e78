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
  /** `@timestamp` as the text of the same instant in UTC that PostgreSQL reads (see {@link pgTimestamp}). */
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

/** What writers produce (Date#toISOString) for years 1000–9999, which PostgreSQL partitions by month: taken as it is. */
const ISO = /^[1-9]\d{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?Z$/;
/**
 * Any other ISO 8601 date and time with a zone: a year of four digits or six with a sign (ISO 8601's expanded
 * years, which Date#toISOString writes outside 0000–9999), `T` (or `t`, or a space, as RFC 3339 allows),
 * hours and minutes, optional seconds and fraction (any number of digits), and `Z` or an offset `±hh:mm`,
 * `±hhmm` or `±hh`. A time without a zone names no instant (a writer's local time is not known here).
 */
const ISO_ANY = /^([+-]\d{6}|\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?(?:([Zz])|([+-])(\d\d)(?::?(\d\d))?)$/;
/** PostgreSQL's timestamptz runs from 4714-11-24 BC (Julian day 0, UTC) to the end of 294276 AD. */
const PG_FIRST_YEAR = -4713; // ISO year -4713 is 4714 BC
const PG_FIRST_DAY = '11-24';
const PG_LAST_YEAR = 294276;

/** Days in month `m` (1–12) of proleptic Gregorian year `y` (ISO 8601's calendar; year 0 is a leap year). */
function daysIn(y: number, m: number): number {
  if (m === 2) return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28;
  return m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

// Days from 1970-01-01 of a proleptic Gregorian date and back (the algorithms of Howard Hinnant's
// "chrono-Compatible Low-Level Date Algorithms"): Date cannot be used, its range ends before PostgreSQL's.
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}
function civilFromDays(days: number): [y: number, m: number, d: number] {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const two = (n: number) => String(n).padStart(2, '0');

/** {@link pgTimestamp}'s answer for a time PostgreSQL can hold. */
export interface PgTimestamp {
  /** The instant in UTC as text PostgreSQL reads exactly (`…Z`, `… BC` before 1 AD), at most microseconds. */
  ts: string;
  /** `YYYY-MM` of `ts` for years 1000–9999 (its monthly partition), else undefined (the default partition). */
  month: string | undefined;
}

/**
 * `@timestamp` as the text of the same instant in UTC that PostgreSQL reads, with its month partition:
 * `'out-of-range'` for a time PostgreSQL's timestamptz cannot hold (before 4714-11-24 BC, after 294276 AD),
 * `'invalid'` for anything that is not an ISO 8601 date and time with a zone (see {@link ISO_ANY}) or names no
 * such day or time (`2026-02-29`, `25:00`). An offset is applied (`2026-12-01T00:30:00+01:00` is
 * `2026-11-30T23:30:00Z`, in November's partition); fraction digits past microseconds (PostgreSQL's precision)
 * are cut, never rounded, so that a time never moves into the next second, day or month; a leap second
 * (`:60`) and `24:00:00` are the start of the next minute and day, as PostgreSQL reads them. PostgreSQL reads
 * years past 9999 without the sign (`10000-01-01T…Z`), and years before 1 AD only as BC years (ISO year 0 is
 * 1 BC, -1 is 2 BC). Pure: the same answer for the same value, whatever the process's time zone.
 *
 * @example
 * ```ts
 * pgTimestamp('2026-12-01T00:30:00.5+01:00'); // { ts: '2026-11-30T23:30:00.5Z', month: '2026-11' }
 * ```
 */
export function pgTimestamp(at: unknown): PgTimestamp | 'out-of-range' | 'invalid' {
  if (typeof at !== 'string') return 'invalid';
  // Every writer's line: Date#toISOString of a year 1000–9999 (checked for a day the month has).
  if (ISO.test(at)) {
    // The day from its two digits, not a sliced string: every row passes here. Measured head to head (20,000
    // writer timestamps x 10, best of 15 rounds): 70 ns per call with Number(slice), 53 with this, 53 before
    // days were checked at all.
    const day = (at.charCodeAt(8) - 48) * 10 + at.charCodeAt(9) - 48;
    if (day <= 28 || day <= daysIn(Number(at.slice(0, 4)), Number(at.slice(5, 7)))) return { ts: at, month: at.slice(0, 7) };
    return 'invalid';
  }
  const m = ISO_ANY.exec(at);
  if (m === null) return 'invalid';
  let year = Number(m[1]);
  let month = Number(m[2]);
  let day = Number(m[3]);
  const hour = Number(m[4]);
  const minute = Number(m[5]);
  const second = m[6] === undefined ? 0 : Number(m[6]);
  const fraction = m[7] === undefined ? '' : m[7].slice(0, 6);
  if (m[1] === '-000000' || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return 'invalid';
  if (minute > 59 || second > 60) return 'invalid';
  if (hour > 24 || (hour === 24 && (minute !== 0 || second !== 0 || /[1-9]/.test(m[7] ?? '')))) return 'invalid';
  let offset = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = m[11] === undefined ? 0 : Number(m[11]);
    if (oh > 23 || om > 59) return 'invalid';
    offset = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  // Minutes of the day in UTC, then whole days carried (an offset, `24:00`, a leap second at 23:59).
  let minutes = hour * 60 + minute - offset + (second === 60 ? 1 : 0);
  const carry = Math.floor(minutes / 1440);
  minutes -= carry * 1440;
  if (carry !== 0) [year, month, day] = civilFromDays(daysFromCivil(year, month, day) + carry);
  const date = `${two(month)}-${two(day)}`;
  if (year > PG_LAST_YEAR || year < PG_FIRST_YEAR || (year === PG_FIRST_YEAR && date < PG_FIRST_DAY)) return 'out-of-range';
  const time = `T${two(Math.floor(minutes / 60))}:${two(minutes % 60)}:${two(second === 60 ? 0 : second)}${fraction === '' ? '' : `.${fraction}`}Z`;
  if (year >= 1) {
    const y = String(year).padStart(4, '0');
    return { ts: `${y}-${date}${time}`, month: year >= 1000 && year <= 9999 ? `${y}-${two(month)}` : undefined };
  }
  return { ts: `${String(1 - year).padStart(4, '0')}-${date}${time} BC`, month: undefined };
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
  if (t === 'invalid') return RawReasons.TIMESTAMP_INVALID;
  return {
    chain,
    sequence: sequence as number,
    ts: t.ts,
    month: t.month,
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
