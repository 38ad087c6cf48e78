// `proxy-protocol-audit keygen PREFIX`: an Ed25519 key pair for signed checkpoints.
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { type Command, parseArgs, UsageError } from './args.js';

export const keygen: Command = {
  usage: `keygen PREFIX
      Writes an Ed25519 key pair for signed checkpoints: PREFIX.key (private, mode 0600) and PREFIX.pub.`,
  async run(args) {
    const { positional } = parseArgs(args, []);
    const prefix = positional[0];
    if (!prefix || positional.length > 1) throw new UsageError('keygen needs one file prefix');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(`${prefix}.key`, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    writeFileSync(`${prefix}.pub`, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx' });
    process.stdout.write(
      `wrote ${prefix}.key (keep it secret, give it to createAuditLog as signingKey) and ${prefix}.pub (for verify)\n`,
    );
    return 0;
  },
};
