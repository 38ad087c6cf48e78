// The vocabulary of verification: finding codes, their severities, verdicts and exit codes.

/**
 * Stable codes of verification findings (`VerifyFinding.code`). Tools branch on these, never on the message.
 * Each code has one severity ({@link VerifySeverity}): `note` (benign, the verdict stays intact), `unsealed`
 * (not proven: a crash and a cut cannot be told apart), `tampered` (the log was changed), `error` (the
 * verifier cannot judge: the verdict is cannot-verify).
 *
 * @example
 * ```ts
 * const r = await verifyAuditLog('audit.jsonl');
 * const torn = r.findings.filter((f) => f.code === VerifyCodes.TORN_FRAGMENT).length;
 * ```
 */
export const VerifyCodes = {
  /** note: a torn line (a write cut by a crash or a full disk); it claims nothing and is skipped. */
  TORN_FRAGMENT: 'torn-fragment',
  /** note: the input ends in a whole entry without its newline (a write cut right before it). */
  MISSING_NEWLINE: 'missing-newline',
  /** note: a chain ends without `audit-log-stopped`, but a later writer of the file witnessed its last line. */
  WRITER_CRASHED: 'writer-crashed',
  /** note: an unsigned chain ends without `audit-log-stopped` and unwitnessed: a crash or a cut tail. */
  CHAIN_OPEN: 'chain-open',
  /** note: the log carries signed checkpoints but no public key was given, so none was checked. */
  SIGNATURES_UNCHECKED: 'signatures-unchecked',
  /**
   * note: a start entry names a line further back than the witness window; that line's chain is known and
   * passed through that point in this file, but its hash was not compared.
   */
  WITNESS_UNCHECKED: 'witness-unchecked',
  /**
   * note: a query of the PostgreSQL store recomputed the hash of every row it answered, but did not walk the
   * chains (gaps, links, checkpoints, cut tails): `verify --postgres` does, over the whole table.
   */
  CHAINS_NOT_VERIFIED: 'chains-not-verified',
  /**
   * note: `verify --postgres` found the store's append-only guard missing, disabled or changed on a table or
   * partition (as `<table>_check_append_only()` lists it): rows there could be changed without PostgreSQL
   * refusing it. The hashes, links and checkpoints still show any change; `pg-init` puts the guard back.
   */
  STORE_UNGUARDED: 'store-unguarded',
  /**
   * unsealed: with the public key, a chain that ends with neither its final signed checkpoint nor a later
   * writer's witness (`proven`: entries covered by its last valid checkpoint; `unproven`: entries after it).
   */
  CHAIN_UNSEALED: 'chain-unsealed',
  /**
   * unsealed: a `hashKey` was given but this chain uses plain SHA-256, which anyone can compute: nothing
   * proves who wrote it, and it witnesses no other chain's crash.
   */
  CHAIN_UNKEYED: 'chain-unkeyed',
  /**
   * unsealed: a torn fragment that no writer explains: not written again whole on a later line (a full disk),
   * not found by the next writer opening the file (`torn_bytes`: a crash); glued before another writer's line
   * or the source's last piece, neither the next entry of a writer that never wrote its last line (after that
   * writer's last entry) nor the beginning of a new writer's first line. A writer killed mid-write while other processes went on
   * writing the file leaves one; so does text put there by hand: the two cannot be told apart.
   */
  FRAGMENT_UNEXPLAINED: 'fragment-unexplained',
  /** tampered: the entry's hash does not match its text: it was edited (or the hashKey is wrong). */
  HASH_MISMATCH: 'hash-mismatch',
  /** tampered: the sequence jumps forward: entries were removed. */
  SEQUENCE_GAP: 'sequence-gap',
  /** tampered: a sequence number at or below one already seen: entries reordered or duplicated. */
  SEQUENCE_REORDERED: 'sequence-reordered',
  /** tampered: `audit.prev` is not the hash of the chain's previous entry: entries inserted or replaced. */
  LINK_BROKEN: 'link-broken',
  /** tampered: a chain's first entry is not sequence 1 (nor a reopen entry): its beginning was removed. */
  START_MISSING: 'start-missing',
  /** tampered: an entry after `audit-log-stopped` (other than the final checkpoint) or after the final checkpoint. */
  ENTRY_AFTER_END: 'entry-after-end',
  /**
   * tampered: a start or reopen entry's `audit.previous` names a line that does not precede it in the same
   * file: lines were removed (for instance a whole writer's chain).
   */
  WITNESS_MISSING: 'witness-missing',
  /** tampered: a line that is neither an entry, a torn fragment nor blank (foreign text, or an entry without its chain members). */
  NOT_AN_ENTRY: 'not-an-entry',
  /** tampered: a checkpoint signed by another key than the one given. */
  CHECKPOINT_KEY: 'checkpoint-key',
  /** tampered: a checkpoint's last sequence or hash is not the chain's. */
  CHECKPOINT_MISMATCH: 'checkpoint-mismatch',
  /** tampered: a checkpoint's previous signature is not the chain's previous checkpoint's. */
  CHECKPOINT_CONTINUITY: 'checkpoint-continuity',
  /** tampered: a checkpoint signature that does not verify. */
  CHECKPOINT_SIGNATURE: 'checkpoint-signature',
  /** error: no entry at all (an empty or missing log proves nothing). */
  EMPTY_INPUT: 'empty-input',
  /** error: a file (or other source) could not be read. */
  UNREADABLE: 'unreadable',
  /** error: an HMAC chain, and no `hashKey` was given (links and sequence are still checked). */
  HASH_KEY_MISSING: 'hash-key-missing',
  /** error: a chain names a hash algorithm this version does not know. */
  UNKNOWN_ALGORITHM: 'unknown-algorithm',
  /**
   * error: a chain begins with `audit-log-reopened` at a sequence above 1: its head is in an earlier
   * (rotated) file that was not given.
   */
  HEAD_NOT_GIVEN: 'head-not-given',
} as const;

/** One of the codes in {@link VerifyCodes}. */
export type VerifyCode = (typeof VerifyCodes)[keyof typeof VerifyCodes];

/** How bad a finding is; the worst one decides the verdict. */
export type VerifySeverity = 'note' | 'unsealed' | 'tampered' | 'error';

/** The overall result: intact (exit 0), tampered (1), cannot-verify (2), unsealed (3). */
export type Verdict = 'intact' | 'unsealed' | 'tampered' | 'cannot-verify';

/**
 * The severity of every code.
 *
 * @example
 * ```ts
 * VerifySeverities[VerifyCodes.CHAIN_UNSEALED]; // 'unsealed'
 * ```
 */
export const VerifySeverities: Readonly<Record<VerifyCode, VerifySeverity>> = {
  'torn-fragment': 'note',
  'missing-newline': 'note',
  'writer-crashed': 'note',
  'chain-open': 'note',
  'signatures-unchecked': 'note',
  'witness-unchecked': 'note',
  'chains-not-verified': 'note',
  'store-unguarded': 'note',
  'chain-unsealed': 'unsealed',
  'chain-unkeyed': 'unsealed',
  'fragment-unexplained': 'unsealed',
  'hash-mismatch': 'tampered',
  'sequence-gap': 'tampered',
  'sequence-reordered': 'tampered',
  'link-broken': 'tampered',
  'start-missing': 'tampered',
  'entry-after-end': 'tampered',
  'witness-missing': 'tampered',
  'not-an-entry': 'tampered',
  'checkpoint-key': 'tampered',
  'checkpoint-mismatch': 'tampered',
  'checkpoint-continuity': 'tampered',
  'checkpoint-signature': 'tampered',
  'empty-input': 'error',
  unreadable: 'error',
  'hash-key-missing': 'error',
  'unknown-algorithm': 'error',
  'head-not-given': 'error',
};

/** Verdict and exit code for the worst severity found. Precedence: error > tampered > unsealed > note. */
export const VERDICTS = {
  error: { verdict: 'cannot-verify', exitCode: 2 },
  tampered: { verdict: 'tampered', exitCode: 1 },
  unsealed: { verdict: 'unsealed', exitCode: 3 },
  note: { verdict: 'intact', exitCode: 0 },
} as const satisfies Record<VerifySeverity, { verdict: Verdict; exitCode: number }>;

/** Severities from the worst down. */
export const SEVERITY_ORDER: readonly VerifySeverity[] = ['error', 'tampered', 'unsealed', 'note'];

/** One thing verification found. */
export interface VerifyFinding {
  code: VerifyCode;
  severity: VerifySeverity;
  /** One sentence for people. */
  message: string;
  /** The file (or other source, e.g. a table) it was found in. */
  source?: string;
  /** 1-based physical line (or row) within `source`. */
  line?: number;
  /** The chain (writer) it concerns. */
  chain?: string;
  /** The entry's `event.sequence`, when it concerns one entry. */
  sequence?: number;
  /** `chain-unsealed`: entries covered by the chain's last valid signed checkpoint. */
  proven?: number;
  /** `chain-unsealed`: entries after that checkpoint, proven by nothing. */
  unproven?: number;
}
