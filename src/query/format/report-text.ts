// The text form of an audit report: short sections of aligned columns, for a review document.
import type { AuditReport } from '../report.js';
import { printable } from './text.js';

function table(title: string, head: string[], rows: (string | number)[][], total: number): string {
  if (rows.length === 0) return `${title}: none\n`;
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
  const t = (xs: unknown[]) => xs.slice(0, top);
  return (
    head +
    table(
      'Per day',
      ['DAY', 'REQUESTS', 'FAILURES'],
      r.perDay.map((d) => [d.day, d.requests, d.failures]),
      r.perDay.length,
    ) +
    '\n' +
    table(
      'Per user',
      ['USER', 'REQUESTS', 'FAILURES', 'FIRST ACCESS', 'LAST ACCESS'],
      (t(r.perUser) as AuditReport['perUser']).map((u) => [u.user, u.requests, u.failures, u.first, u.last]),
      r.perUser.length,
    ) +
    '\n' +
    table(
      'Per client address',
      ['CLIENT', 'REQUESTS', 'FAILURES'],
      (t(r.perClient) as AuditReport['perClient']).map((c) => [c.ip, c.requests, c.failures]),
      r.perClient.length,
    ) +
    '\n' +
    table(
      'Per route',
      ['ROUTE', 'REQUESTS', 'FAILURES'],
      (t(r.perRoute) as AuditReport['perRoute']).map((c) => [c.route, c.requests, c.failures]),
      r.perRoute.length,
    ) +
    '\n' +
    table(
      'Failures',
      ['STATUS', 'COUNT'],
      (t(r.failures) as AuditReport['failures']).map((f) => [f.reason, f.count]),
      r.failures.length,
    ) +
    '\n' +
    table(
      'Refused connections by reason',
      ['CODE', 'COUNT'],
      (t(r.refused.byCode) as AuditReport['refused']['byCode']).map((c) => [c.code, c.count]),
      r.refused.byCode.length,
    ) +
    table(
      'Refused connections by peer',
      ['PEER', 'COUNT'],
      (t(r.refused.byPeer) as AuditReport['refused']['byPeer']).map((c) => [c.peer, c.count]),
      r.refused.byPeer.length,
    )
  );
}
