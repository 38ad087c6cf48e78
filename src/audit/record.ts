// One audit entry, as facts, and its serialisation to the front part of an ECS JSON line.
// Built by hand in a fixed field order: the exact bytes are what the hash chain covers, and hand-building is
// several times cheaper than JSON.stringify of a nested object on the request path.

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

// Quotes a string as JSON. Most values (methods, ids, paths, user agents) are plain printable ASCII, which
// needs no escaping: one regex test instead of a JSON.stringify call per field.
const NEEDS_ESCAPE = /[^\x20-\x21\x23-\x5b\x5d-\x7e]/;
function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

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

/** Appends one member to a comma-separated list (no leading comma to slice off later: slicing a string
 * built by concatenation copies it first). */
function more(members: string, member: string): string {
  return members === '' ? member : `${members},${member}`;
}

/**
 * Serialises the fields up to, and not including, the closing of the `audit` object, which the chain
 * completes with its own members.
 */
export function serializeFields(f: AuditFields, sequence: number): string {
  const ts = iso(f.timestamp ?? Date.now());
  let event = `"kind":"${f.kind ?? 'event'}","category":${str(f.category)},"action":${str(f.action)},"outcome":"${f.outcome}"`;
  if (f.duration !== undefined) event += `,"duration":${Math.max(0, Math.round(f.duration))}`;
  event += `,"sequence":${sequence}`;
  let s = `{"@timestamp":"${ts}","event":{${event}}`;
  if (f.clientIp !== undefined)
    s += `,"client":{"ip":${str(f.clientIp)}${f.clientPort !== undefined ? `,"port":${f.clientPort}` : ''}}`;
  if (f.peerAddress !== undefined) {
    s += `,"network":{"peer":{"address":${str(f.peerAddress)}${f.peerPort !== undefined ? `,"port":${f.peerPort}` : ''}}}`;
  }
  let request = '';
  if (f.method !== undefined) request = `"method":${str(f.method)}`;
  if (f.requestId !== undefined) request = more(request, `"id":${str(f.requestId)}`);
  let response = '';
  if (f.status !== undefined) response = `"status_code":${f.status}`;
  if (f.bytes !== undefined) response = more(response, `"body":{"bytes":${f.bytes}}`);
  let http = '';
  if (request !== '') http = `"request":{${request}}`;
  if (response !== '') http = more(http, `"response":{${response}}`);
  if (f.route !== undefined) http = more(http, `"route":${str(f.route)}`);
  if (f.httpVersion !== undefined) http = more(http, `"version":${str(f.httpVersion)}`);
  if (http !== '') s += `,"http":{${http}}`;
  let url = '';
  if (f.domain !== undefined) url = `"domain":${str(f.domain)}`;
  if (f.path !== undefined) url = more(url, `"path":${str(f.path)}`);
  if (f.query !== undefined) url = more(url, `"query":${str(f.query)}`);
  if (url !== '') s += `,"url":{${url}}`;
  if (f.userAgent !== undefined) s += `,"user_agent":{"original":${str(f.userAgent)}}`;
  if (f.userId !== undefined) s += `,"user":{"id":${str(f.userId)}}`;
  if (f.tlsVersion !== undefined) s += `,"tls":{"version":${str(f.tlsVersion)},"version_protocol":"tls"}`;
  let error = '';
  if (f.errorType !== undefined) error = `"type":${str(f.errorType)}`;
  if (f.errorCode !== undefined) error = more(error, `"code":${str(f.errorCode)}`);
  if (f.errorMessage !== undefined) error = more(error, `"message":${str(f.errorMessage)}`);
  if (error !== '') s += `,"error":{${error}}`;
  return s;
}
