// The text form of an audit report: short sections of aligned columns, for a review document.
import type { AuditReport } from '../report.js';
import { printable } from './text.js';

function table(title: string, head: string[], allRows: (string | number)[][], top: number): string {
  if (allRows.length === 0) return `${title}: none\n`;
  const rows = allRows.slice(0, top);
  const total = allRows.length;
  const all = [head, ...rows.map((r) => r.map((c) => printable(String(c))))];
  const widths = head.map((_, i) => Math.max(...all.map((r) => (r[i] as string).length)));
  // Text first (left), counts right-aligned.
  const line = (r: string[]) =>
    `  ${r
      .map((c, i) =>
        i === 0 || Number.isNaN(Number(rows[0]?.[i])) ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number),
      )
      .join('  ')
      .trimEnd()}\n`;
  const more = total > rows.length ? `  … and ${total - rows.length} more (--json lists all)\n` : '';
  return `${title}\n${all.map(line).join('')}${more}`;
}

/**
 * An {@link AuditReport} as text: the verdict, the period and filters, then per day, per user (with first
 * and last access), per client address, per route, failures and refused connections; the longer lists cut
 * at `top` rows.
 *
 * @example
 * ```ts
 * process.stdout.write(formatReport(await auditReport(files, { from: '7d' })));
 * ```
 */
export function formatReport(r: AuditReport, top = 20): string {
  const v = r.verification;
  const head =
    `Audit report over ${r.sources.length} file${r.sources.length === 1 ? '' : 's'}: ${r.sources.join(', ')}\n` +
    `Verification: ${v.verdict.toUpperCase()} (${v.entries} entries read and checked)\n` +
    `Filters: ${
      Object.keys(r.filters).length === 0
        ? 'none'
        : Object.entries(r.filters)
            .map(([k, vs]) => `${k}=${vs.join('|')}`)
            .join(' ')
    }\n` +
    `Period: ${r.first ?? '-'} to ${r.last ?? '-'}\n` +
    `Requests: ${r.requests.requests} (${r.requests.failures} failed); without a user: ${r.anonymous.requests}; refused connections: ${r.refused.total}\n\n`;
  return head + SECTIONS.map(([title, columns, rows]) => table(title, columns, rows(r), top)).join('\n');
}

type Row = (string | number)[];

/** The sections after the summary: title, column heads, rows. */
const SECTIONS: [string, string[], (r: AuditReport) => Row[]][] = [
  ['Per day', ['DAY', 'REQUESTS', 'FAILURES'], (r) => r.perDay.map((d) => [d.day, d.requests, d.failures])],
  [
    'Per user',
    ['USER', 'REQUESTS', 'FAILURES', 'FIRST ACCESS', 'LAST ACCESS'],
    (r) => r.perUser.map((u) => [u.user, u.requests, u.failures, u.first, u.last]),
  ],
  ['Per client address', ['CLIENT', 'REQUESTS', 'FAILURES'], (r) => r.perClient.map((c) => [c.ip, c.requests, c.failures])],
  ['Per route', ['ROUTE', 'REQUESTS', 'FAILURES'], (r) => r.perRoute.map((c) => [c.route, c.requests, c.failures])],
  ['Failures', ['STATUS', 'COUNT'], (r) => r.failures.map((f) => [f.reason, f.count])],
  ['Refused connections by reason', ['CODE', 'COUNT'], (r) => r.refused.byCode.map((c) => [c.code, c.count])],
  ['Refused connections by peer', ['PEER', 'COUNT'], (r) => r.refused.byPeer.map((c) => [c.peer, c.count])],
];
