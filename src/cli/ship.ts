// `proxy-protocol-audit ship FILE... --postgres URL [--follow]`: the sidecar that ships audit files.
import { ErrorCodes } from '../protocol/errors.js';
import type { RawLine } from '../store/raw.js';
import { PostgresShipper } from '../store/shipper.js';
import { type Command, last, parseArgs, UsageError } from './args.js';

/** How long a stop (SIGTERM, SIGINT) waits for the last lines to reach PostgreSQL. */
const STOP_TIMEOUT = 10_000;

export const ship: Command = {
  usage: `ship FILE... --postgres URL [--table audit_log] [--follow] [--source NAME]
      Sends audit files to PostgreSQL (rotated files oldest first); resumes where the store says it stopped.
      --follow: keep shipping as the files grow and follow their rotation, until SIGTERM or SIGINT.`,
  async run(args) {
    const { positional: files, options, set } = parseArgs(args, ['--postgres', '--table', '--source'], ['--follow']);
    const url = last(options, '--postgres');
    if (url === undefined) throw new UsageError('ship needs --postgres URL');
    if (files.length === 0) throw new UsageError('ship needs at least one file');
    const source = last(options, '--source');
    if (source !== undefined && files.length > 1) throw new UsageError('--source names one file: give one file with it');
    const follow = set.has('--follow');
    const postgres = { connectionString: url, table: last(options, '--table') ?? 'audit_log' };
    const say = (s: string) => process.stderr.write(`proxy-protocol-audit ship: ${s}\n`);
    const make = (filename: string) => {
      const s = new PostgresShipper({ filename, postgres, follow, ...(source === undefined ? {} : { source }) });
      s.on('outage', (err: Error & { code?: string }) => {
        if (err.code === ErrorCodes.AUDIT_STORE_SCHEMA && !follow) {
          // A one-off run cannot wait for someone to run pg-init; the file is untouched.
          say(`${filename}: ${err.message}`);
          process.exit(1);
        }
        say(`${filename}: PostgreSQL unavailable, lines wait in the file: ${err.message}`);
      });
      s.on('recovered', () => say(`${filename}: PostgreSQL reachable again`));
      s.on('raw', (l: RawLine) =>
        say(
          `${filename}: byte ${l.offset} (${l.length} bytes) stored as it is, not as an entry: ${l.reason}${l.detail === undefined ? '' : ` (${l.detail})`}`,
        ),
      );
      s.on('warning', (err: Error) => say(`${filename}: ${err.message}`));
      return s;
    };
    const summary = (s: PostgresShipper) =>
      `${s.filename}: ${s.stats.inserted} rows inserted, ${s.stats.duplicates} already there, ${s.stats.raw} other pieces stored as they are`;
    if (!follow) {
      // One file after the other, in the order given: a chain that continues into the next file stays in order.
      for (const f of files) {
        const s = make(f).start();
        await s.close(2 ** 31 - 1); // no deadline: it ends when the file is shipped
        process.stdout.write(`${summary(s)}\n`);
      }
      return 0;
    }
    const shippers = files.map((f) => make(f).start());
    const timer = setInterval(() => {
      for (const s of shippers) say(`${s.filename}: ${s.stats.inserted} rows shipped, lag ${s.lag.bytes} bytes (${s.lag.ms} ms)`);
    }, 60_000);
    timer.unref();
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    clearInterval(timer);
    let code = 0;
    for (const s of shippers) {
      try {
        await s.close(STOP_TIMEOUT);
      } catch (err) {
        say((err as Error).message);
        code = 1;
      }
      process.stdout.write(`${summary(s)}\n`);
    }
    return code;
  },
};
