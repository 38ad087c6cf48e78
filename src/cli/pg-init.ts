// `proxy-protocol-audit pg-init --postgres URL`: creates (or completes) the audit table in PostgreSQL.
import { pgInit as init } from '../store/schema.js';
import { type Command, last, parseArgs, UsageError } from './args.js';

export const pgInit: Command = {
  usage: `pg-init --postgres URL [--table audit_log] [--app-role ROLE]
      Creates the audit table (monthly partitions, indexes, append-only triggers); safe to run again, and
      puts back any append-only trigger found dropped, disabled or changed (listed on stderr).
      --app-role: the role the application ships as (INSERT and SELECT only, never UPDATE or DELETE).
      Exit 0 done, 1 PostgreSQL refused or could not be reached (the message says what to fix), 2 usage.`,
  async run(args) {
    const { positional, options } = parseArgs(args, ['--postgres', '--table', '--app-role']);
    if (positional.length > 0) throw new UsageError(`pg-init takes no file (${positional[0]})`);
    const url = last(options, '--postgres');
    if (url === undefined) throw new UsageError('pg-init needs --postgres URL');
    let r: Awaited<ReturnType<typeof init>>;
    try {
      r = await init({
        postgres: { connectionString: url, table: last(options, '--table') ?? 'audit_log' },
        appRole: last(options, '--app-role'),
      });
    } catch (err) {
      if (err instanceof TypeError) throw new UsageError(err.message);
      // Mapped by pgInit (ERR_PROXY_AUDIT_STORE_ACCESS, _UNAVAILABLE, _SCHEMA): the message says what to do.
      process.stderr.write(`proxy-protocol-audit pg-init: ${(err as Error).message}\n`);
      return 1;
    }
    for (const line of r.repaired) process.stderr.write(`proxy-protocol-audit pg-init: append-only guard put back: ${line}\n`);
    process.stdout.write(`${r.table} ready: ${r.partitions.length} partitions (${r.partitions.join(', ')})\n`);
    return 0;
  },
};
