// One audit entry, as facts, and its serialisation to the front part of an ECS JSON line.
// Written by hand, as bytes, in a fixed field order: the exact bytes are what the hash chain covers, and
// hand-writing is several times cheaper than JSON.stringify of a nested object on the request path.
import { ascii, type LineBuffer } from './line-buffer.js';
import { writeRandomUuid } from './request-id.js';

/** The facts of one audit entry. Absent fields are left out of the line. */
export interface AuditFields {
  /** Milliseconds since the epoch; default: now. */
  timestamp?: number;
  kind?: 'event' | 'state';
  category: 'web' | 'network' | 'configuration';
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
  bytes?: number;
  userAgent?: string;
  userId?: string;
  tlsVersion?: string;
  errorType?: string;
  errorCode?: string;
  errorMessage?: string;
  /** Extra `audit.*` members (checkpoints, drop counts), already valid JSON members without braces. */
  auditExtra?: string;
}

/**
 * @internal What the request middleware hands the log: with `generateRequestId` and no `requestId`, the line
 * gets a new random UUID as `http.request.id`, written as bytes when the entry is sealed (no string is made
 * unless someone reads `requestId` back: an `'entry'` listener or a winston transport).
 */
export interface RequestFields extends AuditFields {
  generateRequestId?: boolean;
}

// The constant pieces of a line, as bytes.
const K = {
  timestamp: ascii('{"@timestamp":"'),
  kind: ascii('","event":{"kind":"'),
  category: ascii('","category":'),
  action: ascii(',"action":'),
  outcome: ascii(',"outcome":"'),
  duration: ascii('","duration":'),
  sequence: ascii(',"sequence":'),
  sequenceNoDuration: ascii('","sequence":'),
  client: ascii(',"client":{"ip":'),
  port: ascii(',"port":'),
  peer: ascii(',"network":{"peer":{"address":'),
  http: ascii(',"http":{'),
  request: ascii('"request":{'),
  method: ascii('"method":'),
  id: ascii('"id":'),
  response: ascii('"response":{'),
  status: ascii('"status_code":'),
  body: ascii('"body":{"bytes":'),
  route: ascii('"route":'),
  version: ascii('"version":'),
  url: ascii(',"url":{'),
  domain: ascii('"domain":'),
  path: ascii('"path":'),
  query: ascii('"query":'),
  userAgent: ascii(',"user_agent":{"original":'),
  user: ascii(',"user":{"id":'),
  tls: ascii(',"tls":{"version":'),
  tlsProtocol: ascii(',"version_protocol":"tls"}'),
  error: ascii(',"error":{'),
  type: ascii('"type":'),
  code: ascii('"code":'),
  message: ascii('"message":'),
};

const COMMA = 0x2c;
const QUOTE = 0x22;
const CLOSE = 0x7d;

// Entries written within the same millisecond share their timestamp text.
let lastMs = -1;
let lastIso = '';
function iso(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/** Writes the key of the member that follows `n` others in the object being written (a comma before all but
 * the first); returns the new count. */
function key(out: LineBuffer, n: number, name: Uint8Array): number {
  if (n > 0) out.byte(COMMA);
  out.raw(name);
  return n + 1;
}

/** An address and its port when known (`client`, `network.peer`), then the `depth` objects its key opened. */
function endpoint(out: LineBuffer, open: Uint8Array, address: string, port: number | undefined, depth: number): void {
  out.raw(open);
  out.str(address);
  if (port !== undefined) {
    out.raw(K.port);
    out.num(port);
  }
  for (let i = 0; i < depth; i++) out.byte(CLOSE);
}

/** A string member, when its value is known; returns the count of members written. */
function strMember(out: LineBuffer, n: number, name: Uint8Array, value: string | undefined): number {
  if (value === undefined) return n;
  const count = key(out, n, name);
  out.str(value);
  return count;
}

/** `http.request.id`, given or generated; a generated one is also stored in `f` when `fill` is true. */
function requestId(out: LineBuffer, n: number, f: RequestFields, fill: boolean): void {
  if (f.requestId !== undefined || f.generateRequestId !== true) {
    strMember(out, n, K.id, f.requestId);
    return;
  }
  key(out, n, K.id);
  out.byte(QUOTE);
  const at = writeRandomUuid(out);
  out.byte(QUOTE);
  if (fill) f.requestId = out.text(at, at + 36);
}

/**
 * Serialises the fields up to, and not including, the closing of the `audit` object, which the chain
 * completes with its own members. The same fields and sequence always give the same bytes: they are what
 * the hash chain covers. `fill`: store a generated request id in `f.requestId` (for readers of `f`).
 */
export function serializeFields(f: RequestFields, sequence: number, out: LineBuffer, fill: boolean): void {
  out.raw(K.timestamp);
  out.ascii(iso(f.timestamp ?? Date.now()));
  out.raw(K.kind);
  out.ascii(f.kind ?? 'event');
  out.raw(K.category);
  out.str(f.category);
  out.raw(K.action);
  out.str(f.action);
  out.raw(K.outcome);
  out.ascii(f.outcome);
  if (f.duration !== undefined) {
    out.raw(K.duration);
    out.num(Math.max(0, Math.round(f.duration)));
    out.raw(K.sequence);
  } else out.raw(K.sequenceNoDuration);
  out.num(sequence);
  out.byte(CLOSE);
  if (f.clientIp !== undefined) endpoint(out, K.client, f.clientIp, f.clientPort, 1);
  if (f.peerAddress !== undefined) endpoint(out, K.peer, f.peerAddress, f.peerPort, 2);
  const hasRequest = f.method !== undefined || f.requestId !== undefined || f.generateRequestId === true;
  const hasResponse = f.status !== undefined || f.bytes !== undefined;
  if (hasRequest || hasResponse || f.route !== undefined || f.httpVersion !== undefined) {
    out.raw(K.http);
    let n = 0;
    if (hasRequest) {
      n = key(out, n, K.request);
      requestId(out, strMember(out, 0, K.method, f.method), f, fill);
      out.byte(CLOSE);
    }
    if (hasResponse) {
      n = key(out, n, K.response);
      let m = 0;
      if (f.status !== undefined) {
        m = key(out, m, K.status);
        out.num(f.status);
      }
      if (f.bytes !== undefined) {
        key(out, m, K.body);
        out.num(f.bytes);
        out.byte(CLOSE);
      }
      out.byte(CLOSE);
    }
    n = strMember(out, n, K.route, f.route);
    strMember(out, n, K.version, f.httpVersion);
    out.byte(CLOSE);
  }
  if (f.domain !== undefined || f.path !== undefined || f.query !== undefined) {
    out.raw(K.url);
    let n = strMember(out, 0, K.domain, f.domain);
    n = strMember(out, n, K.path, f.path);
    strMember(out, n, K.query, f.query);
    out.byte(CLOSE);
  }
  if (f.userAgent !== undefined) {
    out.raw(K.userAgent);
    out.str(f.userAgent);
    out.byte(CLOSE);
  }
  if (f.userId !== undefined) {
    out.raw(K.user);
    out.str(f.userId);
    out.byte(CLOSE);
  }
  if (f.tlsVersion !== undefined) {
    out.raw(K.tls);
    out.str(f.tlsVersion);
    out.raw(K.tlsProtocol);
  }
  if (f.errorType !== undefined || f.errorCode !== undefined || f.errorMessage !== undefined) {
    out.raw(K.error);
    let n = strMember(out, 0, K.type, f.errorType);
    n = strMember(out, n, K.code, f.errorCode);
    strMember(out, n, K.message, f.errorMessage);
    out.byte(CLOSE);
  }
}
