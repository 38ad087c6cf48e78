// `proxy-protocol-audit pg-init --postgres URL`: creates (or completes) the audit table in PostgreSQL.
import { pgInit as init } from '../store/schema.js';
import { type Command, last, parseArgs, UsageError } from './args.js';

export const pgInit: Command = {
  usage: `pg-init --postgres URL [--table audit_log] [--app-role ROLE]
      Creates the audit table (monthly partitions, indexes, append-only triggers); safe to run again.
      --app-role: the role the application ships as (INSERT and SELECT only, never UPDATE or DELETE).`,
  async run(args) {
    const { positional, options } = parseArgs(args, ['--postgres', '--table', '--app-role']);
    if (positional.length > 0) throw new UsageError(`pg-init takes no file (${positional[0]})`);
    const url = last(options, '--postgres');
    if (url === undefined) throw new UsageError('pg-init needs --postgres URL');
    const r = await init({
      postgres: { connectionString: url, table: last(options, '--table') ?? 'audit_log' },
      appRole: last(options, '--app-role'),
    });
    process.stdout.write(`${r.table} ready: ${r.partitions.length} partitions (${r.partitions.join(', ')})\n`);
    return 0;
  },
};
