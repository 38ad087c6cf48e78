// The streaming verification core: fed one physical line at a time from any source (files, a database),
// it keeps per-chain state and a bounded window of recent hashes, never the log itself.

import { createHmac, createPublicKey, hash, type KeyObject, verify } from 'node:crypto';
import { checkOptions, type Known } from '../known-options.js';
import { checkpointPayload, GENESIS, keyFingerprint } from './chain.js';
import { entryPrefix, firstLinePrefix, fits, MARKER, type Names, namesOf, rewrites, shown } from './fragments.js';
import {
  SEVERITY_ORDER,
  VERDICTS,
  type Verdict,
  type VerifyCode,
  VerifyCodes,
  type VerifyFinding,
  VerifySeverities,
  type VerifySeverity,
} from './verify-codes.js';

/** Options of {@link Verifier} and {@link verifyAuditLog}. */
export interface VerifyOptions {
  /** The `hashKey` the log was written with (required for HMAC chains). Default: none. */
  hashKey?: string | Buffer;
  /**
   * The Ed25519 public key of the `signingKey` (KeyObject or PEM; a private key is accepted too). With it
   * every checkpoint signature is checked, and a chain that ends with neither its final checkpoint nor a
   * later writer's witness is `unsealed`. Default: none (checkpoints are not checked).
   */
  publicKey?: KeyObject | string | Buffer;
  /** At most this many findings are kept in `findings` (`findingsTotal` counts all). Default 100. */
  maxFindings?: number;
  /**
   * How many recent entries of the current source are remembered for witness checks (`audit.previous`
   * must name one of them, or the last entry of a chain). Default 10000 (about 1.5 MB).
   */
  witnessWindow?: number;
}

const KNOWN: Known<VerifyOptions> = { hashKey: true, publicKey: true, maxFindings: true, witnessWindow: true };

/** How one chain (one writer's lifetime) ended, in {@link VerifyResult.chainSummaries}. */
export type ChainStatus = 'closed' | 'witnessed' | 'unsealed' | 'open';

/** One chain in {@link VerifyResult.chainSummaries}. */
export interface ChainSummary {
  id: string;
  alg: string;
  /** Where its first entry was read. */
  source: string;
  entries: number;
  firstSequence: number;
  lastSequence: number;
  /**
   * `closed`: ended with `audit-log-stopped` (and, checked with the public key, its final checkpoint);
   * `witnessed`: ended otherwise, but a later writer named its last line; `unsealed`: with the public key,
   * neither; `open`: without the public key, neither.
   */
  status: ChainStatus;
  /** Whether it carries signed checkpoints (or names a signing key at its start). */
  signed: boolean;
  /** Checkpoint signatures verified. */
  checkpoints: number;
  /** With the public key: entries proven (by its signature, or by a signed witness of its last line). */
  proven?: number;
  /** With the public key: entries after its last valid signed checkpoint that nothing proves. */
  unproven?: number;
}

/** What verification found. */
export interface VerifyResult {
  /** `verdict === 'intact'`. */
  ok: boolean;
  verdict: Verdict;
  /** 0 intact, 1 tampered, 2 cannot-verify, 3 unsealed. */
  exitCode: 0 | 1 | 2 | 3;
  /** Whole entries read (all chains, all sources), damaged ones included. */
  entries: number;
  /** Distinct chains (writer lifetimes) seen. */
  chains: number;
  /** Checkpoint signatures verified. */
  checkpoints: number;
  /** Torn fragments skipped. */
  fragments: number;
  /** The first {@link VerifyOptions.maxFindings} findings, worse ones kept over notes. */
  findings: VerifyFinding[];
  /** Findings in all (also those not kept). */
  findingsTotal: number;
  /** Every chain, in order of first appearance. */
  chainSummaries: ChainSummary[];
  /** Source of the first finding of the verdict's severity (tampered, cannot-verify or unsealed). */
  file?: string;
  /** Its 1-based line. */
  firstBadLine?: number;
  /** Its message. */
  reason?: string;
}

/**
 * A parsed audit entry: the JSON object of one whole line, with the members verification relies on typed.
 */
export interface ParsedEntry {
  '@timestamp': string;
  event: { sequence: number; action?: string; category?: string; [member: string]: unknown };
  audit: { chain: string; alg: string; prev: string; hash: string; [member: string]: unknown };
  [member: string]: unknown;
}

/** One whole entry read by {@link Verifier.line}. */
export interface VerifiedEntry {
  /** The parsed line. */
  entry: ParsedEntry;
  /** The entry's exact text (a physical line may hold a torn fragment before it). */
  text: string;
  /**
   * Whether the entry verified so far: its hash recomputed and matched, it follows its chain's previous
   * entry, and (when checked) its checkpoint and witness are valid. A chain's ending is judged only at
   * {@link Verifier.end}, so an entry of an unsealed tail is `ok` here.
   */
  ok: boolean;
}

/** Where a line comes from. */
export interface LineSource {
  /** The file name (or a table name, …): findings name it; witnesses must be in the same source. */
  source: string;
  /** 1-based physical line (or row) number. */
  line: number;
  /**
   * The text is one piece of a physical line that another piece follows (a store that keeps the pieces of a
   * line apart says so; {@link Verifier.line} finds it itself in a whole line).
   */
  glued?: boolean;
}

/** A torn fragment alone on its line, waiting for what explains it (see {@link Verifier.explain}). */
interface Pending {
  text: string;
  source: string;
  line: number;
  /** Its place among every piece read (see `ChainState.lastAt`). */
  at: number;
  /** Bytes of the whole physical line it ends (with the pieces glued before it); 0 for a glued one. */
  lineBytes: number;
}

/**
 * A torn fragment glued before another piece on its line, or a source's last piece: another writer's, cut off
 * mid-write, when some writer could have left it (judged at the end: see judgeUnproven).
 */
interface Unproven extends Pending {
  /** The chain of the whole entry glued after it (undefined: none, or the source's last piece). */
  after: string | undefined;
}

interface ChainState {
  id: string;
  alg: string;
  source: string;
  entries: number;
  firstSeq: number;
  seq: number;
  hash: string;
  prevSignature: string;
  signed: boolean;
  stopped: boolean;
  sealed: boolean;
  /** Its final checkpoint was seen (its signature checked or not): a signed writer's last line. */
  finalSeen: boolean;
  /** It has its per-chain finding (hash key missing, unknown algorithm, unkeyed). */
  flagged: boolean;
  checkpoints: number;
  /** `last_sequence` of its last valid checkpoint. */
  provenSeq: number;
  /** The lines of it later start (or reopen) entries named, and by which chain at which sequence. */
  witnesses: Witness[];
  /** The place of its last entry among every piece read (a fragment after it may be its last, cut write). */
  lastAt: number;
  /** Source and line of its last entry, and the first sequence it had in that source. */
  lastSource: string;
  lastLine: number;
  firstSeqInSource: number;
  /** The highest sequence of it that left the witness window of that source. */
  evictedSeq: number;
}

interface Previous {
  chain: string;
  sequence: number;
  hash: string;
}

/** A start or reopen entry of chain `by`, at sequence `at`, that named line `seq` (hash `hash`) of a chain. */
interface Witness {
  by: ChainState;
  at: number;
  seq: number;
  hash: string;
}

/** Torn fragments waiting to be explained (beyond them, a fragment is a note only). */
const MAX_PENDING = 1000;
/** Names kept of each kind (services, hosts, actions) for judging fragments. */
const MAX_NAMES = 1024;
/** Witnesses kept per chain (a file opened by this many writers after one line is not a crash to explain). */
const MAX_WITNESSES = 64;

const SUFFIX = /,"hash":"([0-9a-f]{64})"\}\}$/;
/** `,"hash":"` + 64 hex + `"}}`. */
const SUFFIX_LENGTH = 76;
const HEX64 = /^[0-9a-f]{64}$/;
/** Where the members the fast path reads begin: the event object, the audit object, the hash. */
const EVENT_AT = '","event":{';
const AUDIT_AT = ',"audit":{"chain":"';
/** `,"audit":` before its `{`. */
const AUDIT_OBJECT = 9;
const HASH_AT = ',"hash":"';

/**
 * Whether a line of `bytes` bytes as read (ending in `text`) can be `torn` bytes in the file: a write cut inside
 * a character reads with one U+FFFD (3 bytes) for the 1–3 bytes of it that were written.
 */
function bytesMatch(bytes: number, text: string, torn: number): boolean {
  if (bytes === torn) return true;
  return text.endsWith('\uFFFD') && torn >= bytes - 2 && torn < bytes;
}

/** JSON.parse of `text.slice(from, to)`, or undefined when that is not JSON. */
function parseSlice(text: string, from: number, to: number): unknown {
  try {
    return JSON.parse(text.slice(from, to));
  } catch {
    return undefined;
  }
}

/**
 * The event object `text.slice(from, to)`: its `action` and `sequence` read in place when they are plain
 * (no escape in the action), else parsed. It holds no nested object, so the first `}` after it opens closes
 * it (a `}` inside a string would leave that string open: the parse fails and the full path decides).
 */
function quickEvent(text: string, from: number, to: number): ParsedEntry['event'] | undefined {
  const a = text.indexOf('"action":"', from);
  const q = a < 0 || a > to ? -1 : text.indexOf('"', a + 10);
  const s = text.lastIndexOf(',"sequence":', to);
  if (q > 0 && q < to && s > q && text.charCodeAt(to - 1) === 0x7d) {
    const action = text.slice(a + 10, q);
    const sequence = Number(text.slice(s + 12, to - 1));
    if (!action.includes('\\') && Number.isSafeInteger(sequence)) return { action, sequence };
  }
  return parseSlice(text, from, to) as ParsedEntry['event'] | undefined;
}

/**
 * The audit object `text.slice(from, to)`. Most lines carry only chain, alg, prev and hash, in that order:
 * those are read in place; any other shape is parsed.
 */
function quickAudit(text: string, from: number, to: number): ParsedEntry['audit'] | undefined {
  const chainEnd = text.indexOf('"', from + 10);
  if (chainEnd > 0 && text.startsWith('","alg":"', chainEnd)) {
    const algEnd = text.indexOf('"', chainEnd + 9);
    const prevAt = algEnd + 10;
    if (
      algEnd > 0 &&
      text.startsWith('","prev":"', algEnd) &&
      prevAt + 64 === to - SUFFIX_LENGTH &&
      text.charCodeAt(prevAt + 64) === 0x22
    ) {
      const chain = text.slice(from + 10, chainEnd);
      const alg = text.slice(chainEnd + 9, algEnd);
      if (!chain.includes('\\') && !alg.includes('\\')) {
        return { chain, alg, prev: text.slice(prevAt, prevAt + 64), hash: text.slice(to - 66, to - 2) };
      }
    }
  }
  return parseSlice(text, from, to) as ParsedEntry['audit'] | undefined;
}

function hasChainMembers(e: ParsedEntry | null | undefined): e is ParsedEntry {
  const audit = e?.audit;
  const seq = e?.event?.sequence;
  return (
    typeof audit === 'object' &&
    audit !== null &&
    typeof audit.chain === 'string' &&
    typeof audit.alg === 'string' &&
    typeof audit.prev === 'string' &&
    Number.isSafeInteger(seq) &&
    (seq as number) >= 1
  );
}

/**
 * A verified entry whose `entry` is parsed in full on first read. A line whose hash verified is what a writer
 * wrote, which is valid JSON; should it not be (a line forged in a plain SHA-256 chain, which anyone can
 * compute), `entry` stays the members verification read. (A class: its getter is shared through the
 * prototype, where an object literal with a getter per line cost a closure and a map each.)
 */
class LazyEntry implements VerifiedEntry {
  private full: ParsedEntry | undefined;
  constructor(
    private readonly members: ParsedEntry,
    readonly text: string,
    readonly ok: boolean,
  ) {}

  get entry(): ParsedEntry {
    if (this.full === undefined) {
      try {
        this.full = JSON.parse(this.text) as ParsedEntry;
      } catch {
        this.full = this.members;
      }
    }
    return this.full;
  }
}
const NONE: readonly VerifiedEntry[] = Object.freeze([]);
const RANK: Record<VerifySeverity, number> = { note: 0, unsealed: 1, tampered: 2, error: 3 };

/**
 * The verification core, fed one physical line at a time — by {@link verifyAuditLog} from files, by other
 * tools from anywhere else. Memory stays bounded whatever the input size: per-chain state, a window of
 * recent hashes of the current source, and at most `maxFindings` findings.
 *
 * Rules: each chain (writer lifetime) must run from sequence 1 without gaps, every entry linked to the one
 * before and its hash recomputed; checkpoints are checked with the public key; a start or reopen entry's
 * `audit.previous` must name a line earlier in the same source. A physical line is split at each
 * `{"@timestamp":"` (a torn fragment with another writer's whole line glued after it); fragments and blank
 * lines are skipped (fragments with a note) and verification goes on past them.
 *
 * Options: `hashKey` (none), `publicKey` (none), `maxFindings` (100), `witnessWindow` (10000); see
 * {@link VerifyOptions}.
 *
 * @example
 * ```ts
 * const v = new Verifier({ publicKey: readFileSync('audit.pub') });
 * let n = 0;
 * for (const text of lines) {
 *   for (const { entry, ok } of v.line(text, { source: 'audit.jsonl', line: ++n })) {
 *     if (entry.user) console.log(ok ? 'verified' : 'DAMAGED', entry['@timestamp']);
 *   }
 * }
 * v.endSource('audit.jsonl', { endsWithNewline: true });
 * const result = v.end(); // result.verdict, result.exitCode, result.findings
 * ```
 */
export class Verifier {
  private readonly hashKey: Buffer | undefined;
  private readonly publicKey: KeyObject | undefined;
  private readonly fingerprint: string | undefined;
  private readonly maxFindings: number;
  private readonly windowSize: number;
  private readonly chains = new Map<string, ChainState>();
  private readonly findings: VerifyFinding[] = [];
  private readonly firstBy = new Map<VerifySeverity, VerifyFinding>();
  private findingsTotal = 0;
  private entries = 0;
  private fragments = 0;
  private checkpoints = 0;
  private anySigned = false;
  private ended = false;
  /** The source being read; its witness window; whether its last piece was a whole entry. */
  private source: string | undefined;
  // Hash → slot of the ring; the slot's chain and sequence in parallel arrays. No object per entry: every
  // entry stays in the window for `witnessWindow` entries, long enough to be promoted to the old generation,
  // and one object each made the garbage collector's work grow with the log (bench/query.mjs).
  private window = new Map<string, number>();
  private ringChain: (ChainState | undefined)[] = [];
  private ringSeq: Float64Array = new Float64Array(0);
  private ring: (string | undefined)[] = [];
  private ringAt = 0;
  private lastWasEntry = false;
  private lastWhere: LineSource | undefined;
  /** Torn fragments of the current source not explained yet, oldest first (at most MAX_PENDING). */
  private pending: Pending[] = [];
  /** The pending fragment the last piece of the current source was, if it was one. */
  private lastFragment: Pending | undefined;
  /** Glued fragments and sources' last pieces, judged at end() (at most MAX_PENDING). */
  private unproven: Unproven[] = [];
  /** A glued fragment whose following piece is next: it learns that entry's chain. */
  private gluedBefore: Unproven | undefined;
  /** Pieces read so far. */
  private pieces = 0;
  /** The names the log's writers use, as JSON text (see fragments.ts); `actionsSeen` holds the actions as read. */
  private readonly services = new Set<string>();
  private readonly hosts = new Set<string>();
  private readonly actions = new Set<string>();
  private readonly actionsSeen = new Set<string>();
  /** The physical line being read, and the bytes of the pieces of it a store gave before it (`glued`). */
  private lineText = '';
  private carried = 0;

  constructor(options: VerifyOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('Verifier: options must be an object');
    // (a mistyped publicKey would check no signature, and call a cut tail intact)
    checkOptions(options, KNOWN, 'Verifier');
    const { hashKey, publicKey, maxFindings = 100, witnessWindow = 10_000 } = options;
    if (hashKey !== undefined && typeof hashKey !== 'string' && !Buffer.isBuffer(hashKey)) {
      throw new TypeError('Verifier: hashKey must be a string or a Buffer');
    }
    if (!Number.isSafeInteger(maxFindings) || maxFindings < 1)
      throw new TypeError('Verifier: maxFindings must be a positive integer');
    if (!Number.isSafeInteger(witnessWindow) || witnessWindow < 1) {
      throw new TypeError('Verifier: witnessWindow must be a positive integer');
    }
    this.hashKey = hashKey === undefined ? undefined : Buffer.from(hashKey);
    this.publicKey = publicKey === undefined ? undefined : toPublicKey(publicKey);
    this.fingerprint = this.publicKey ? keyFingerprint(this.publicKey) : undefined;
    this.maxFindings = maxFindings;
    this.windowSize = witnessWindow;
    this.resetWindow();
  }

  /**
   * Verifies one physical line (without its newline; a trailing `\r` is ignored). Returns the whole entries
   * it held — usually one; none for a blank line, a torn fragment or foreign text; more than one only when
   * lines were glued together — each with its parsed object and whether it verified so far.
   */
  line(text: string, where: LineSource): readonly VerifiedEntry[] {
    if (this.ended) throw new Error('Verifier: line() after end()');
    if (where.source !== this.source) this.beginSource(where.source);
    this.lastWhere = where;
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text === '') return NONE;
    this.lineText = text;
    // Split at every marker: a torn fragment may have another writer's whole line glued after it.
    let at = text.indexOf(MARKER, 1);
    if (at < 0) {
      const glued = where.glued === true;
      const one = this.piece(text, where, glued);
      // (a store's pieces of one line: the next one ends it)
      this.carried = glued ? this.carried + Buffer.byteLength(text) : 0;
      return one === undefined ? NONE : [one];
    }
    const out: VerifiedEntry[] = [];
    let start = 0;
    while (start < text.length) {
      const end = at < 0 ? text.length : at;
      const one = this.piece(text.slice(start, end), where, end < text.length);
      if (one !== undefined) out.push(one);
      start = end;
      at = end < text.length ? text.indexOf(MARKER, end + 1) : -1;
    }
    return out;
  }

  /**
   * Ends a source (a file). `endsWithNewline: false` says its last line had no newline: a whole entry there
   * gets a `missing-newline` note. Optional: starting another source ends the current one.
   */
  endSource(source: string, info: { endsWithNewline?: boolean } = {}): void {
    if (source !== this.source) return;
    if (info.endsWithNewline === false && this.lastWasEntry && this.lastWhere) {
      this.add(VerifyCodes.MISSING_NEWLINE, `${source} ends in a whole entry without its newline`, this.lastWhere);
    }
    // The source's last piece may be a line still being written, or cut by a crash nobody restarted after:
    // judged at end(), when every writer's last entry is known.
    const last = this.lastFragment;
    if (last !== undefined) {
      this.pending = this.pending.filter((p) => p !== last);
      this.unproven.push({ ...last, after: undefined });
    }
    for (const p of this.pending) {
      this.add(
        VerifyCodes.FRAGMENT_UNEXPLAINED,
        `torn fragment of ${Buffer.byteLength(p.text)} bytes that no writer explains (no line after it is that line written again whole, no writer opening the file found it): a writer killed mid-write while others went on writing, or text put there by hand`,
        { source: p.source, line: p.line },
      );
    }
    this.pending = [];
    this.lastFragment = undefined;
    this.source = undefined;
    this.resetWindow();
  }

  /** Reports a source that could not be read (`unreadable`, verdict cannot-verify). */
  unreadable(source: string, err: Error): void {
    this.add(VerifyCodes.UNREADABLE, `${source} cannot be read: ${err.message}`, undefined, { source });
  }

  /** Judges how every chain ended and returns the result. Call once, after the last line. */
  end(): VerifyResult {
    if (this.ended) throw new Error('Verifier: end() called twice');
    if (this.source !== undefined) this.endSource(this.source);
    this.ended = true;
    this.judgeUnproven();
    const summaries: ChainSummary[] = [];
    for (const c of this.chains.values()) summaries.push(this.judge(c));
    if (this.anySigned && !this.publicKey) {
      this.add(
        VerifyCodes.SIGNATURES_UNCHECKED,
        'the log carries signed checkpoints, but no public key was given: signatures and cut tails were not checked',
      );
    }
    if (this.entries === 0) this.add(VerifyCodes.EMPTY_INPUT, 'no audit entry found: an empty log proves nothing');
    let worst: VerifySeverity = 'note';
    for (const s of SEVERITY_ORDER) {
      if (this.firstBy.has(s)) {
        worst = s;
        break;
      }
    }
    const { verdict, exitCode } = VERDICTS[worst];
    const result: VerifyResult = {
      ok: verdict === 'intact',
      verdict,
      exitCode,
      entries: this.entries,
      chains: this.chains.size,
      checkpoints: this.checkpoints,
      fragments: this.fragments,
      findings: this.findings,
      findingsTotal: this.findingsTotal,
      chainSummaries: summaries,
    };
    const first = worst === 'note' ? undefined : this.firstBy.get(worst);
    if (first) {
      result.file = first.source;
      result.firstBadLine = first.line;
      result.reason = first.message;
    }
    return result;
  }

  private beginSource(source: string): void {
    if (this.source !== undefined) this.endSource(this.source);
    this.source = source;
    this.resetWindow();
  }

  private resetWindow(): void {
    this.window = new Map();
    this.ring = new Array(this.windowSize);
    this.ringChain = new Array(this.windowSize);
    this.ringSeq = new Float64Array(this.windowSize);
    this.ringAt = 0;
    this.lastWasEntry = false;
  }

  /** One piece of a physical line: a whole entry, a fragment, or foreign text. */
  private piece(text: string, where: LineSource, glued: boolean): VerifiedEntry | undefined {
    this.lastWasEntry = false;
    this.lastFragment = undefined;
    this.pieces++;
    const before = this.gluedBefore;
    this.gluedBefore = undefined;
    if (!text.startsWith(MARKER)) {
      // Cut inside the marker itself — or zero bytes where a crash left the file longer than what reached the
      // disk (power loss on XFS or ext4 with data=writeback), with or without the start of a line after them.
      if (MARKER.startsWith(text)) return this.fragment(text, where, glued);
      if (MARKER.startsWith(text.replace(/^\0+/, ''))) return this.fragment(text, where, glued, true); // (zeros say nothing)
      this.add(VerifyCodes.NOT_AN_ENTRY, `not an audit entry: ${preview(text)}`, where);
      return undefined;
    }
    const quick = this.quick(text);
    if (quick !== undefined) {
      this.entries++;
      this.lastWasEntry = true;
      const ok = this.check(quick, text, quick.audit.hash, where, true);
      if (before !== undefined) before.after = quick.audit.chain;
      if (this.pending.length > 0 || this.unproven.length > 0) this.explain(text, quick);
      return new LazyEntry(quick, text, ok);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // A proper prefix of a JSON object is never valid JSON, so an entry cut anywhere lands here.
      return this.fragment(text, where, glued);
    }
    const m = SUFFIX.exec(text);
    const entry = parsed as ParsedEntry;
    if (!m || !hasChainMembers(entry)) {
      this.add(VerifyCodes.NOT_AN_ENTRY, 'not an audit entry (no chain members or no hash at the end of the line)', where);
      return undefined;
    }
    this.entries++;
    this.lastWasEntry = true;
    const ok = this.check(entry, text, m[1] as string, where);
    if (before !== undefined) before.after = entry.audit.chain;
    if (this.pending.length > 0 || this.unproven.length > 0) this.explain(text, entry);
    return { entry, text, ok };
  }

  /**
   * A torn fragment is a note, and waits to be explained as a writer leaves one: a write cut short by a full
   * disk is written again whole on a later line (which begins with the fragment's bytes), and a writer that
   * opens a file ending mid-line (a crash) records that in its start or reopen entry (`torn_bytes`); the last
   * piece of a source may be a line still being written, and one glued before another piece on its line
   * another writer's cut off mid-write while this one went on appending: both need a writer that could have
   * left them (see {@link judgeUnproven}). Any other fragment is `fragment-unexplained` (unsealed) at the end
   * of the source.
   */
  private fragment(text: string, where: LineSource, glued: boolean, zeros = false): undefined {
    this.fragments++;
    this.add(VerifyCodes.TORN_FRAGMENT, `torn fragment of ${Buffer.byteLength(text)} bytes skipped (a write cut short)`, where);
    const at = this.pieces;
    if (zeros) return undefined; // what a power loss leaves where data did not reach the disk: it says nothing
    if (glued) {
      if (this.unproven.length < MAX_PENDING) {
        this.gluedBefore = { text, source: where.source, line: where.line, at, lineBytes: 0, after: undefined };
        this.unproven.push(this.gluedBefore);
      }
    } else if (this.pending.length < MAX_PENDING) {
      const lineBytes = this.carried + Buffer.byteLength(this.lineText);
      this.lastFragment = { text, source: where.source, line: where.line, at, lineBytes };
      this.pending.push(this.lastFragment);
    }
    return undefined;
  }

  /**
   * A glued fragment or a source's last piece is a write some writer was cut off in: one that never wrote its
   * last line (`audit-log-stopped`, and its final checkpoint when signing: it crashed, or is writing now),
   * whose last entry came before the fragment, and whose next entry the fragment can be (its sequence and
   * chain, as far as the fragment shows them) — for a glued one, another writer than the one whose entry
   * follows it on the line — or a new writer's first line (its start entry cut short: see fragments.ts).
   * When neither can have left it: `fragment-unexplained` (unsealed).
   */
  private judgeUnproven(): void {
    // (No entry at all: the verdict says so; a fragment adds nothing.)
    if (this.unproven.length === 0 || this.chains.size === 0) return;
    const open: ChainState[] = [];
    for (const c of this.chains.values()) {
      if (!c.stopped || (c.signed && !c.finalSeen)) open.push(c); // (closed: it wrote its last line)
    }
    const names: Names = { services: this.services, hosts: this.hosts, actions: this.actions };
    for (const f of this.unproven) {
      const s = shown(f.text);
      const cutOff = (c: ChainState) =>
        c.lastAt < f.at && c.id !== f.after && fits(s.sequence, String(c.seq + 1)) && fits(s.chain, c.id);
      if ((entryPrefix(f.text, names) && open.some(cutOff)) || firstLinePrefix(f.text, names)) continue;
      this.add(
        VerifyCodes.FRAGMENT_UNEXPLAINED,
        `torn fragment of ${Buffer.byteLength(f.text)} bytes ${f.after === undefined ? 'at the end of the source' : 'glued before an entry'} that no writer explains (no writer that came before it and never wrote its last line can have written it, it is no new writer's first line, and no later line is it written again whole): text put there by hand`,
        { source: f.source, line: f.line },
      );
    }
    this.unproven = [];
  }

  /** Drops the pending fragments that the whole entry `text` explains (see {@link fragment}). */
  private explain(text: string, e: ParsedEntry): void {
    const action = e.event.action;
    const torn = (e.audit as { torn_bytes?: unknown }).torn_bytes;
    if ((action === 'audit-log-started' || action === 'audit-log-reopened') && typeof torn === 'number' && torn > 0) {
      // The fragment this writer found at the end of the file and ended with a newline: the latest one whose
      // line was that long (another writer's pieces may be glued before it on the line); none other.
      for (let k = this.pending.length - 1; k >= 0; k--) {
        const p = this.pending[k] as Pending;
        if (bytesMatch(p.lineBytes, p.text, torn)) {
          this.pending.splice(k, 1);
          break;
        }
      }
    }
    if (this.pending.length > 0) this.pending = this.pending.filter((p) => !rewrites(text, p.text));
    if (this.unproven.length > 0) this.unproven = this.unproven.filter((p) => !rewrites(text, p.text));
  }

  /**
   * The fast path for a line whose hash verifies: only its `event` and `audit` objects are parsed (the rest
   * of the line is parsed when, and if, a caller reads `entry`). Parsing every line whole took 60% of a
   * verification (bench/query.mjs, 1,000,000 entries: 6.2 of 10.3 s CPU). Returns undefined — the caller then
   * takes the full path, with its exact findings — for anything else: a cut or edited line, an HMAC chain
   * without its key, an algorithm this version does not know, members in an unexpected place.
   */
  private quick(text: string): ParsedEntry | undefined {
    const n = text.length;
    if (n < MARKER.length + SUFFIX_LENGTH || !text.startsWith(HASH_AT, n - SUFFIX_LENGTH) || !text.endsWith('"}}'))
      return undefined;
    const claimed = text.slice(n - SUFFIX_LENGTH + HASH_AT.length, n - 3);
    const eventAt = text.indexOf(EVENT_AT, MARKER.length);
    const auditAt = text.lastIndexOf(AUDIT_AT);
    if (eventAt < 0 || auditAt < eventAt) return undefined;
    const eventEnd = text.indexOf('}', eventAt);
    const event = quickEvent(text, eventAt + EVENT_AT.length - 1, eventEnd + 1);
    const audit = quickAudit(text, auditAt + AUDIT_OBJECT, n - 1);
    if (event === undefined || audit === undefined) return undefined;
    const e = { '@timestamp': text.slice(MARKER.length, eventAt), event, audit } as ParsedEntry;
    // (An equal digest is hex: claimed needs no test of its own.)
    if (!hasChainMembers(e) || e.audit.hash !== claimed) return undefined;
    const covered = `${text.slice(0, n - SUFFIX_LENGTH)}}}`;
    let actual: string;
    if (e.audit.alg === 'sha256') actual = hash('sha256', covered, 'hex');
    else if (e.audit.alg === 'hmac-sha256' && this.hashKey)
      actual = createHmac('sha256', this.hashKey).update(covered).digest('hex');
    else return undefined;
    if (actual !== claimed) return undefined;
    // The digest, not the slice of the line: the window of recent hashes would keep every sliced-from line alive
    // (V8 substrings point into their parent), and the garbage collector then copies 10,000 lines around.
    e.audit.hash = actual;
    return e;
  }

  /** Checks one whole entry against its chain; returns whether it is sound. */
  private check(e: ParsedEntry, text: string, claimed: string, where: LineSource, hashChecked = false): boolean {
    const id = e.audit.chain;
    const seq = e.event.sequence;
    const action = e.event.action;
    const at = { chain: id, sequence: seq };
    let state = this.chains.get(id);
    if (!state) {
      state = this.newChain(e, text, where);
      this.chains.set(id, state);
    }
    state.entries++;
    state.lastAt = this.pieces;
    if (typeof action === 'string' && !this.actionsSeen.has(action) && this.actionsSeen.size < MAX_NAMES) {
      this.actionsSeen.add(action);
      const json = namesOf(text).action;
      if (json !== undefined) this.actions.add(json);
    }
    // damaged: a tampered finding at this entry; unverified: its hash could not be recomputed.
    let damaged = false;
    let unverified = false;

    // The hash: over the line without its `,"hash":"…"` member.
    const covered = hashChecked ? '' : `${text.slice(0, text.length - SUFFIX_LENGTH)}}}`;
    const alg = e.audit.alg;
    if (alg === 'sha256') {
      if (!hashChecked && hash('sha256', covered, 'hex') !== claimed) {
        damaged = this.bad(VerifyCodes.HASH_MISMATCH, 'hash mismatch: the entry was edited', where, at);
      } else if (this.hashKey && !state.flagged) {
        state.flagged = true;
        this.add(VerifyCodes.CHAIN_UNKEYED, unkeyed(id), where, at);
      }
    } else if (alg === 'hmac-sha256') {
      if (!this.hashKey) {
        unverified = true;
        if (!state.flagged) {
          state.flagged = true;
          this.add(VerifyCodes.HASH_KEY_MISSING, `HMAC chain ${id}: the hashKey is needed to verify it`, where, at);
        }
      } else if (!hashChecked && createHmac('sha256', this.hashKey).update(covered).digest('hex') !== claimed) {
        damaged = this.bad(
          VerifyCodes.HASH_MISMATCH,
          'hash mismatch: the entry was edited (or the hashKey is not the one it was written with)',
          where,
          at,
        );
      }
    } else {
      unverified = true;
      if (!state.flagged) {
        state.flagged = true;
        this.add(VerifyCodes.UNKNOWN_ALGORITHM, `chain ${id}: unknown hash algorithm ${preview(alg)}`, where, at);
      }
    }

    // Its place in the chain.
    if (state.entries === 1 && (seq !== 1 || e.audit.prev !== GENESIS)) {
      if (action === 'audit-log-reopened' && seq > 1) {
        this.add(
          VerifyCodes.HEAD_NOT_GIVEN,
          `chain ${id} begins at sequence ${seq} with audit-log-reopened: its first ${seq - 1} entries are in an earlier file that was not given (verify rotated files together, oldest first)`,
          where,
          at,
        );
        unverified = true;
      } else
        damaged = this.bad(
          VerifyCodes.START_MISSING,
          `chain ${id} starts at sequence ${seq}: its beginning is missing`,
          where,
          at,
        );
    }
    const isCheckpoint = action === 'audit-checkpoint';
    if (state.sealed || (state.stopped && !isCheckpoint)) {
      damaged = this.bad(VerifyCodes.ENTRY_AFTER_END, `entry after the end of chain ${id}`, where, at);
    }
    if (seq <= state.seq) {
      // A copy or an entry moved back: leave the chain where it was, so the entries after it still link.
      this.bad(
        VerifyCodes.SEQUENCE_REORDERED,
        `sequence ${seq} after ${state.seq} in chain ${id}: entries reordered or duplicated`,
        where,
        at,
      );
      return false;
    }
    if (seq !== state.seq + 1) {
      damaged = this.bad(
        VerifyCodes.SEQUENCE_GAP,
        `sequence jumps from ${state.seq} to ${seq} in chain ${id}: entries removed`,
        where,
        at,
      );
    } else if (e.audit.prev !== state.hash) {
      damaged = this.bad(
        VerifyCodes.LINK_BROKEN,
        `entry does not link to the previous entry of chain ${id}: entries inserted or replaced`,
        where,
        at,
      );
    }

    if (seq === 1 && typeof e.audit.key_fingerprint === 'string') state.signed = true;
    if (isCheckpoint) {
      state.signed = true;
      if ((e.audit as { checkpoint?: { final?: unknown } }).checkpoint?.final === true) state.finalSeen = true;
      if (this.publicKey && !this.checkCheckpoint(state, e, where, at)) damaged = true;
    }
    if (state.signed) this.anySigned = true;
    if (action === 'audit-log-stopped') state.stopped = true;
    if ((action === 'audit-log-started' || action === 'audit-log-reopened') && e.audit.previous !== undefined) {
      if (!this.witness(state, e.audit.previous, where, at)) damaged = true;
    }

    if (state.lastSource !== where.source) {
      state.lastSource = where.source;
      state.firstSeqInSource = seq;
      state.evictedSeq = 0;
    }
    state.seq = seq;
    state.hash = claimed;
    state.lastLine = where.line;
    // Kept for witness checks: the hash string JSON.parse made, not `claimed`, a slice that would keep the
    // whole line alive in the window.
    if (!damaged) this.remember(e.audit.hash === claimed ? e.audit.hash : claimed, state, seq);
    return !damaged && !unverified;
  }

  private newChain(e: ParsedEntry, text: string, where: LineSource): ChainState {
    const seq = e.event.sequence;
    const { service, host } = namesOf(text);
    if (service !== undefined && this.services.size < MAX_NAMES) this.services.add(service);
    if (host !== undefined && this.hosts.size < MAX_NAMES) this.hosts.add(host);
    return {
      id: e.audit.chain,
      alg: e.audit.alg,
      source: where.source,
      entries: 0,
      firstSeq: seq,
      seq: seq - 1,
      hash: e.audit.prev,
      prevSignature: '',
      signed: false,
      stopped: false,
      sealed: false,
      finalSeen: false,
      flagged: false,
      checkpoints: 0,
      provenSeq: 0,
      witnesses: [],
      lastAt: this.pieces,
      lastSource: where.source,
      lastLine: where.line,
      firstSeqInSource: seq,
      evictedSeq: 0,
    };
  }

  private checkCheckpoint(
    state: ChainState,
    e: ParsedEntry,
    where: LineSource,
    at: { chain: string; sequence: number },
  ): boolean {
    const c = (typeof e.audit.checkpoint === 'object' && e.audit.checkpoint !== null ? e.audit.checkpoint : {}) as Record<
      string,
      unknown
    >;
    if (c.key_fingerprint !== this.fingerprint)
      return !this.bad(VerifyCodes.CHECKPOINT_KEY, 'checkpoint signed by another key', where, at);
    if (c.last_sequence !== state.seq || c.last_hash !== state.hash) {
      return !this.bad(VerifyCodes.CHECKPOINT_MISMATCH, 'checkpoint does not match the chain', where, at);
    }
    if (c.prev_signature !== state.prevSignature) {
      return !this.bad(VerifyCodes.CHECKPOINT_CONTINUITY, 'checkpoint does not follow the previous checkpoint', where, at);
    }
    const payload = checkpointPayload(state.id, state.seq, state.hash, state.prevSignature, c.final === true);
    if (
      typeof c.signature !== 'string' ||
      !verify(null, Buffer.from(payload), this.publicKey as KeyObject, Buffer.from(c.signature, 'base64'))
    ) {
      return !this.bad(VerifyCodes.CHECKPOINT_SIGNATURE, 'checkpoint signature invalid', where, at);
    }
    state.prevSignature = c.signature;
    state.provenSeq = state.seq;
    state.checkpoints++;
    this.checkpoints++;
    if (c.final === true) state.sealed = true;
    return true;
  }

  /** A start or reopen entry's `audit.previous` must name a line earlier in the same source. */
  private witness(state: ChainState, previous: unknown, where: LineSource, at: { chain: string; sequence: number }): boolean {
    const p = previous as Previous;
    const named = typeof p === 'object' && p !== null ? p : ({} as Previous);
    if (
      typeof named.chain !== 'string' ||
      !Number.isSafeInteger(named.sequence) ||
      typeof named.hash !== 'string' ||
      !HEX64.test(named.hash)
    ) {
      return !this.bad(
        VerifyCodes.WITNESS_MISSING,
        `the ${at.sequence === 1 ? 'start' : 'reopen'} entry of chain ${state.id} has a malformed audit.previous`,
        where,
        at,
      );
    }
    const witnessed = this.chains.get(named.chain);
    const slot = this.window.get(named.hash);
    const inWindow = slot !== undefined && this.ringChain[slot]?.id === named.chain && this.ringSeq[slot] === named.sequence;
    const isLast =
      witnessed !== undefined &&
      witnessed.lastSource === where.source &&
      witnessed.seq === named.sequence &&
      witnessed.hash === named.hash;
    if (witnessed && (inWindow || isLast)) {
      // Judged at the end (see trusts): whether the naming chain is keyed, and signed as far as this entry.
      if (witnessed.witnesses.length < MAX_WITNESSES)
        witnessed.witnesses.push({ by: state, at: at.sequence, seq: named.sequence, hash: named.hash });
      return true;
    }
    if (
      witnessed !== undefined &&
      witnessed.lastSource === where.source &&
      named.sequence >= witnessed.firstSeqInSource &&
      named.sequence <= witnessed.evictedSeq
    ) {
      // Beyond the window, but the chain passed through that sequence in this source without a gap.
      this.add(
        VerifyCodes.WITNESS_UNCHECKED,
        `chain ${state.id} names line ${named.sequence} of chain ${named.chain}, further back than the witness window: its hash was not compared`,
        where,
        at,
      );
      return true;
    }
    return !this.bad(
      VerifyCodes.WITNESS_MISSING,
      `chain ${state.id} names sequence ${named.sequence} of chain ${named.chain} as the last line of the file when it opened, but no such line precedes it here: lines were removed (a whole writer's chain?)`,
      where,
      at,
    );
  }

  private remember(h: string, chain: ChainState, seq: number): void {
    const at = this.ringAt;
    const old = this.ring[at];
    if (old !== undefined) {
      const gone = this.ringChain[at] as ChainState;
      const goneSeq = this.ringSeq[at] as number;
      if (goneSeq > gone.evictedSeq) gone.evictedSeq = goneSeq;
      this.window.delete(old);
    }
    this.ring[at] = h;
    this.ringChain[at] = chain;
    this.ringSeq[at] = seq;
    this.ringAt = (at + 1) % this.windowSize;
    this.window.set(h, at);
  }

  /** How a chain ended: closed, witnessed, unsealed or open — with a finding for the last three. */
  private judge(c: ChainState): ChainSummary {
    const summary: ChainSummary = {
      id: c.id,
      alg: c.alg,
      source: c.source,
      entries: c.entries,
      firstSequence: c.firstSeq,
      lastSequence: c.seq,
      status: 'closed',
      signed: c.signed,
      checkpoints: c.checkpoints,
    };
    const where = { source: c.lastSource, line: c.lastLine };
    const at = { chain: c.id, sequence: c.seq };
    const closed = this.publicKey ? c.sealed : c.stopped;
    const naming = c.witnesses.filter((w) => w.seq === c.seq && w.hash === c.hash);
    const witnessed = naming.some((w) => this.trusts(w));
    // A later chain named the last line but proves nothing (made up by someone who can write the file?).
    const untrusted =
      !closed && !witnessed && naming.length > 0 ? ` (${whyUntrusted(naming[0] as Witness, this.hashKey !== undefined)})` : '';
    if (closed) summary.status = 'closed';
    else if (witnessed) {
      summary.status = 'witnessed';
      this.add(
        VerifyCodes.WRITER_CRASHED,
        `chain ${c.id} ends at sequence ${c.seq} without ${c.stopped ? 'its final checkpoint' : 'audit-log-stopped'}, and a later writer of the file witnessed that line: its writer stopped without closing (a crash)`,
        where,
        at,
      );
    } else if (this.publicKey) {
      summary.status = 'unsealed';
      const proven = c.provenSeq;
      const unproven = c.seq - proven;
      this.add(
        VerifyCodes.CHAIN_UNSEALED,
        `chain ${c.id} ends at sequence ${c.seq} without a final signed checkpoint: its tail was cut, or its writer crashed (or it continues in a later file not given); its last valid checkpoint proves ${proven} entries, ${unproven} follow unproven${untrusted}`,
        where,
        { ...at, proven, unproven },
      );
    } else {
      summary.status = 'open';
      this.add(
        VerifyCodes.CHAIN_OPEN,
        `chain ${c.id} ends at sequence ${c.seq} without audit-log-stopped: a crash or a cut tail (without a signing key the two cannot be told apart)${untrusted}`,
        where,
        at,
      );
    }
    if (this.publicKey) {
      // A witnessed chain's entries after its last checkpoint are its writer's own only when it is keyed:
      // without the hashKey anyone who can write the file could have appended them before the next writer
      // started (and named them).
      const keyed = c.alg === 'hmac-sha256' && this.hashKey !== undefined;
      const proven = summary.status === 'closed' || (summary.status === 'witnessed' && keyed) ? c.seq : c.provenSeq;
      summary.proven = proven;
      summary.unproven = c.seq - proven;
    }
    return summary;
  }

  /**
   * Whether a witness proves that its chain's writer stopped without closing (a crash): the naming chain must be
   * keyed when a hashKey is given (a plain SHA-256 chain anyone can write) and, with the public key, signed as
   * far as the naming entry (a writer signs a checkpoint right after its start and reopen entries).
   */
  private trusts(w: Witness): boolean {
    if (this.hashKey !== undefined && w.by.alg !== 'hmac-sha256') return false;
    if (this.publicKey !== undefined && w.by.provenSeq < w.at) return false;
    return true;
  }

  /** Records a tampered finding at an entry; returns true, for `damaged = this.bad(…)`. */
  private bad(code: VerifyCode, message: string, where: LineSource, extra: Partial<VerifyFinding>): true {
    this.add(code, message, where, extra);
    return true;
  }

  private add(code: VerifyCode, message: string, where?: LineSource, extra: Partial<VerifyFinding> = {}): void {
    const severity = VerifySeverities[code];
    const f: VerifyFinding = { code, severity, message };
    if (where) {
      f.source = where.source;
      f.line = where.line;
    }
    Object.assign(f, extra);
    this.findingsTotal++;
    if (!this.firstBy.has(severity)) this.firstBy.set(severity, f);
    if (this.findings.length < this.maxFindings) {
      this.findings.push(f);
      return;
    }
    // Full: a worse finding takes the place of the last one of the lowest severity below it.
    if (severity === 'note') return;
    let victim = -1;
    for (let i = this.findings.length - 1; i >= 0; i--) {
      const s = (this.findings[i] as VerifyFinding).severity;
      if (RANK[s] < RANK[severity] && (victim < 0 || RANK[s] < RANK[(this.findings[victim] as VerifyFinding).severity]))
        victim = i;
    }
    if (victim >= 0) {
      this.findings.splice(victim, 1);
      this.findings.push(f);
    }
  }
}

function whyUntrusted(w: Witness, keyed: boolean): string {
  const what = keyed && w.by.alg !== 'hmac-sha256' ? 'a chain without the hashKey' : 'a chain no signed checkpoint covers there';
  return `chain ${w.by.id} names its last line, but is ${what}: that proves nothing`;
}

function unkeyed(id: string): string {
  return `chain ${id} uses plain SHA-256 although a hashKey was given: anyone with write access could have written it`;
}

function preview(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** A KeyObject for an Ed25519 public key given as KeyObject or PEM (a private key gives its public half). */
export function toPublicKey(key: KeyObject | string | Buffer): KeyObject {
  let pub: KeyObject;
  try {
    const k =
      typeof key === 'object' && key !== null && 'asymmetricKeyType' in key ? key : createPublicKey(key as string | Buffer);
    pub = k.type === 'private' ? createPublicKey(k) : k;
  } catch (err) {
    throw new TypeError(`publicKey must be an Ed25519 public key (KeyObject or PEM): ${(err as Error).message}`);
  }
  if (pub.asymmetricKeyType !== 'ed25519') throw new TypeError('publicKey must be an Ed25519 key');
  return pub;
}
