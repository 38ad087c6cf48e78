// CSV for spreadsheets and SIEM imports (RFC 4180), safe to open in a spreadsheet.
import type { QueryMatch } from '../query.js';
import type { Formatter } from './table.js';

type Cell = string | number | undefined;

const COLUMNS: [string, (m: QueryMatch) => Cell][] = [
  ['time', (m) => m.fields.timestamp],
  ['client_ip', (m) => m.fields.clientIp],
  ['client_port', (m) => m.fields.clientPort],
  ['peer_ip', (m) => m.fields.peerIp],
  ['peer_port', (m) => m.fields.peerPort],
  ['user', (m) => m.fields.userId],
  ['method', (m) => m.fields.method],
  ['path', (m) => m.fields.path],
  ['route', (m) => m.fields.route],
  ['status', (m) => m.fields.status],
  ['outcome', (m) => m.fields.outcome],
  ['action', (m) => m.fields.action],
  ['error', (m) => m.fields.errorType],
  ['request_id', (m) => m.fields.requestId],
  ['service', (m) => m.fields.service],
  ['host', (m) => m.fields.host],
  ['chain', (m) => m.fields.chain],
  ['sequence', (m) => m.fields.sequence],
  ['verified', (m) => (m.verified ? 'yes' : 'no')],
  ['source', (m) => m.source],
  ['line', (m) => m.lineNumber],
];

// A cell a spreadsheet would run as a formula (OWASP "CSV injection"): = + - @, and TAB or CR before them.
const FORMULA = /^[=+\-@\t\r]/;
const QUOTE_NEEDED = /[",\r\n]/;

/**
 * One CSV field: numbers as they are; text quoted when it holds a comma, quote, CR or LF (quotes doubled,
 * RFC 4180 §2.6–2.7); text starting with `=`, `+`, `-`, `@`, TAB or CR gets a leading `'` and is quoted, so
 * a spreadsheet shows it instead of evaluating it.
 *
 * @example
 * ```ts
 * csvField('=HYPERLINK("x")'); // "'=HYPERLINK(""x"")" (quoted)
 * ```
 */
export function csvField(v: Cell): string {
  if (v === undefined) return '';
  if (typeof v === 'number') return String(v);
  let s = v;
  const formula = FORMULA.test(s);
  if (formula) s = `'${s}`;
  return formula || QUOTE_NEEDED.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * CSV with a header row and CRLF line ends (RFC 4180): time, client and peer address and port, user,
 * method, path, route, status, outcome, action, error type, request id, service, host, chain, sequence,
 * whether the entry verified, and where it was read. Values that would start a spreadsheet formula are
 * neutralised (see {@link csvField}).
 *
 * @example
 * ```ts
 * const f = createCsvFormatter();
 * for await (const m of queryAuditLog(files, filters)) out.write(f.row(m));
 * ```
 */
export function createCsvFormatter(): Formatter {
  let head = `${COLUMNS.map(([name]) => name).join(',')}\r\n`;
  return {
    row: function csvRow(m: QueryMatch): string {
      const line = `${head}${COLUMNS.map(([, get]) => csvField(get(m))).join(',')}\r\n`;
      head = '';
      return line;
    },
    end: function csvEnd(): string {
      const rest = head;
      head = '';
      return rest;
    },
  };
}
