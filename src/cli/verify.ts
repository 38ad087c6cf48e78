// `proxy-protocol-audit verify FILE...`: checks audit log files.
import { readFileSync } from 'node:fs';
import { verifyAuditLog } from '../audit/verify.js';
import { type Command, last, parseArgs, UsageError } from './args.js';

export const verify: Command = {
  usage: `verify FILE... [--public-key PEM] [--hash-key-file FILE | --hash-key-env VAR] [--json]
      Checks audit log files (rotated files oldest first). Exit 0: intact. Exit 1: tampered. Exit 2: error.`,
  async run(args) {
    const {
      positional: files,
      options,
      set,
    } = parseArgs(args, ['--public-key', '--hash-key-file', '--hash-key-env'], ['--json']);
    const pubFile = last(options, '--public-key');
    const publicKey = pubFile === undefined ? undefined : readFileSync(pubFile, 'utf8');
    let hashKey: Buffer | undefined;
    const keyFile = last(options, '--hash-key-file');
    const keyEnv = last(options, '--hash-key-env');
    if (keyFile !== undefined) hashKey = readFileSync(keyFile);
    else if (keyEnv !== undefined) {
      const v = process.env[keyEnv];
      if (v === undefined) throw new UsageError(`environment variable ${keyEnv} is not set`);
      hashKey = Buffer.from(v);
    }
    if (files.length === 0) throw new UsageError('verify needs at least one file');
    const r = await verifyAuditLog(files, { publicKey, hashKey });
    if (set.has('--json')) process.stdout.write(`${JSON.stringify(r)}\n`);
    else if (r.ok) {
      process.stdout.write(
        `INTACT: ${r.entries} entries in ${r.chains} chain${r.chains === 1 ? '' : 's'}` +
          `${publicKey ? `, ${r.checkpoints} signed checkpoints verified, every chain sealed` : ' (hashes and links checked; pass --public-key to check signatures and truncation)'}\n`,
      );
    } else {
      process.stdout.write(`TAMPERED: ${r.file}:${r.firstBadLine}: ${r.reason}\n(${r.entries} entries were intact before it)\n`);
    }
    return r.ok ? 0 : 1;
  },
};
