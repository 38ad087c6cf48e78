// `proxy-protocol-audit ship FILE... --postgres URL [--follow]`: the sidecar that ships audit files.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { ErrorCodes } from '../protocol/errors.js';
import { orderFiles } from '../query/sources.js';
import type { RawLine } from '../store/raw.js';
import { PostgresShipper } from '../store/shipper.js';
import { type Command, last, parseArgs, UsageError } from './args.js';

/** How long a stop (SIGTERM, SIGINT) waits for the last lines to reach PostgreSQL. */
const STOP_TIMEOUT = 10_000;

export const ship: Command = {
  usage: `ship FILE... --postgres URL [--table audit_log] [--follow] [--source NAME]
      Sends audit files to PostgreSQL (rotated files oldest first, in any order given; not gzip-compressed
      files); resumes where the store says it stopped.
      --follow: keep shipping as the files grow and follow their rotation, until SIGTERM or SIGINT.`,
  async run(args) {
    const { positional: given, options, set } = parseArgs(args, ['--postgres', '--table', '--source'], ['--follow']);
    const url = last(options, '--postgres');
    if (url === undefined) throw new UsageError('ship needs --postgres URL');
    if (given.length === 0) throw new UsageError('ship needs at least one file');
    // Rotated files oldest first, whatever order they are named in (as verify reads them): an older file's
    // lines then never wait behind a newer one's, and the store's ids follow the files' order.
    const files = orderFiles([...new Set(given)]);
    const follow = set.has('--follow');
    for (const f of files) checkShippable(f, follow);
    const source = last(options, '--source');
    if (source !== undefined && files.length > 1) throw new UsageError('--source names one file: give one file with it');
    const postgres = { connectionString: url, table: last(options, '--table') ?? 'audit_log' };
    const say = (s: string) => process.stderr.write(`proxy-protocol-audit ship: ${s}\n`);
    const make = (filename: string) => {
      const s = new PostgresShipper({ filename, postgres, follow, ...(source === undefined ? {} : { source }) });
      s.on('outage', (err: Error & { code?: string }) => {
        if (
          !follow &&
          (err.code === ErrorCodes.AUDIT_STORE_SCHEMA || err.code === ErrorCodes.AUDIT_STORE_ACCESS || unreadable(err.cause))
        ) {
          // A one-off run cannot wait for someone to run pg-init, fix a password or grant a right; the file
          // is untouched, and the next run resumes where the store says it stopped.
          say(`${filename}: ${err.message}`);
          process.exit(1);
        }
        say(`${filename}: lines wait in the file: ${err.message}`);
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
      // One file after the other, oldest first: a chain that continues into the next file stays in order.
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

/**
 * Whether an outage's cause is a file the shipper may not read (EACCES, EISDIR): no retry clears it either.
 * (PostgreSQL's lasting refusals come as ERR_PROXY_AUDIT_STORE_ACCESS, mapped in src/store/pg-errors.ts.)
 */
function unreadable(cause: unknown): boolean {
  const code = (cause as { code?: unknown } | undefined)?.code;
  return code === 'EACCES' || code === 'EISDIR';
}

/**
 * Refuses, before anything is sent, a file the shipper cannot ship as the writer wrote it: a name that is not
 * a regular file (a typo must not end as "0 rows inserted"; with --follow a missing file is waited for), or a gzip-compressed file (its bytes are not
 * lines; stored as they are, they would stand in the append-only store as damage for good).
 */
function checkShippable(file: string, follow: boolean): void {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(file);
  } catch (err) {
    // Following, a live file that is not there yet (before the app's first entry, or between a rotation's
    // rename and the next entry) is waited for, as the shipper does whenever it is gone.
    if (follow && (err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new Error(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (!st.isFile()) throw new Error(`${file}: not a regular file`);
  const magic = Buffer.alloc(2);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, magic, 0, 2, 0);
  } finally {
    closeSync(fd);
  }
  if (magic[0] === 0x1f && magic[1] === 0x8b) {
    throw new Error(
      `${file}: gzip-compressed; ship files before they are compressed (or decompress it first: zcat ${file} > ${file.replace(/\.gz$/, '')})`,
    );
  }
}
