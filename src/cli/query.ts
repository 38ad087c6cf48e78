// `proxy-protocol-audit query FILE...`: the entries that match, from verified files.
import { createCsvFormatter } from '../query/format/csv.js';
import { createFhirBundleFormatter, createFhirNdjsonFormatter } from '../query/format/fhir.js';
import { createTableFormatter, type Formatter } from '../query/format/table.js';
import { type AuditQuery, type QueryResult, queryAuditLog } from '../query/query.js';
import { type Command, last, parseArgs, UsageError } from './args.js';
import { Output } from './output.js';
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

// (--text, not --table: --table names the PostgreSQL table, as in verify, ship and pg-init.)
const FORMATS = ['--text', '--json', '--csv', '--fhir', '--fhir-bundle'];

function formatter(name: string): Formatter {
  if (name === '--text') return createTableFormatter();
  if (name === '--csv') return createCsvFormatter();
  if (name === '--fhir') return createFhirNdjsonFormatter();
  if (name === '--fhir-bundle') return createFhirBundleFormatter();
  // --json: the original lines, byte for byte.
  return { row: (m) => `${m.line}\n`, end: () => '' };
}

export const query: Command = {
  usage: `query FILE... | --postgres URL [--table T] [filters] [--limit N] [--text | --json | --csv | --fhir | --fhir-bundle]
      Entries that match, from verified files (rotated sets oldest first, .gz read too). Output: an aligned
      table on a terminal (--text), else the original lines (--json); --csv (formula-safe); --fhir: FHIR R4 AuditEvents, NDJSON;
      --fhir-bundle: one Bundle. The verdict and damaged ranges go to stderr.
${FILTER_USAGE}`,
  async run(args) {
    const { positional: files, options, set } = parseArgs(args, [...FILTER_OPTIONS, ...KEY_OPTIONS, '--limit'], FORMATS);
    const source = sourceOf('query', files, options);
    const chosen = FORMATS.filter((f) => set.has(f));
    if (chosen.length > 1) throw new UsageError(`choose one output format, not ${chosen.join(' and ')}`);
    const format = chosen[0] ?? (process.stdout.isTTY ? '--text' : '--json');
    const limitText = last(options, '--limit');
    if (limitText !== undefined && !/^\d+$/.test(limitText)) throw new UsageError('--limit needs a whole number');
    const q: AuditQuery = usageOnTypeError(() =>
      queryAuditLog(source, filtersOf(options), {
        ...keysOf(options),
        limit: limitText === undefined ? undefined : Number(limitText),
      }),
    );
    const out = new Output();
    const f = formatter(format);
    let result: QueryResult | undefined;
    let error: Error | undefined;
    try {
      for await (const m of q) {
        await out.write(f.row(m));
        if (out.closed) break;
      }
      await out.write(f.end());
      await out.flush();
      result = await q.result;
    } catch (err) {
      error = err as Error;
      throw err;
    } finally {
      const auditTo = last(options, '--audit-to');
      if (auditTo !== undefined)
        await recordAccess(auditTo, options, { command: 'query', sources: q.sources, filters: q.filters, result, error });
    }
    process.stderr.write(describeVerification('query', result));
    return result.exitCode;
  },
};
