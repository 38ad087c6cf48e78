// Builds audit lines from scratch, per the line format (not through the writer): hash = SHA-256 (HMAC-SHA256
// with a hashKey) of the line without its `,"hash":"…"` member; checkpoints signed over checkpointPayload.
import { createHash, createHmac, createPublicKey, type KeyObject, randomUUID, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpFile } from './util.js';

const GENESIS = '0'.repeat(64);

export interface Tip {
  chain: string;
  sequence: number;
  hash: string;
}

export interface ChainOptions {
  hashKey?: string;
  signingKey?: KeyObject;
  id?: string;
  service?: string;
}

/** One writer's chain: every method returns the next whole line (without newline). */
export class TestChain {
  readonly id: string;
  sequence = 0;
  lastHash = GENESIS;
  private prevSignature = '';
  private readonly hashKey: string | undefined;
  private readonly signingKey: KeyObject | undefined;
  private readonly service: string;

  constructor(options: ChainOptions = {}) {
    this.id = options.id ?? randomUUID();
    this.hashKey = options.hashKey;
    this.signingKey = options.signingKey;
    this.service = options.service ?? 'test';
  }

  /** Where this chain stands: what a later writer's `previous` names. */
  get tip(): Tip {
    return { chain: this.id, sequence: this.sequence, hash: this.lastHash };
  }

  /** An entry with the given action and extra `audit` members (JSON text without braces). */
  entry(action: string, category = 'web', extra?: string, body = ''): string {
    const seq = ++this.sequence;
    const alg = this.hashKey ? 'hmac-sha256' : 'sha256';
    const covered =
      `{"@timestamp":"2026-03-01T10:00:00.${String(seq % 1000).padStart(3, '0')}Z","event":{"kind":"${category === 'configuration' ? 'state' : 'event'}","category":"${category}","action":"${action}","outcome":"success","sequence":${seq}}${body}` +
      `,"service":{"name":"${this.service}"},"host":{"name":"h1"},"audit":{"chain":"${this.id}","alg":"${alg}","prev":"${this.lastHash}"${extra ? `,${extra}` : ''}}}`;
    const h = this.hashKey
      ? createHmac('sha256', this.hashKey).update(covered).digest('hex')
      : createHash('sha256').update(covered).digest('hex');
    this.lastHash = h;
    return `${covered.slice(0, -2)},"hash":"${h}"}}`;
  }

  start(previous?: Tip, tornBytes?: number): string {
    return this.entry('audit-log-started', 'configuration', this.startExtra(previous, tornBytes));
  }

  reopen(previous?: Tip, tornBytes?: number): string {
    return this.entry('audit-log-reopened', 'configuration', this.startExtra(previous, tornBytes));
  }

  request(path: string, user = 'dr-grey'): string {
    return this.entry('http-request', 'web', undefined, `,"url":{"path":${JSON.stringify(path)}},"user":{"id":"${user}"}`);
  }

  checkpoint(final = false): string {
    if (!this.signingKey) throw new Error('no signing key');
    const payload = `proxy-protocol-audit checkpoint v1\n${this.id}\n${this.sequence}\n${this.lastHash}\n${this.prevSignature}\n${final}`;
    const signature = sign(null, Buffer.from(payload), this.signingKey).toString('base64');
    const extra = `"checkpoint":{"last_sequence":${this.sequence},"last_hash":"${this.lastHash}","prev_signature":"${this.prevSignature}","key_fingerprint":"${fingerprint(this.signingKey)}","final":${final},"signature":"${signature}"}`;
    this.prevSignature = signature;
    return this.entry('audit-checkpoint', 'configuration', extra);
  }

  /** `audit-log-stopped`, then the final checkpoint when signing: the lines of a clean close. */
  stop(): string[] {
    const stopped = this.entry('audit-log-stopped', 'configuration', '"dropped":0');
    return this.signingKey ? [stopped, this.checkpoint(true)] : [stopped];
  }

  /** A whole life: start, `n` requests (a checkpoint every `every` entries when signing), clean stop. */
  life(n: number, every = 5, previous?: Tip): string[] {
    const out = [this.start(previous)];
    for (let i = 0; i < n; i++) {
      out.push(this.request(`/r/${i}`));
      if (this.signingKey && (i + 1) % every === 0) out.push(this.checkpoint(false));
    }
    return [...out, ...this.stop()];
  }

  private startExtra(previous?: Tip, tornBytes?: number): string {
    let s = `"pid":1234`;
    if (this.signingKey) s += `,"key_fingerprint":"${fingerprint(this.signingKey)}"`;
    if (previous) s += `,"previous":{"chain":"${previous.chain}","sequence":${previous.sequence},"hash":"${previous.hash}"}`;
    if (tornBytes !== undefined) s += `,"torn_bytes":${tornBytes}`;
    return s;
  }
}

export function fingerprint(key: KeyObject): string {
  return createHash('sha256')
    .update(createPublicKey(key).export({ type: 'spki', format: 'der' }))
    .digest('hex');
}

/** Writes `text` to a fresh temp file and returns its name. */
export function logFile(text: string | Buffer, name?: string): string {
  const f = tmpFile(name);
  writeFileSync(f, text);
  return f;
}

/** Lines joined, each ending with a newline. */
export function joined(lines: string[]): string {
  return lines.map((l) => `${l}\n`).join('');
}
