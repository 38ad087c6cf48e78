// `proxy-protocol-audit verify FILE...`: checks audit log files and says what the result proves.
import { readFileSync } from 'node:fs';
import { type VerifyFinding, type VerifyResult, verifyAuditLog } from '../audit/verify.js';
import { type Command, last, parseArgs, UsageError } from './args.js';

const HEADLINE = { intact: 'INTACT', unsealed: 'UNSEALED', tampered: 'TAMPERED', 'cannot-verify': 'CANNOT VERIFY' } as const;
/** Findings printed in the human output; `--json` has them all (up to the verifier's own bound). */
const SHOWN = 50;

export const verify: Command = {
  usage: `verify FILE... [--public-key PEM] [--hash-key-file FILE | --hash-key-env VAR] [--json]
      Checks audit log files (rotated files oldest first, .gz too). Exit 0: intact. 1: tampered.
      2: cannot verify (no entry, unreadable file, HMAC log without its key) or a usage error.
      3: unsealed (a signed chain ends with neither its final checkpoint nor a later writer's witness).`,
  async run(args) {
    const {
      positional: files,
      options,
      set,
    } = parseArgs(args, ['--public-key', '--hash-key-file', '--hash-key-env'], ['--json']);
    const pubFile = last(options, '--public-key');
    const publicKey = pubFile === undefined ? undefined : readFileSync(pubFile, 'utf8');
    let hashKey: Buffer | undefined;
    const keyFile = last(options, '--hash-key-file');
    const keyEnv = last(options, '--hash-key-env');
    if (keyFile !== undefined) hashKey = readFileSync(keyFile);
    else if (keyEnv !== undefined) {
      const v = process.env[keyEnv];
      if (v === undefined) throw new UsageError(`environment variable ${keyEnv} is not set`);
      hashKey = Buffer.from(v);
    }
    if (files.length === 0) throw new UsageError('verify needs at least one file');
    const r = await verifyAuditLog(files, { publicKey, hashKey });
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

function counts(r: VerifyResult, signed: boolean): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const parts = [`${plural(r.entries, 'entry').replace('entrys', 'entries')} in ${plural(r.chains, 'chain')}`];
  if (signed) parts.push(`${plural(r.checkpoints, 'signed checkpoint')} verified`);
  if (r.fragments > 0) parts.push(`${plural(r.fragments, 'torn fragment')} skipped`);
  const sealed = r.chainSummaries.filter((c) => c.status === 'closed').length;
  const witnessed = r.chainSummaries.filter((c) => c.status === 'witnessed').length;
  parts.push(`${sealed} closed${witnessed > 0 ? `, ${witnessed} crashed and witnessed` : ''}`);
  if (!signed) parts.push('hashes and links checked; pass --public-key to check signatures and cut tails');
  return parts.join(', ');
}

function at(f: VerifyFinding): string {
  if (f.source === undefined) return '';
  return f.line === undefined ? `${f.source}: ` : `${f.source}:${f.line}: `;
}
