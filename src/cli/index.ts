#!/usr/bin/env node
// proxy-protocol-audit: command-line tools for auditors and operators. One file per command; this one
// only dispatches.
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

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw new UsageError(`unknown command ${name}`);
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
