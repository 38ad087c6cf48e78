// A parsed audit line, read defensively: a line that failed verification can hold anything, so every field
// is read through an accessor that returns `undefined` unless the value has the type the writer gives it.

/** One audit line as parsed JSON (the ECS shape the writer produces; see the README's "Audit line"). */
export type AuditEntry = Record<string, unknown>;

function member(o: unknown, k: string): unknown {
  return typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[k] : undefined;
}

function at(e: AuditEntry, a: string, b?: string, c?: string): unknown {
  let v = member(e, a);
  if (b !== undefined) v = member(v, b);
  if (c !== undefined) v = member(v, c);
  return v;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** The fields the query tools read, each `undefined` when absent or of the wrong type. */
export interface EntryView {
  timestamp: string | undefined;
  /** `@timestamp` in milliseconds since the epoch (NaN when absent or unparseable). */
  time: number;
  kind: string | undefined;
  category: string | undefined;
  action: string | undefined;
  outcome: string | undefined;
  sequence: number | undefined;
  clientIp: string | undefined;
  clientPort: number | undefined;
  peerIp: string | undefined;
  peerPort: number | undefined;
  method: string | undefined;
  requestId: string | undefined;
  status: number | undefined;
  route: string | undefined;
  path: string | undefined;
  domain: string | undefined;
  userId: string | undefined;
  userAgent: string | undefined;
  errorType: string | undefined;
  errorCode: string | undefined;
  errorMessage: string | undefined;
  service: string | undefined;
  host: string | undefined;
  chain: string | undefined;
}

/**
 * Reads the fields of a parsed line (exported as `entryFields`).
 *
 * @example
 * ```ts
 * entryFields(JSON.parse(line)).clientIp; // '203.0.113.7', or undefined
 * ```
 */
export function view(e: AuditEntry): EntryView {
  const timestamp = str(e['@timestamp']);
  return {
    timestamp,
    time: timestamp === undefined ? Number.NaN : Date.parse(timestamp),
    kind: str(at(e, 'event', 'kind')),
    category: str(at(e, 'event', 'category')),
    action: str(at(e, 'event', 'action')),
    outcome: str(at(e, 'event', 'outcome')),
    sequence: num(at(e, 'event', 'sequence')),
    clientIp: str(at(e, 'client', 'ip')),
    clientPort: num(at(e, 'client', 'port')),
    peerIp: str(at(e, 'network', 'peer', 'address')),
    peerPort: num(at(e, 'network', 'peer', 'port')),
    method: str(at(e, 'http', 'request', 'method')),
    requestId: str(at(e, 'http', 'request', 'id')),
    status: num(at(e, 'http', 'response', 'status_code')),
    route: str(at(e, 'http', 'route')),
    path: str(at(e, 'url', 'path')),
    domain: str(at(e, 'url', 'domain')),
    userId: str(at(e, 'user', 'id')),
    userAgent: str(at(e, 'user_agent', 'original')),
    errorType: str(at(e, 'error', 'type')),
    errorCode: str(at(e, 'error', 'code')),
    errorMessage: str(at(e, 'error', 'message')),
    service: str(at(e, 'service', 'name')),
    host: str(at(e, 'host', 'name')),
    chain: str(at(e, 'audit', 'chain')),
  };
}
