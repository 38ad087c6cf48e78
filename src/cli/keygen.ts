// `proxy-protocol-audit keygen PREFIX`: an Ed25519 key pair for signed checkpoints.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Command, parseArgs, UsageError } from './args.js';

export const keygen: Command = {
  usage: `keygen PREFIX
      Writes an Ed25519 key pair for signed checkpoints: PREFIX.key (private, mode 0600) and PREFIX.pub.
      Never overwrites: either file already there is an error, and then neither is written.`,
  async run(args) {
    const { positional } = parseArgs(args, []);
    const prefix = positional[0];
    if (!prefix || positional.length > 1) throw new UsageError('keygen needs one file prefix');
    if (prefix.endsWith('/') || statSync(prefix, { throwIfNoEntry: false })?.isDirectory()) {
      throw new Error(
        `keygen: ${prefix} is a directory: give a file prefix in it (${join(prefix, 'audit')} writes audit.key and audit.pub)`,
      );
    }
    const dir = dirname(prefix);
    if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`keygen: no directory ${dir}`);
    const key = `${prefix}.key`;
    const pub = `${prefix}.pub`;
    for (const file of [key, pub]) if (existsSync(file)) throw new Error(`keygen: ${file} exists (not overwritten)`);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    try {
      writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx' });
    } catch (err) {
      // a pair or nothing: a private key without its public half would only be deleted by hand later
      unlinkSync(key);
      throw new Error(`keygen: cannot write ${pub}: ${(err as Error).message}`);
    }
    process.stdout.write(`wrote ${key} (keep it secret, give it to createAuditLog as signingKey) and ${pub} (for verify)\n`);
    return 0;
  },
};
