#!/usr/bin/env node
// proxy-protocol-audit: command-line tools for auditors and operators. One file per command; this one
// only dispatches.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, UsageError } from './args.js';
import { keygen } from './keygen.js';
import { pgInit } from './pg-init.js';
import { query } from './query.js';
import { report } from './report.js';
import { ship } from './ship.js';
import { verify } from './verify.js';

const COMMANDS: Record<string, Command> = { verify, query, report, keygen, ship, 'pg-init': pgInit };

function usage(): string {
  return `Usage:\n${Object.values(COMMANDS)
    .map((c) => `  proxy-protocol-audit ${c.usage}\n`)
    .join('')}`;
}

/** The package's version, from its package.json (two directories up from dist/cjs/cli and build/src/cli). */
function version(): string {
  for (const up of ['../../../package.json', '../../package.json']) {
    try {
      const p = JSON.parse(readFileSync(join(__dirname, up), 'utf8')) as { name?: string; version?: string };
      if (p.name === 'proxy-protocol-audit' && typeof p.version === 'string') return p.version;
    } catch {}
  }
  return 'unknown';
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw new UsageError(`unknown command ${name}`);
  if (rest.includes('--help')) {
    process.stdout.write(`Usage:\n  proxy-protocol-audit ${command.usage}\n`);
    return 0;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`proxy-protocol-audit: ${err.message}\n${err instanceof UsageError ? usage() : ''}`);
    process.exitCode = 2;
  },
);
