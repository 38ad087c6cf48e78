// Verification of audit log files: the streaming core (verifier.ts) fed from files, oldest first.
import { type VerifyStoreOptions, verifyStore } from '../store/verify-store.js';
import { readLines } from './line-reader.js';
import { Verifier, type VerifyOptions, type VerifyResult } from './verifier.js';

export {
  type ChainStatus,
  type ChainSummary,
  type LineSource,
  type ParsedEntry,
  type VerifiedEntry,
  Verifier,
  type VerifyOptions,
  type VerifyResult,
} from './verifier.js';
export {
  type Verdict,
  type VerifyCode,
  VerifyCodes,
  type VerifyFinding,
  VerifySeverities,
  type VerifySeverity,
} from './verify-codes.js';

/**
 * Verifies one or more audit log files, read in the order given (rotated files oldest first; gzip-compressed
 * ones are read as they are), streaming: memory stays bounded whatever their size. Each writer's chain is
 * checked on its own — sequence without gaps, each entry linked to the one before, each hash recomputed,
 * each checkpoint's signature (with `publicKey`), each start entry's witness of the file's previous last
 * line — and how it ended is judged. See {@link Verifier} for the rules and {@link VerifyOptions} for the
 * options (`hashKey`, `publicKey`, `maxFindings` = 100, `witnessWindow` = 10000).
 *
 * The verdict: `intact` (exit 0; notes for what is benign), `unsealed` (3: a signed chain ends with neither
 * its final checkpoint nor a witness), `tampered` (1), `cannot-verify` (2: no entry, an unreadable file, an
 * HMAC chain without `hashKey`). Never rejects for a bad file: that is a finding.
 *
 * @example
 * ```ts
 * const r = await verifyAuditLog(['audit.jsonl.1.gz', 'audit.jsonl'], { publicKey: fs.readFileSync('audit.pub') });
 * if (r.verdict !== 'intact') console.error(r.verdict, r.findings);
 * process.exitCode = r.exitCode;
 * ```
 */
export async function verifyAuditLog(files: string | string[], options?: VerifyOptions): Promise<VerifyResult>;
/**
 * Verifies every chain in a PostgreSQL audit table (see `verifyStore`): `{ postgres, …VerifyOptions }`.
 *
 * @example
 * ```ts
 * const r = await verifyAuditLog({ postgres: process.env.AUDIT_DB, publicKey: fs.readFileSync('audit.pub') });
 * ```
 */
export async function verifyAuditLog(store: VerifyStoreOptions): Promise<VerifyResult>;
export async function verifyAuditLog(
  files: string | string[] | VerifyStoreOptions,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  if (files !== null && typeof files === 'object' && !Array.isArray(files)) return verifyStore(files);
  const list = typeof files === 'string' ? [files] : files;
  if (!Array.isArray(list) || list.length === 0 || !list.every((f) => typeof f === 'string')) {
    throw new TypeError('verifyAuditLog: give a file name or a non-empty array of file names');
  }
  const verifier = new Verifier(options);
  for (const file of list) {
    const where = { source: file, line: 0 };
    try {
      const end = await readLines(file, (text, line) => {
        where.line = line;
        verifier.line(text, where);
      });
      verifier.endSource(file, end);
    } catch (err) {
      verifier.endSource(file);
      verifier.unreadable(file, err as Error);
    }
  }
  return verifier.end();
}
