// The tamper-evidence of the audit log: a per-writer hash chain and Ed25519-signed checkpoints.
import { createHash, createHmac, createPrivateKey, createPublicKey, hash, type KeyObject, randomUUID, sign } from 'node:crypto';
import { Entry, serializeEntry } from './entry.js';
import { ascii, type LineBuffer } from './line-buffer.js';

const QUOTE = 0x22;
const COMMA = 0x2c;
const END = ascii('}}');
const HASH = ascii(',"hash":"');

/** 64 zeros: the `prev` of the first entry of every chain. */
export const GENESIS = '0'.repeat(64);
/** `,"hash":"` + 64 hex digits + `"}}`: how every line ends. */
export const HASH_SUFFIX_LENGTH = 9 + 64 + 3;

/** What a checkpoint signature covers. Verifiers rebuild exactly this text. */
export function checkpointPayload(
  chain: string,
  lastSequence: number,
  lastHash: string,
  prevSignature: string,
  final: boolean,
): string {
  return `proxy-protocol-audit checkpoint v1\n${chain}\n${lastSequence}\n${lastHash}\n${prevSignature}\n${final}`;
}

/** SHA-256 of the DER SubjectPublicKeyInfo, hex: names the key in every checkpoint. */
export function keyFingerprint(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

export function toPrivateKey(key: KeyObject | string | Buffer): KeyObject {
  let k: KeyObject;
  try {
    k = typeof key === 'object' && key !== null && 'asymmetricKeyType' in key ? key : createPrivateKey(key as string | Buffer);
  } catch (err) {
    throw new TypeError(`signingKey must be an Ed25519 private key (KeyObject or PEM): ${(err as Error).message}`);
  }
  if (k.type !== 'private' || k.asymmetricKeyType !== 'ed25519') throw new TypeError('signingKey must be an Ed25519 private key');
  return k;
}

/** One of the log's own entries (`event.kind: "state"`, category `configuration`) with its `audit.*` members. */
export function ownEntry(
  action: string,
  audit: Record<string, unknown> | undefined,
  outcome: Entry['outcome'] = 'success',
): Entry {
  const e = new Entry();
  e.timestamp = Date.now();
  e.kind = 'state';
  e.category = 'configuration';
  e.action = action;
  e.outcome = outcome;
  e.audit = audit;
  return e;
}

/** One writer's chain: assigns sequence numbers and links every entry to the one before. */
export class Chain {
  readonly id = randomUUID();
  /** Last assigned sequence number. */
  sequence = 0;
  lastHash = GENESIS;
  /** The members every line repeats: service, host, chain id, algorithm, up to `"prev":"`. */
  private readonly tail: Uint8Array;
  private readonly hashKey: Buffer | undefined;
  private readonly signingKey: KeyObject | undefined;
  readonly fingerprint: string | undefined;
  private prevSignature = '';
  /** Entries since the last checkpoint. */
  sinceCheckpoint = 0;

  constructor(options: { hashKey?: string | Buffer; signingKey?: KeyObject; service: string; host: string }) {
    this.hashKey = options.hashKey === undefined ? undefined : Buffer.from(options.hashKey);
    this.signingKey = options.signingKey;
    this.fingerprint = this.signingKey ? keyFingerprint(this.signingKey) : undefined;
    const alg = this.hashKey ? 'hmac-sha256' : 'sha256';
    this.tail = Buffer.from(
      `,"service":{"name":${JSON.stringify(options.service)}},"host":{"name":${JSON.stringify(options.host)}},"audit":{"chain":"${this.id}","alg":"${alg}","prev":"`,
    );
  }

  /**
   * Seals an entry: gives it the next sequence number and appends its complete line, without newline, to
   * `out`. The hash is computed over the bytes in place: the line up to its `audit` members, then
   * `"prev":"<previous hash>"` and the log's own members, closed with `}}`; the line then ends with
   * `,"hash":"<hash>"}}`. `fill`: keep a generated request id in the entry (for whoever reads it after).
   */
  seal(e: Entry, out: LineBuffer, fill = true): void {
    e.sequence = this.sequence + 1;
    const start = out.pos;
    serializeEntry(e, out, fill);
    out.raw(this.tail);
    out.ascii(this.lastHash);
    out.byte(QUOTE);
    if (e.audit !== undefined) {
      for (const [k, v] of Object.entries(e.audit)) {
        out.byte(COMMA);
        out.utf8(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
      }
    }
    out.raw(END);
    this.sequence = e.sequence;
    const covered = out.buf.subarray(start, out.pos);
    const h = this.hashKey ? createHmac('sha256', this.hashKey).update(covered).digest('hex') : hash('sha256', covered, 'hex');
    this.lastHash = h;
    // A checkpoint covers everything before it; the count starts again after it.
    this.sinceCheckpoint = e.action === 'audit-checkpoint' ? 0 : this.sinceCheckpoint + 1;
    out.pos -= END.length;
    out.raw(HASH);
    out.ascii(h);
    out.byte(QUOTE);
    out.raw(END);
  }

  /** Whether checkpoints are signed at all. */
  get signing(): boolean {
    return this.signingKey !== undefined;
  }

  /** A signed checkpoint over everything sealed so far; it is then sealed like any entry. */
  checkpoint(final: boolean): Entry {
    if (!this.signingKey) throw new Error('no signing key');
    const payload = checkpointPayload(this.id, this.sequence, this.lastHash, this.prevSignature, final);
    const signature = sign(null, Buffer.from(payload), this.signingKey).toString('base64');
    const e = ownEntry('audit-checkpoint', {
      checkpoint: {
        last_sequence: this.sequence,
        last_hash: this.lastHash,
        prev_signature: this.prevSignature,
        key_fingerprint: this.fingerprint,
        final,
        signature,
      },
    });
    this.prevSignature = signature;
    return e;
  }
}
