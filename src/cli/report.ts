// `proxy-protocol-audit report FILE...`: a summary for a review, from verified files.
import { formatReport } from '../query/format/report-text.js';
import { type AuditReport, auditReport } from '../query/report.js';
import { type Command, last, parseArgs } from './args.js';
import {
  describeVerification,
  FILTER_OPTIONS,
  FILTER_USAGE,
  filtersOf,
  KEY_OPTIONS,
  keysOf,
  recordAccess,
  sourceOf,
  usageOnTypeError,
} from './query-options.js';

export const report: Command = {
  usage: `report FILE... | --postgres URL [--table T] [filters] [--json]
      Counts per day, per user (first and last access), per client address and per route; failures and
      refused connections. Text, or --json.
${FILTER_USAGE}`,
  async run(args) {
    const { positional: files, options, set } = parseArgs(args, [...FILTER_OPTIONS, ...KEY_OPTIONS], ['--json']);
    const source = sourceOf('report', files, options);
    const pending = usageOnTypeError(() => auditReport(source, filtersOf(options), keysOf(options)));
    let r: AuditReport | undefined;
    let error: Error | undefined;
    try {
      r = await pending;
    } catch (err) {
      error = err as Error;
      throw err;
    } finally {
      const auditTo = last(options, '--audit-to');
      if (auditTo !== undefined) {
        await recordAccess(auditTo, options, {
          command: 'report',
          sources: r?.sources ?? files,
          filters: r?.filters ?? {},
          result: r?.verification,
          error,
        });
      }
    }
    process.stdout.write(set.has('--json') ? `${JSON.stringify(r)}\n` : formatReport(r));
    process.stderr.write(describeVerification('report', r.verification));
    return r.verification.exitCode;
  },
};
