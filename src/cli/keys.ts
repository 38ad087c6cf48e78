// The keys every reading command takes: --public-key PEM, --hash-key-file FILE | --hash-key-env VAR.
import { readFileSync } from 'node:fs';
import { last, UsageError } from './args.js';

/** The options that name keys. */
export const KEY_FLAGS = ['--public-key', '--hash-key-file', '--hash-key-env'] as const;

/**
 * The keys the options name. A key file's one trailing newline is not part of the key (a file made with
 * `echo` ends in one; a key the writer was given without it would fail every hash and read as tampering);
 * an empty key is refused.
 */
export function readKeys(options: Map<string, string[]>): { publicKey?: string; hashKey?: Buffer } {
  const keys: { publicKey?: string; hashKey?: Buffer } = {};
  const pubFile = last(options, '--public-key');
  if (pubFile !== undefined) {
    keys.publicKey = readFileSync(pubFile, 'utf8');
    // (It works — the public half is derived — but whoever holds it can sign checkpoints of their own.)
    if (/-----BEGIN (?:ENCRYPTED )?PRIVATE KEY-----/.test(keys.publicKey)) {
      process.stderr.write(
        `proxy-protocol-audit: warning: ${pubFile} is a private key: verify needs only the .pub file; whoever holds the private key can sign checkpoints, so keep it on the writers only\n`,
      );
    }
  }
  const hashKey = readHashKey(options, '--hash-key-file', '--hash-key-env');
  if (hashKey !== undefined) keys.hashKey = hashKey;
  return keys;
}

/**
 * The keys of the `--audit-to` log: `--audit-hash-key-file FILE | --audit-hash-key-env VAR` and
 * `--audit-signing-key PEM` (the private key), read as the reading keys are.
 */
export function readAuditKeys(options: Map<string, string[]>): { hashKey?: Buffer; signingKey?: string } {
  const keys: { hashKey?: Buffer; signingKey?: string } = {};
  const signing = last(options, '--audit-signing-key');
  if (signing !== undefined) keys.signingKey = readFileSync(signing, 'utf8');
  const hashKey = readHashKey(options, '--audit-hash-key-file', '--audit-hash-key-env');
  if (hashKey !== undefined) keys.hashKey = hashKey;
  return keys;
}

function readHashKey(options: Map<string, string[]>, fileFlag: string, envFlag: string): Buffer | undefined {
  const keyFile = last(options, fileFlag);
  const keyEnv = last(options, envFlag);
  let key: Buffer | undefined;
  if (keyFile !== undefined) {
    key = readFileSync(keyFile);
    const end = key.length > 1 && key[key.length - 2] === 0x0d && key[key.length - 1] === 0x0a ? 2 : key.at(-1) === 0x0a ? 1 : 0;
    key = key.subarray(0, key.length - end);
  } else if (keyEnv !== undefined) {
    const v = process.env[keyEnv];
    if (v === undefined) throw new UsageError(`environment variable ${keyEnv} is not set`);
    key = Buffer.from(v);
  }
  if (key !== undefined && key.length === 0) throw new UsageError('the hash key is empty');
  return key;
}
