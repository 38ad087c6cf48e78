// One audit entry: the facts a caller gives (checked at the call), and their serialisation, from one table
// of members, to the front part of an ECS JSON line. The same entry and sequence always give the same bytes:
// they are what the hash chain covers.
import { isIP } from 'node:net';
import { ascii, type LineBuffer } from './line-buffer.js';
import { writeRandomUuid } from './request-id.js';

/** The facts of one audit entry. Absent fields are left out of the line. */
export interface AuditFields {
  /** Milliseconds since the epoch (or a Date); default: now. */
  timestamp?: number | Date;
  /** `event.kind`. Default `'event'`. */
  kind?: 'event' | 'state';
  category: 'web' | 'network' | 'configuration';
  /** `event.action`, e.g. `"http-request"`. */
  action: string;
  outcome: 'success' | 'failure' | 'unknown';
  /** Nanoseconds. */
  duration?: number;
  clientIp?: string;
  clientPort?: number;
  peerAddress?: string;
  peerPort?: number;
  method?: string;
  requestId?: string;
  httpVersion?: string;
  domain?: string;
  path?: string;
  query?: string;
  route?: string;
  status?: number;
  /** `http.response.body.bytes`. */
  bytes?: number;
  /** `http.request.body.bytes` (bytes received, e.g. over an upgraded connection). */
  requestBytes?: number;
  userAgent?: string;
  userId?: string;
  tlsVersion?: string;
  tlsCipher?: string;
  /** Common name of the client certificate, when the client presented one. */
  tlsClientCn?: string;
  errorType?: string;
  errorCode?: string;
  errorMessage?: string;
}

/** The longest string value kept; longer values are cut (a line must stay small enough to append whole). */
export const MAX_STRING = 8192;

const KINDS = new Set(['event', 'state']);
const CATEGORIES = new Set(['web', 'network', 'configuration']);
const OUTCOMES = new Set(['success', 'failure', 'unknown']);

/**
 * An entry as the log holds it between `write()` and sealing: checked, copied (a caller may reuse its object),
 * and of one shape for every entry, so that the serialiser's reads stay monomorphic.
 */
export class Entry {
  timestamp = 0;
  kind: 'event' | 'state' = 'event';
  category: AuditFields['category'] = 'web';
  action = '';
  outcome: AuditFields['outcome'] = 'unknown';
  duration: number | undefined = undefined;
  sequence = 0;
  clientIp: string | undefined = undefined;
  clientPort: number | undefined = undefined;
  peerAddress: string | undefined = undefined;
  peerPort: number | undefined = undefined;
  method: string | undefined = undefined;
  requestId: string | undefined = undefined;
  /** With no `requestId`: write a new random UUID as `http.request.id` (made as bytes, while sealing). */
  generateRequestId = false;
  httpVersion: string | undefined = undefined;
  domain: string | undefined = undefined;
  path: string | undefined = undefined;
  query: string | undefined = undefined;
  route: string | undefined = undefined;
  status: number | undefined = undefined;
  bytes: number | undefined = undefined;
  requestBytes: number | undefined = undefined;
  userAgent: string | undefined = undefined;
  userId: string | undefined = undefined;
  tlsVersion: string | undefined = undefined;
  tlsCipher: string | undefined = undefined;
  tlsClientCn: string | undefined = undefined;
  errorType: string | undefined = undefined;
  errorCode: string | undefined = undefined;
  errorMessage: string | undefined = undefined;
  /** The log's own `audit.*` members (start, checkpoints, drop counts): serialised by the log, never by callers. */
  audit: Record<string, unknown> | undefined = undefined;
}

function bad(name: string, what: string): TypeError {
  return new TypeError(`AuditLog.write: ${name} must be ${what}`);
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/** A string field, cut to {@link MAX_STRING}; undefined when absent. */
function text(v: unknown, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw bad(name, 'a string');
  return v.length > MAX_STRING ? v.slice(0, MAX_STRING) : v;
}

/** An IP address field (what the store keeps as `inet` and the auditor filters by); undefined when absent. */
function address(v: unknown, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || isIP(v) === 0) throw bad(name, 'an IPv4 or IPv6 address');
  return v;
}

/** An integer field from 0 to `max`; undefined when absent. */
function int(v: unknown, name: string, max: number, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!isInt(v, 0, max)) throw bad(name, what);
  return v;
}

/**
 * Checks the fields of `write()` and copies them into an {@link Entry}. Throws a `TypeError` naming the first
 * field of a wrong type or range: at the call, never later inside the log's timers.
 */
export function toEntry(fields: AuditFields): Entry {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) throw bad('fields', 'an object');
  const e = new Entry();
  const f = fields as unknown as Record<string, unknown>;
  const ts = f.timestamp;
  if (ts === undefined) e.timestamp = Date.now();
  else if (ts instanceof Date && Number.isFinite(ts.getTime())) e.timestamp = ts.getTime();
  else if (typeof ts === 'number' && Number.isFinite(ts) && Math.abs(ts) <= 8.64e15) e.timestamp = ts;
  else throw bad('timestamp', 'a finite number of milliseconds or a valid Date');
  if (f.kind !== undefined) {
    if (!KINDS.has(f.kind as string)) throw bad('kind', "'event' or 'state'");
    e.kind = f.kind as Entry['kind'];
  }
  if (!CATEGORIES.has(f.category as string)) throw bad('category', "'web', 'network' or 'configuration'");
  e.category = f.category as Entry['category'];
  if (typeof f.action !== 'string' || f.action === '' || f.action.length > 128)
    throw bad('action', 'a string of 1–128 characters');
  e.action = f.action;
  if (!OUTCOMES.has(f.outcome as string)) throw bad('outcome', "'success', 'failure' or 'unknown'");
  e.outcome = f.outcome as Entry['outcome'];
  const d = f.duration;
  if (d !== undefined) {
    if (typeof d !== 'number' || !Number.isFinite(d) || d < 0) throw bad('duration', 'a finite number of nanoseconds ≥ 0');
    e.duration = Math.round(d);
  }
  // One line per field, not a loop over names: each read and write then has one shape to expect (the loop's
  // keyed reads and writes over ~20 names; this and the serialiser's comma-and-key pieces together measured
  // 1.026x of an audited Fastify request head to head, bench/ab.mjs fastify-audit, 2 rounds).
  e.clientIp = address(f.clientIp, 'clientIp');
  e.peerAddress = address(f.peerAddress, 'peerAddress');
  e.method = text(f.method, 'method');
  e.requestId = text(f.requestId, 'requestId');
  e.httpVersion = text(f.httpVersion, 'httpVersion');
  e.domain = text(f.domain, 'domain');
  e.path = text(f.path, 'path');
  e.query = text(f.query, 'query');
  e.route = text(f.route, 'route');
  e.userAgent = text(f.userAgent, 'userAgent');
  e.userId = text(f.userId, 'userId');
  e.tlsVersion = text(f.tlsVersion, 'tlsVersion');
  e.tlsCipher = text(f.tlsCipher, 'tlsCipher');
  e.tlsClientCn = text(f.tlsClientCn, 'tlsClientCn');
  e.errorType = text(f.errorType, 'errorType');
  e.errorCode = text(f.errorCode, 'errorCode');
  e.errorMessage = text(f.errorMessage, 'errorMessage');
  e.clientPort = int(f.clientPort, 'clientPort', 65535, 'an integer 0–65535');
  e.peerPort = int(f.peerPort, 'peerPort', 65535, 'an integer 0–65535');
  e.status = int(f.status, 'status', 999, 'an integer 0–999');
  e.bytes = int(f.bytes, 'bytes', Number.MAX_SAFE_INTEGER, 'a whole number ≥ 0');
  e.requestBytes = int(f.requestBytes, 'requestBytes', Number.MAX_SAFE_INTEGER, 'a whole number ≥ 0');
  return e;
}

// ---------------------------------------------------------------------------------------------------------
// The line, as a table of members: leaves (a key, how its value is written, where the value comes from)
// inside objects. A leaf whose value is undefined is left out, and an object when none of its leaves is
// present.

/** How a leaf's value is written. */
type Kind = 'str' | 'num' | 'plain' | 'id';
/** A leaf's value for one entry; undefined: absent; null: a request id to generate (kind `id` only). */
type Value = string | number | null | undefined;

interface Leaf {
  readonly name: string;
  readonly kind: Kind;
  readonly get: (e: Entry) => Value;
}
interface Obj {
  readonly name: string;
  readonly members: readonly Member[];
}
type Member = Leaf | Obj;

/** A string member: JSON-quoted and escaped. */
const str = (name: string, get: (e: Entry) => string | undefined): Leaf => ({ name, kind: 'str', get });
/** A number member (checked to be a non-negative integer by `toEntry`, or assigned by the log). */
const num = (name: string, get: (e: Entry) => number | undefined): Leaf => ({ name, kind: 'num', get });
/** A string member whose values are known to need no escaping (enumerations, ISO timestamps). */
const plain = (name: string, get: (e: Entry) => string | undefined): Leaf => ({ name, kind: 'plain', get });
/** An object member: written when at least one of its members is. */
const obj = (name: string, members: Member[]): Obj => ({ name, members });

// Entries written within the same millisecond share their timestamp text.
let lastMs = Number.NaN;
let lastIso = '';
function iso(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/** Every member of a line before `service`, `host` and `audit` (which the chain writes), in order. */
const LINE: readonly Member[] = [
  plain('@timestamp', (e) => iso(e.timestamp)),
  obj('event', [
    plain('kind', (e) => e.kind),
    str('category', (e) => e.category),
    str('action', (e) => e.action),
    plain('outcome', (e) => e.outcome),
    num('duration', (e) => e.duration),
    num('sequence', (e) => e.sequence),
  ]),
  obj('client', [str('ip', (e) => e.clientIp), num('port', (e) => (e.clientIp === undefined ? undefined : e.clientPort))]),
  obj('network', [
    obj('peer', [
      str('address', (e) => e.peerAddress),
      num('port', (e) => (e.peerAddress === undefined ? undefined : e.peerPort)),
    ]),
  ]),
  obj('http', [
    obj('request', [
      str('method', (e) => e.method),
      // given, or a new random UUID written as bytes while sealing
      { name: 'id', kind: 'id', get: (e) => e.requestId ?? (e.generateRequestId ? null : undefined) },
      obj('body', [num('bytes', (e) => e.requestBytes)]),
    ]),
    obj('response', [num('status_code', (e) => e.status), obj('body', [num('bytes', (e) => e.bytes)])]),
    str('route', (e) => e.route),
    str('version', (e) => e.httpVersion),
  ]),
  obj('url', [str('domain', (e) => e.domain), str('path', (e) => e.path), str('query', (e) => e.query)]),
  obj('user_agent', [str('original', (e) => e.userAgent)]),
  obj('user', [str('id', (e) => e.userId)]),
  obj('tls', [
    str('version', (e) => e.tlsVersion),
    plain('version_protocol', (e) => (e.tlsVersion === undefined ? undefined : 'tls')),
    str('cipher', (e) => e.tlsCipher),
    obj('client', [obj('x509', [obj('subject', [str('common_name', (e) => e.tlsClientCn)])])]),
  ]),
  obj('error', [str('type', (e) => e.errorType), str('code', (e) => e.errorCode), str('message', (e) => e.errorMessage)]),
];

// ---------------------------------------------------------------------------------------------------------
// Writing the table. The bytes between two present leaves (closing braces, a comma, opening braces, the key)
// depend on those two leaves only: they are worked out from the table once per pair of leaves that follow
// each other in some line, and an entry is then its present values with those pieces between them. Against
// walking the table for every entry (two calls per member, present or not, and the key of an absent one
// written and taken back): a request entry in 1.2 µs instead of 1.9 µs in isolation, and 1.038x of an
// audited Fastify request head to head (bench/ab.mjs fastify-audit, 6 rounds; bench/README.md, 2026-12-01).

/** Every leaf of {@link LINE}, in line order, and the objects each is inside (outermost first). */
const LEAVES: Leaf[] = [];
const PATHS: Obj[][] = [];
function collect(members: readonly Member[], path: Obj[]): void {
  for (const m of members) {
    if ('members' in m) collect(m.members, [...path, m]);
    else {
      LEAVES.push(m);
      PATHS.push(path);
    }
  }
}
collect(LINE, []);
const N = LEAVES.length;

/**
 * The bytes after leaf `i`'s value and before leaf `j`'s (`i` = -1: the line's start; `j` = N: after the last
 * value, where the chain's members follow at the top level).
 */
function between(i: number, j: number): Uint8Array {
  const from = i < 0 ? [] : (PATHS[i] as Obj[]);
  const to = j === N ? [] : (PATHS[j] as Obj[]);
  let common = 0;
  while (common < from.length && common < to.length && from[common] === to[common]) common++;
  let text = i < 0 ? '{' : '}'.repeat(from.length - common);
  if (j < N) {
    // (a member was written before at the level the two share, unless this is the line's first)
    if (i >= 0) text += ',';
    for (const o of to.slice(common)) text += `${JSON.stringify(o.name)}:{`;
    text += `${JSON.stringify((LEAVES[j] as Leaf).name)}:`;
  }
  return ascii(text);
}

/** {@link between} for every pair met so far, at `(i + 1) * (N + 1) + j`. */
const pieces: (Uint8Array | undefined)[] = new Array((N + 1) * (N + 1)).fill(undefined);

function piece(i: number, j: number): Uint8Array {
  const k = (i + 1) * (N + 1) + j;
  let p = pieces[k];
  if (p === undefined) {
    p = between(i, j);
    pieces[k] = p;
  }
  return p;
}

/**
 * Writes `{` and the entry's members up to, and not including, the chain's own members. `fill`: keep a
 * generated request id in `e.requestId` (for whoever reads the entry afterwards).
 */
export function serializeEntry(e: Entry, out: LineBuffer, fill: boolean): void {
  let last = -1;
  for (let j = 0; j < N; j++) {
    const leaf = LEAVES[j] as Leaf;
    const v = leaf.get(e);
    if (v === undefined) continue;
    out.raw(piece(last, j));
    last = j;
    switch (leaf.kind) {
      case 'str':
        out.str(v as string);
        break;
      case 'num':
        out.num(v as number);
        break;
      case 'plain':
        out.byte(QUOTE);
        out.ascii(v as string);
        out.byte(QUOTE);
        break;
      case 'id':
        if (v !== null) out.str(v as string);
        else {
          out.byte(QUOTE);
          const at = writeRandomUuid(out);
          out.byte(QUOTE);
          if (fill) e.requestId = out.text(at, at + 36);
        }
        break;
    }
  }
  out.raw(piece(last, N));
}

const QUOTE = 0x22;
