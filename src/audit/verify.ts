// Verification of audit log files: every chain gap-free, linked, unedited; checkpoints signed.
import { createHmac, createPublicKey, hash, type KeyObject, verify } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { checkpointPayload, GENESIS, HASH_SUFFIX_LENGTH, keyFingerprint } from './chain.js';

/** Options of {@link verifyAuditLog}. */
export interface VerifyOptions {
  /** The `hashKey` the log was written with (required for HMAC chains). */
  hashKey?: string | Buffer;
  /**
   * The Ed25519 public key of the `signingKey` (KeyObject or PEM). With it every checkpoint signature is
   * checked and every chain must end with a final checkpoint, so a truncated tail is detected.
   */
  publicKey?: KeyObject | string | Buffer;
}

/** What {@link verifyAuditLog} found. */
export interface VerifyResult {
  ok: boolean;
  /** Entries read (all chains, all files). */
  entries: number;
  /** Distinct writers (processes) seen. */
  chains: number;
  /** Checkpoint signatures verified. */
  checkpoints: number;
  /** 1-based line of the first problem, within `file`. */
  firstBadLine?: number;
  file?: string;
  reason?: string;
}

interface ChainState {
  seq: number;
  hash: string;
  prevSignature: string;
  sealed: boolean;
  file: string;
  line: number;
}

const SUFFIX = /,"hash":"([0-9a-f]{64})"\}\}$/;

/**
 * Verifies one or more audit log files, read in the order given (rotated files oldest first). Each writer's
 * chain is checked independently: sequence without gaps, each entry linked to the one before, each hash
 * recomputed, each checkpoint's signature (with `publicKey`).
 *
 * @example
 * ```ts
 * const r = await verifyAuditLog(['audit.jsonl.1', 'audit.jsonl'], { publicKey: fs.readFileSync('audit.pub') });
 * if (!r.ok) console.error(`${r.file}:${r.firstBadLine}: ${r.reason}`);
 * ```
 */
export async function verifyAuditLog(files: string | string[], options: VerifyOptions = {}): Promise<VerifyResult> {
  const list = typeof files === 'string' ? [files] : files;
  if (list.length === 0) throw new TypeError('verifyAuditLog: no file given');
  const key = options.hashKey === undefined ? undefined : Buffer.from(options.hashKey);
  const pub = options.publicKey === undefined ? undefined : toPublicKey(options.publicKey);
  const fingerprint = pub ? keyFingerprint(pub) : undefined;
  const chains = new Map<string, ChainState>();
  let entries = 0;
  let checkpoints = 0;

  const result = (file: string | undefined, line: number | undefined, reason?: string): VerifyResult => {
    const r: VerifyResult = { ok: reason === undefined, entries, chains: chains.size, checkpoints };
    if (reason !== undefined) {
      r.file = file;
      r.firstBadLine = line;
      r.reason = reason;
    }
    return r;
  };

  for (const file of list) {
    const rl = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
    let n = 0;
    let blankAt = 0;
    try {
      for await (const line of rl) {
        n++;
        if (line === '') {
          blankAt ||= n;
          continue;
        }
        if (blankAt) return result(file, blankAt, 'blank line inside the log (a removed entry?)');
        const bad = checkLine(line);
        if (bad) return result(file, n, bad);
        entries++;
      }
    } finally {
      rl.close();
    }

    function checkLine(line: string): string | undefined {
      const m = SUFFIX.exec(line);
      if (!m) return 'not an audit entry (no hash at the end of the line)';
      let e: {
        event?: { sequence?: unknown; action?: unknown };
        audit?: { chain?: unknown; alg?: unknown; prev?: unknown; checkpoint?: Record<string, unknown> };
      };
      try {
        e = JSON.parse(line);
      } catch {
        return 'not valid JSON';
      }
      const chain = e.audit?.chain;
      const seq = e.event?.sequence;
      const prev = e.audit?.prev;
      const alg = e.audit?.alg;
      if (typeof chain !== 'string' || typeof seq !== 'number' || typeof prev !== 'string') return 'missing chain fields';
      const covered = `${line.slice(0, line.length - HASH_SUFFIX_LENGTH)}}}`;
      let actual: string;
      if (alg === 'sha256') actual = hash('sha256', covered, 'hex');
      else if (alg === 'hmac-sha256') {
        if (!key) return 'HMAC chain: the hashKey is needed to verify it';
        actual = createHmac('sha256', key).update(covered).digest('hex');
      } else return `unknown hash algorithm ${JSON.stringify(alg)}`;
      const h = m[1] as string;
      if (actual !== h) return 'hash mismatch: the entry was edited';
      let state = chains.get(chain);
      if (!state) {
        if (seq !== 1 || prev !== GENESIS) return `chain ${chain} starts at sequence ${seq}: its beginning is missing`;
        state = { seq: 0, hash: GENESIS, prevSignature: '', sealed: false, file, line: n };
        chains.set(chain, state);
      }
      if (state.sealed) return `entry after the final checkpoint of chain ${chain}`;
      if (seq !== state.seq + 1) {
        return seq <= state.seq
          ? `sequence ${seq} after ${state.seq} in chain ${chain}: entries reordered or duplicated`
          : `sequence jumps from ${state.seq} to ${seq} in chain ${chain}: entries removed`;
      }
      if (prev !== state.hash) return `entry does not link to the previous entry of chain ${chain}: entries inserted or replaced`;
      if (e.event?.action === 'audit-checkpoint' && pub) {
        const c = e.audit?.checkpoint ?? {};
        if (c.key_fingerprint !== fingerprint) return 'checkpoint signed by another key';
        if (c.last_sequence !== state.seq || c.last_hash !== state.hash) return 'checkpoint does not match the chain';
        if (c.prev_signature !== state.prevSignature) return 'checkpoint does not follow the previous checkpoint';
        const payload = checkpointPayload(chain, state.seq, state.hash, state.prevSignature, c.final === true);
        if (typeof c.signature !== 'string' || !verify(null, Buffer.from(payload), pub, Buffer.from(c.signature, 'base64'))) {
          return 'checkpoint signature invalid';
        }
        state.prevSignature = c.signature;
        if (c.final === true) state.sealed = true;
        checkpoints++;
      }
      state.seq = seq;
      state.hash = h;
      state.file = file;
      state.line = n;
      return undefined;
    }
  }
  if (pub) {
    for (const [id, s] of chains) {
      if (!s.sealed) {
        return result(
          s.file,
          s.line,
          `chain ${id} ends without a final signed checkpoint: its tail was cut, or its writer never closed`,
        );
      }
    }
  }
  return result(undefined, undefined);
}

function toPublicKey(key: KeyObject | string | Buffer): KeyObject {
  const k = typeof key === 'object' && 'asymmetricKeyType' in key ? key : createPublicKey(key as string | Buffer);
  const pub = k.type === 'private' ? createPublicKey(k) : k;
  if (pub.asymmetricKeyType !== 'ed25519') throw new TypeError('publicKey must be an Ed25519 key');
  return pub;
}
