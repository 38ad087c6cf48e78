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

/**
 * The row of one candidate line (no newline), or a reason why it is not an audit entry. A line whose hash does
 * not match is still an entry: it is shipped as it is, so that verification from the store sees the edit.
 */
export function toRow(line: string): Row | string {
  if (!line.startsWith(MARKER)) return 'not an audit entry';
  const h = hashOf(line);
  if (h === undefined) return 'torn fragment (no hash at the end)';
  let e: Json;
  try {
    e = JSON.parse(line);
  } catch {
    return 'torn fragment (not valid JSON)';
  }
  const event = obj(e.event);
  const audit = obj(e.audit);
  const chain = audit?.chain;
  const sequence = event?.sequence;
  // Writers' chains are UUIDs; a long one could not be indexed (and is not a writer's).
  if (typeof chain !== 'string' || chain === '' || chain.length > 200 || chain.includes('\0')) return 'no chain';
  if (!Number.isSafeInteger(sequence) || (sequence as number) < 1) return 'no sequence';
  const at = e['@timestamp'];
  const iso = typeof at === 'string' && ISO.test(at);
  const http = obj(e.http);
  const status = obj(http?.response)?.status_code;
  return {
    chain,
    sequence: sequence as number,
    ts: iso ? (at as string) : '-infinity',
    month: iso ? (at as string).slice(0, 7) : undefined,
    action: text(event?.action),
    outcome: text(event?.outcome),
    clientIp: inet(obj(e.client)?.ip),
    peerIp: inet(obj(obj(e.network)?.peer)?.address),
    userId: text(obj(e.user)?.id, INDEXED),
    method: text(obj(http?.request)?.method),
    path: text(obj(e.url)?.path, INDEXED),
    route: text(http?.route),
    status: Number.isInteger(status) && (status as number) >= 0 && (status as number) < 1000 ? (status as number) : null,
    host: text(obj(e.host)?.name),
    service: text(obj(e.service)?.name),
    hash: h,
    line,
  };
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
