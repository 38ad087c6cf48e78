// What `query` and `report` share: filter and key options, the verification summary on stderr, and the
// record of the access itself (`--audit-to`).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import os from 'node:os';
import type { VerifyFinding } from '../audit/verify-codes.js';
import type { QueryFilters } from '../query/filter.js';
import type { QueryOptions, QueryResult } from '../query/query.js';
import type { StoreSource } from '../store/query-store.js';
import { last, UsageError } from './args.js';
import { readAuditKeys, readKeys } from './keys.js';

/** Options that take a value, for {@link parseArgs}. */
export const FILTER_OPTIONS = [
  '--ip',
  '--not-ip',
  '--peer',
  '--user',
  '--path',
  '--route',
  '--from',
  '--to',
  '--status',
  '--outcome',
  '--action',
];
export const KEY_OPTIONS = [
  '--public-key',
  '--hash-key-file',
  '--hash-key-env',
  '--audit-to',
  '--audit-hash-key-file',
  '--audit-hash-key-env',
  '--audit-signing-key',
  '--postgres',
  '--table',
];

export const FILTER_USAGE = `      Filters (all must match; a filter given twice matches either value):
        --ip ADDRESS|CIDR  --not-ip ADDRESS|CIDR  --peer ADDRESS|CIDR  --user ID  --path PREFIX  --route TEMPLATE
        --from TIME  --to TIME (ISO-8601, UTC unless an offset is given, or 30m, 12h, 7d, 2w ago; --to is exclusive)
        --status 403|4xx  --outcome success|failure|unknown  --action ACTION
      Keys: --public-key PEM  --hash-key-file FILE | --hash-key-env VAR
      --postgres URL [--table audit_log]: ask the PostgreSQL store instead of files (answered from its indexes,
        each answered row's hash recomputed; verify --postgres checks its chains).
      --audit-to FILE: append an audit-query entry (who, which filters, what was found) to that audit log,
        keyed and signed as that log is: --audit-hash-key-file FILE | --audit-hash-key-env VAR, --audit-signing-key PEM.
      Every chain read is verified. Exit 0: intact; 1: tampered; 2: cannot verify or bad usage; 3: unsealed.`;

export function filtersOf(options: Map<string, string[]>): QueryFilters {
  const f: QueryFilters = {};
  const many = (name: string) => options.get(name);
  if (many('--ip')) f.ip = many('--ip');
  if (many('--not-ip')) f.notIp = many('--not-ip');
  if (many('--peer')) f.peer = many('--peer');
  if (many('--user')) f.user = many('--user');
  if (many('--path')) f.path = many('--path');
  if (many('--route')) f.route = many('--route');
  if (many('--status')) f.status = many('--status');
  if (many('--outcome')) f.outcome = many('--outcome');
  if (many('--action')) f.action = many('--action');
  const from = last(options, '--from');
  const to = last(options, '--to');
  if (from !== undefined) f.from = from;
  if (to !== undefined) f.to = to;
  return f;
}

export function keysOf(options: Map<string, string[]>): Pick<QueryOptions, 'publicKey' | 'hashKey'> {
  return readKeys(options);
}

/** The files given, or the PostgreSQL table of `--postgres URL [--table NAME]`; never both. */
export function sourceOf(command: string, files: string[], options: Map<string, string[]>): string[] | StoreSource {
  const url = last(options, '--postgres');
  const table = last(options, '--table');
  if (url !== undefined && files.length > 0) throw new UsageError(`${command} reads files or --postgres, not both`);
  if (url === undefined && table !== undefined) throw new UsageError('--table goes with --postgres');
  if (url === undefined && files.length === 0) throw new UsageError(`${command} needs at least one file, or --postgres URL`);
  return url === undefined ? files : { postgres: { connectionString: url, table: table ?? 'audit_log' } };
}

/** Runs `fn`, turning a bad filter (a TypeError from the API) into a usage error. */
export function usageOnTypeError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof TypeError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * The verification summary for stderr: one line with the verdict, then every finding worse than a note,
 * consecutive lines of one kind joined into a range (`audit.jsonl:120-135`), then notes counted by code.
 */
export function describeVerification(command: string, r: QueryResult): string {
  const chains = ` in ${r.chains} chain${r.chains === 1 ? '' : 's'}`;
  let out = `${command}: verified ${r.entries} entries${chains}: ${r.verdict.toUpperCase()}; ${r.matched} matched${r.complete ? '' : ' (stopped early: the verdict covers only what was read)'}\n`;
  if (r.unverifiedMatches > 0) out += `${command}: ${r.unverifiedMatches} of the matches did not verify (marked)\n`;
  const findings = r.findings;
  const ranges: { f: VerifyFinding; from?: number; to?: number; n: number }[] = [];
  const notes = new Map<string, number>();
  for (const f of findings) {
    if (f.severity === 'note') {
      notes.set(f.code, (notes.get(f.code) ?? 0) + 1);
      continue;
    }
    const prev = ranges[ranges.length - 1];
    if (
      prev &&
      prev.f.code === f.code &&
      prev.f.source === f.source &&
      f.line !== undefined &&
      prev.to !== undefined &&
      f.line <= prev.to + 1
    ) {
      prev.to = f.line;
      prev.n++;
    } else ranges.push({ f, from: f.line, to: f.line, n: 1 });
  }
  for (const { f, from, to, n } of ranges) {
    const where = f.source === undefined ? '' : `${f.source}${from ? `:${from}${to !== from ? `-${to}` : ''}` : ''}: `;
    out += `${where}${f.severity}: ${f.code}: ${f.message}${n > 1 ? ` (${n} lines)` : ''}\n`;
  }
  for (const [code, n] of notes) out += `note: ${n} × ${code}\n`;
  if (r.findingsTotal > findings.length) out += `(${r.findingsTotal - findings.length} more findings not shown)\n`;
  return out;
}

/**
 * Whether the last 64 KiB of an audit file hold a keyed line (HMAC) or a signed one (a checkpoint, a start
 * entry naming a key): what a record appended there should be too. Nothing when it cannot be read.
 */
function tailOf(file: string): { keyed: boolean; signed: boolean } {
  let text = '';
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const buf = Buffer.alloc(Math.min(size, 64 * 1024));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      text = buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return { keyed: false, signed: false };
  }
  return {
    keyed: text.includes('"alg":"hmac-sha256"'),
    signed: text.includes('"action":"audit-checkpoint"') || text.includes('"key_fingerprint":'),
  };
}

/** Who is asking: the login behind sudo when there is one, else the process's user. */
function who(): string {
  const sudo = process.env.SUDO_USER;
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    user = `uid ${process.getuid?.() ?? 'unknown'}`;
  }
  return sudo ? `${sudo} (as ${user})` : user;
}

/**
 * Appends the record of this access to the audit log `file` (HIPAA §164.312(b): access to the audit log is
 * itself activity on ePHI): action `audit-query`, the user, the command, sources, filters and what was found.
 */
export async function recordAccess(
  file: string,
  options: Map<string, string[]>,
  details: {
    command: string;
    sources: readonly string[];
    filters: Record<string, string[]>;
    result?: QueryResult;
    error?: Error;
  },
): Promise<void> {
  const { command, sources, filters, result, error } = details;
  // One URL-encoded text (url.query) that any reader parses with URLSearchParams: the command, each filter,
  // the files read and what was found.
  const q = new URLSearchParams({ command });
  for (const [name, values] of Object.entries(filters)) for (const v of values) q.append(name, v);
  for (const s of sources) q.append('source', s);
  if (result) {
    q.set('matched', String(result.matched));
    q.set('verdict', result.verdict);
  }
  // Loaded only for --audit-to: the writer brings winston, which costs a query ~60 ms of start-up
  // (`node -e "require('winston')"`: 59 ms on this machine).
  const { createAuditLog } = await import('../audit/audit-log.js');
  const keys = readAuditKeys(options);
  // A plain SHA-256, unsigned record in a keyed or signed log reads chain-unkeyed or unsealed there.
  const read = sources.includes(file) ? (result?.chainSummaries ?? []) : [];
  const tail = tailOf(file);
  const keyed = read.some((c) => c.alg === 'hmac-sha256') || tail.keyed;
  const signed = read.some((c) => c.signed) || tail.signed;
  const missing = [
    ...(keyed && !keys.hashKey ? ['--audit-hash-key-file | --audit-hash-key-env'] : []),
    ...(signed && !keys.signingKey ? ['--audit-signing-key'] : []),
  ];
  if (missing.length > 0) {
    const is = keyed && signed ? 'keyed and signed' : keyed ? 'keyed' : 'signed';
    process.stderr.write(
      `warning: ${file} is ${is}, but the audit-query entry is written without ${missing.join(' and ')}: verify will read its chain as ${keyed && !keys.hashKey ? 'chain-unkeyed' : 'chain-unsealed'}; give the log's keys, or record access in a log of its own\n`,
    );
  }
  const log = createAuditLog({ filename: file, service: 'proxy-protocol-audit', ...keys });
  log.write({
    kind: 'event',
    category: 'configuration',
    action: 'audit-query',
    outcome: error === undefined && result?.complete !== false ? 'success' : 'failure',
    userId: who(),
    query: q.toString(),
    errorMessage: error?.message,
  });
  await log.close();
}
