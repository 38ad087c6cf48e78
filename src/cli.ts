#!/usr/bin/env node
// proxy-protocol-audit: command-line tools for auditors and operators.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { verifyAuditLog } from './audit/verify.js';

const USAGE = `Usage:
  proxy-protocol-audit verify FILE... [--public-key PEM] [--hash-key-file FILE | --hash-key-env VAR] [--json]
      Checks audit log files (rotated files oldest first). Exit 0: intact. Exit 1: tampered. Exit 2: error.
  proxy-protocol-audit keygen PREFIX
      Writes an Ed25519 key pair for signed checkpoints: PREFIX.key (private, mode 0600) and PREFIX.pub.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'verify') {
    const files: string[] = [];
    let publicKey: string | undefined;
    let hashKey: Buffer | undefined;
    let json = false;
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i] as string;
      const value = () => {
        const v = rest[++i];
        if (v === undefined) throw new UsageError(`${a} needs a value`);
        return v;
      };
      if (a === '--public-key') publicKey = readFileSync(value(), 'utf8');
      else if (a === '--hash-key-file') hashKey = readFileSync(value());
      else if (a === '--hash-key-env') {
        const name = value();
        const v = process.env[name];
        if (v === undefined) throw new UsageError(`environment variable ${name} is not set`);
        hashKey = Buffer.from(v);
      } else if (a === '--json') json = true;
      else if (a.startsWith('--')) throw new UsageError(`unknown option ${a}`);
      else files.push(a);
    }
    if (files.length === 0) throw new UsageError('verify needs at least one file');
    const r = await verifyAuditLog(files, { publicKey, hashKey });
    if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else if (r.ok) {
      process.stdout.write(
        `INTACT: ${r.entries} entries in ${r.chains} chain${r.chains === 1 ? '' : 's'}` +
          `${publicKey ? `, ${r.checkpoints} signed checkpoints verified, every chain sealed` : ' (hashes and links checked; pass --public-key to check signatures and truncation)'}\n`,
      );
    } else {
      process.stdout.write(`TAMPERED: ${r.file}:${r.firstBadLine}: ${r.reason}\n(${r.entries} entries were intact before it)\n`);
    }
    return r.ok ? 0 : 1;
  }
  if (command === 'keygen') {
    const prefix = rest[0];
    if (!prefix) throw new UsageError('keygen needs a file prefix');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(`${prefix}.key`, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    writeFileSync(`${prefix}.pub`, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx' });
    process.stdout.write(
      `wrote ${prefix}.key (keep it secret, give it to createAuditLog as signingKey) and ${prefix}.pub (for verify)\n`,
    );
    return 0;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  throw new UsageError(`unknown command ${command}`);
}

class UsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`proxy-protocol-audit: ${err.message}\n${err instanceof UsageError ? USAGE : ''}`);
    process.exitCode = 2;
  },
);
