// `proxy-protocol-audit verify FILE...`: checks audit log files and says what the result proves.
import { type VerifyFinding, type VerifyResult, verifyAuditLog } from '../audit/verify.js';
import { orderFiles } from '../query/sources.js';
import { type Command, last, parseArgs, UsageError } from './args.js';
import { readKeys } from './keys.js';

const HEADLINE = { intact: 'INTACT', unsealed: 'UNSEALED', tampered: 'TAMPERED', 'cannot-verify': 'CANNOT VERIFY' } as const;
/** Findings printed in the human output; `--json` has them all (up to the verifier's own bound). */
const SHOWN = 50;

export const verify: Command = {
  usage: `verify FILE... | --postgres URL [--table audit_log] [--public-key PEM] [--hash-key-file FILE | --hash-key-env VAR] [--json]
      Checks audit log files (each rotated set read oldest first, whatever the order named, .gz too), or every chain in the PostgreSQL table. Exit 0: intact. 1: tampered.
      2: cannot verify (no entry, unreadable file, HMAC log without its key) or a usage error.
      3: unsealed (a signed chain ends with neither its final checkpoint nor a later writer's witness).`,
  async run(args) {
    const {
      positional: files,
      options,
      set,
    } = parseArgs(args, ['--public-key', '--hash-key-file', '--hash-key-env', '--postgres', '--table'], ['--json']);
    const { publicKey, hashKey } = readKeys(options);
    const url = last(options, '--postgres');
    const table = last(options, '--table');
    if (url !== undefined && files.length > 0) throw new UsageError('verify reads files or --postgres, not both');
    if (url === undefined && table !== undefined) throw new UsageError('--table goes with --postgres');
    if (url === undefined && files.length === 0) throw new UsageError('verify needs at least one file, or --postgres URL');
    const r =
      url === undefined
        ? await verifyAuditLog(orderFiles([...new Set(files)]), { publicKey, hashKey })
        : await verifyAuditLog({ postgres: { connectionString: url, table: table ?? 'audit_log' }, publicKey, hashKey });
    process.stdout.write(set.has('--json') ? `${JSON.stringify(r)}\n` : report(r, publicKey !== undefined));
    return r.exitCode;
  },
};

/** The human report: a headline with the verdict, the findings (notes too), and the counts. */
function report(r: VerifyResult, signed: boolean): string {
  const where = r.file === undefined ? '' : `${r.file}${r.firstBadLine === undefined ? '' : `:${r.firstBadLine}`}: `;
  const head =
    r.verdict === 'intact' ? `${HEADLINE.intact}: ${counts(r, signed)}` : `${HEADLINE[r.verdict]}: ${where}${r.reason}`;
  const lines = [head];
  for (const f of r.findings.slice(0, SHOWN)) lines.push(`  ${f.severity.padEnd(8)} ${f.code.padEnd(20)} ${at(f)}${f.message}`);
  const more = r.findingsTotal - Math.min(SHOWN, r.findings.length);
  if (more > 0) lines.push(`  … and ${more} more finding${more === 1 ? '' : 's'} (--json lists up to ${r.findings.length})`);
  if (r.verdict !== 'intact') lines.push(counts(r, signed));
  return `${lines.join('\n')}\n`;
}

const STATUS_WORDS = { closed: 'closed', witnessed: 'crashed and witnessed', unsealed: 'unsealed', open: 'open' } as const;

function counts(r: VerifyResult, signed: boolean): string {
  const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
  const statuses = (Object.keys(STATUS_WORDS) as (keyof typeof STATUS_WORDS)[])
    .map((s) => [r.chainSummaries.filter((c) => c.status === s).length, STATUS_WORDS[s]] as const)
    .filter(([n]) => n > 0)
    .map(([n, word]) => `${n} ${word}`);
  let text = `${plural(r.entries, 'entry', 'entries')} in ${plural(r.chains, 'chain')}`;
  if (statuses.length > 0) text += ` (${statuses.join(', ')})`;
  if (signed) text += `, ${plural(r.checkpoints, 'signed checkpoint')} verified`;
  if (r.fragments > 0) text += `, ${plural(r.fragments, 'torn fragment')} skipped`;
  if (!signed && r.entries > 0) text += '; hashes and links checked (pass --public-key to check signatures and cut tails)';
  return text;
}

function at(f: VerifyFinding): string {
  if (f.source === undefined) return '';
  return f.line === undefined ? `${f.source}: ` : `${f.source}:${f.line}: `;
}
