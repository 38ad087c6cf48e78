// nginx's `elb_format` access-log line, as AWS documents for PROXY protocol setups, without query values.
import TransportStream from 'winston-transport';
import type { AuditFields } from './entry.js';
import { FileSink } from './file-sink.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/** nginx `$time_local`, in UTC: `24/Nov/2026:01:02:03 +0000`. */
function timeLocal(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

function quoted(s: string | undefined): string {
  return s === undefined || s === ''
    ? '"-"'
    : `"${s.replace(/["\\\n\r]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`)}"`;
}

/**
 * Formats a request entry as
 * `$host $proxy_protocol_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
 *  "$http_referer" "$http_user_agent" "$http_x_forwarded_for" $request_time`.
 * The request line carries the path only (never a query), the referer is never written (it may hold PHI),
 * and `$remote_user` is the opaque `user.id`. Returns undefined for non-request entries.
 *
 * @example
 * ```ts
 * // ehr.example 203.0.113.7 - u-17 [24/Nov/2026:01:02:03 +0000] "GET /patients/:id HTTP/1.1" 200 512 "-" "curl/8" "203.0.113.7" 0.004
 * ```
 */
export function formatElbLine(f: AuditFields): string | undefined {
  if (f.category !== 'web' || f.method === undefined) return undefined;
  const seconds = ((f.duration ?? 0) / 1e9).toFixed(3);
  const request = `${f.method} ${f.path ?? '/'} HTTP/${f.httpVersion ?? '1.1'}`;
  return `${f.domain ?? '-'} ${f.clientIp ?? '-'} - ${f.userId ?? '-'} [${timeLocal(f.timestamp instanceof Date ? f.timestamp.getTime() : (f.timestamp ?? Date.now()))}] ${quoted(request)} ${f.status ?? 0} ${f.bytes ?? 0} "-" ${quoted(f.userAgent)} ${quoted(f.clientIp)} ${seconds}`;
}

/**
 * A winston transport that appends {@link formatElbLine} lines to a file, for a winston logger of your own
 * (`createAuditLog({ accessLog })` writes the same lines without it). Not chained: for people, not auditors.
 * Follows log rotation: when the file at `filename` is renamed or removed, the next line opens it anew.
 */
export class AccessLogTransport extends TransportStream {
  private readonly sink: FileSink;

  constructor(options: { filename: string }) {
    super({ level: 'info' });
    this.sink = new FileSink({ filename: options.filename });
    this.sink.open('start');
    this.sink.on('failed', (err: Error) => this.emit('warn', err));
  }

  override log(info: { fields?: AuditFields }, callback: () => void): void {
    const line = info.fields ? formatElbLine(info.fields) : undefined;
    if (line !== undefined) {
      this.sink.follow();
      this.sink.out.utf8(line);
      this.sink.endLine();
    }
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.sink.close().then(
      () => callback(),
      () => callback(),
    );
  }
}
