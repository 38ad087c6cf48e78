// What the file holds besides entries — foreign text, torn fragments, zero bytes, edits — reaches the store as
// evidence, and verification from the store gives the verdict and findings verification of the file gives.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import {
  createAuditLog,
  ErrorCodes,
  PostgresShipper,
  pgInit,
  type RawLine,
  RawReasons,
  type VerifyResult,
  verifyAuditLog,
} from '../../src/index.js';
import { sleep, tempDir } from '../helpers.js';
import { insertAfter, linesOf, writeLines, writeLog } from './log-files.js';
import { needsPostgres, startPostgres, type TestPostgres } from './postgres.js';

const execFileP = promisify(execFile);
const CLI = join(__dirname, '../../src/cli/index.js');

let tables = 0;
const freshTable = () => `e${process.pid}_${++tables}`;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [CLI, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** The finding codes of a result, in order. */
const codes = (r: VerifyResult) => r.findings.map((f) => f.code);

interface Damage {
  name: string;
  /** Lines per batch of the shipper (default 5000: the whole file in one batch). */
  batchSize?: number;
  /** Damages the closed log of 10 request entries in `file` (which may also reopen it, as after a crash). */
  damage: (file: string) => void | Promise<void>;
  verdict: VerifyResult['verdict'];
  /** The findings of the file's verification, in order (the store's must be the same). */
  codes: string[];
  /** The reasons of the raw pieces the shipper stores. */
  raw: string[];
}

/** Cuts the last line (audit-log-stopped) after `keep` bytes and appends `tail` instead: what a crash leaves. */
const tearLastLine = (file: string, keep: number, tail = '') => {
  const l = linesOf(file);
  const last = l.pop() as string;
  writeLines(file, l);
  appendFileSync(file, Buffer.concat([Buffer.from(last.slice(0, keep)), Buffer.from(tail, 'latin1')]));
};

/** `line` with its hash recomputed (an unkeyed chain: anyone can), as a forger would. */
const rehash = (line: string) => {
  const covered = line.replace(/,"hash":"[0-9a-f]{64}"\}\}$/, '}}');
  return `${covered.slice(0, -2)},"hash":"${createHash('sha256').update(covered).digest('hex')}"}}`;
};

/** Line `i` of the file again after line `at` (`edit`: changed first, its hash recomputed). */
const copyLine = (file: string, i: number, at: number, edit?: (l: string) => string) => {
  const line = linesOf(file)[i] as string;
  insertAfter(file, at, edit ? rehash(edit(line)) : line);
};

const DAMAGES: Damage[] = [
  { name: 'no damage', damage: () => {}, verdict: 'intact', codes: [], raw: [] },
  {
    name: 'an inserted foreign line',
    damage: (f) => insertAfter(f, 3, 'GET /admin HTTP/1.1 200 - "attacker was here"'),
    verdict: 'tampered',
    codes: ['not-an-entry'],
    raw: [RawReasons.NOT_AN_ENTRY],
  },
  {
    name: 'a line that is JSON but no entry',
    damage: (f) => insertAfter(f, 5, '{"hello":"world"}'),
    verdict: 'tampered',
    codes: ['not-an-entry'],
    raw: [RawReasons.NOT_AN_ENTRY],
  },
  {
    name: 'an inserted entry whose sequence cannot be read',
    damage: (f) => insertAfter(f, 4, (linesOf(f)[4] as string).replace(/"sequence":\d+/, '"sequence":"four"')),
    verdict: 'tampered',
    codes: ['not-an-entry'],
    raw: [RawReasons.NO_CHAIN],
  },
  {
    name: 'an edited entry',
    damage: (f) =>
      writeLines(
        f,
        linesOf(f).map((l) => l.replace('"/e/6"', '"/e/7"')),
      ),
    verdict: 'tampered',
    codes: ['hash-mismatch'],
    raw: [],
  },
  {
    name: 'an entry edited so that it no longer parses',
    damage: (f) =>
      writeLines(
        f,
        linesOf(f).map((l) => l.replace('"path":"/e/6"', '"path":"/e/6')),
      ),
    verdict: 'tampered',
    codes: ['torn-fragment', 'sequence-gap', 'fragment-unexplained'],
    raw: [RawReasons.TORN_FRAGMENT],
  },
  {
    name: 'an invalid UTF-8 byte in an entry',
    damage: (f) => {
      const b = readFileSync(f);
      const at = b.indexOf('"/e/2"') + 2;
      b[at] = 0xff;
      writeFileSync(f, b);
    },
    verdict: 'tampered',
    codes: ['hash-mismatch'],
    raw: [],
  },
  {
    name: 'a deleted entry',
    damage: (f) =>
      writeLines(
        f,
        linesOf(f).filter((l) => !l.includes('"/e/4"')),
      ),
    verdict: 'tampered',
    codes: ['sequence-gap'],
    raw: [],
  },
  {
    name: 'a newline replaced by \\r (two entries on one line)',
    damage: (f) => {
      const l = linesOf(f);
      l.splice(3, 2, `${l[3]}\r${l[4]}`);
      writeLines(f, l);
    },
    verdict: 'tampered',
    codes: ['not-an-entry', 'sequence-gap'],
    raw: [RawReasons.NOT_AN_ENTRY],
  },
  {
    name: 'an entry again further on (an exact copy)',
    damage: (f) => copyLine(f, 4, 7),
    verdict: 'tampered',
    codes: ['sequence-reordered'],
    raw: [RawReasons.DUPLICATE_KEY],
  },
  {
    name: 'an entry again further on, in a later batch',
    batchSize: 3,
    damage: (f) => copyLine(f, 4, 9),
    verdict: 'tampered',
    codes: ['sequence-reordered'],
    raw: [RawReasons.DUPLICATE_KEY],
  },
  {
    name: 'an entry again right after itself, in the next batch',
    batchSize: 5,
    damage: (f) => copyLine(f, 4, 5),
    verdict: 'tampered',
    codes: ['sequence-reordered'],
    raw: [RawReasons.DUPLICATE_KEY],
  },
  {
    name: 'a later entry copied to an earlier place',
    damage: (f) => copyLine(f, 7, 3),
    verdict: 'tampered',
    // (the copy of /e/6 jumps from /e/2; /e/3 to /e/6 are then behind it, and /e/7 to /e/9 link to /e/6)
    codes: ['sequence-gap', ...Array(5).fill('sequence-reordered')],
    raw: [RawReasons.DUPLICATE_KEY],
  },
  {
    name: 'a forged variant after the genuine entry (same chain, sequence and time; hash recomputed)',
    damage: (f) => copyLine(f, 4, 5, (l) => l.replace('"/e/3"', '"/admin"')),
    verdict: 'tampered',
    codes: ['sequence-reordered'],
    raw: [RawReasons.DUPLICATE_KEY],
  },
  {
    name: 'a forged variant in a later batch, its hash not recomputed',
    batchSize: 4,
    damage: (f) => insertAfter(f, 8, (linesOf(f)[4] as string).replace('"/e/3"', '"/admin"')),
    verdict: 'tampered',
    codes: ['hash-mismatch', 'sequence-reordered'],
    raw: [RawReasons.DUPLICATE_KEY],
  },
  {
    name: 'a forged variant at another time (a key of its own)',
    damage: (f) => copyLine(f, 4, 6, (l) => l.replace(/"@timestamp":"[^"]*"/, '"@timestamp":"2020-01-01T00:00:00.000Z"')),
    verdict: 'tampered',
    codes: ['sequence-reordered'],
    raw: [],
  },
  {
    name: 'CRLF line ends throughout',
    damage: (f) => writeFileSync(f, readFileSync(f, 'utf8').replaceAll('\n', '\r\n')),
    verdict: 'intact',
    codes: [],
    raw: [],
  },
  {
    name: 'a torn fragment with another writer’s whole line glued after it',
    damage: (f) => {
      const l = linesOf(f);
      l.splice(2, 1, `${(l[2] as string).slice(0, 40)}${l[2]}`);
      writeLines(f, l);
    },
    verdict: 'intact',
    codes: ['torn-fragment'],
    raw: [RawReasons.TORN_FRAGMENT],
  },
  {
    name: 'a torn tail after a crash, then the next writer',
    damage: async (f) => {
      tearLastLine(f, 70);
      await writeLog(f, 2);
    },
    verdict: 'intact',
    codes: ['torn-fragment', 'writer-crashed'],
    raw: [RawReasons.TORN_FRAGMENT],
  },
  {
    name: 'zero bytes a power loss left, then the next writer',
    damage: async (f) => {
      tearLastLine(f, 0, '\0'.repeat(300));
      await writeLog(f, 2);
    },
    verdict: 'intact',
    codes: ['torn-fragment', 'writer-crashed'],
    raw: [RawReasons.TORN_FRAGMENT],
  },
  {
    name: 'zero bytes and the start of a line, then the next writer',
    damage: async (f) => {
      tearLastLine(f, 0, `${'\0'.repeat(100)}{"@timestamp":"2026-`);
      await writeLog(f, 2);
    },
    verdict: 'intact',
    codes: ['torn-fragment', 'torn-fragment', 'writer-crashed'],
    raw: [RawReasons.TORN_FRAGMENT, RawReasons.TORN_FRAGMENT],
  },
];

describe('PostgreSQL store: every piece of the file is evidence', needsPostgres(), () => {
  let db: TestPostgres;
  let dir: string;
  let client: pg.Client;
  const init = (table: string) => pgInit({ postgres: { connectionString: db.url, table }, appRole: 'app' });
  const shipper = (file: string, table: string, extra: Record<string, unknown> = {}) =>
    new PostgresShipper({ filename: file, postgres: { connectionString: db.url, table }, follow: false, ...extra });
  const ship = async (file: string, table: string, extra: Record<string, unknown> = {}) => {
    const s = shipper(file, table, extra);
    const raw: RawLine[] = [];
    s.on('raw', (l: RawLine) => raw.push(l));
    s.start();
    await s.close(60_000);
    return { s, raw };
  };
  const verifyTable = (table: string): Promise<VerifyResult> => verifyAuditLog({ postgres: { connectionString: db.url, table } });
  const count = (table: string) => Number(db.psql(`SELECT count(*) FROM ${table}`));
  const rawRows = async (table: string) =>
    (await client.query(`SELECT id, file_id, "offset", length, bytes, glued, reason, path, source FROM ${table}_raw ORDER BY id`))
      .rows as { id: string; offset: string; length: string; bytes: Buffer; glued: boolean; reason: string; path: string }[];

  /** Verifies `file` and `table` (API and CLI) and asserts the same verdict, findings and exit codes. */
  const sameVerdict = async (file: string, table: string, name: string) => {
    const [fromFile, fromStore] = await Promise.all([verifyAuditLog(file), verifyTable(table)]);
    assert.equal(fromStore.verdict, fromFile.verdict, `${name}: ${JSON.stringify(fromStore.findings)}`);
    assert.deepEqual(codes(fromStore), codes(fromFile), name);
    // The same first finding of the verdict's severity: the store holds the pieces in file order.
    assert.equal(fromStore.reason, fromFile.reason, name);
    assert.deepEqual(
      [fromStore.entries, fromStore.chains, fromStore.fragments],
      [fromFile.entries, fromFile.chains, fromFile.fragments],
      name,
    );
    const [a, b] = await Promise.all([cli(['verify', file]), cli(['verify', '--postgres', db.url, '--table', table])]);
    assert.equal(b.code, a.code, `${name}: ${a.stdout}\n${b.stdout}`);
    assert.equal(a.code, fromFile.exitCode, name);
    return fromFile;
  };

  before(async () => {
    db = await startPostgres();
    db.psql('CREATE ROLE app LOGIN');
    dir = tempDir('ppa-evidence-');
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });
  after(async () => {
    await client?.end();
    await db?.stop();
  });

  for (const c of DAMAGES) {
    it(`${c.name}: shipped and verified from the store as from the file`, async () => {
      const table = freshTable();
      await init(table);
      const file = join(dir, `${table}.jsonl`);
      await writeLog(file, 10);
      await c.damage(file);
      const { s, raw } = await ship(file, table, c.batchSize === undefined ? {} : { batchSize: c.batchSize });
      assert.deepEqual(
        raw.map((r) => r.reason),
        c.raw,
        c.name,
      );
      assert.equal(s.stats.raw, c.raw.length, c.name);
      const r = await sameVerdict(file, table, c.name);
      assert.equal(r.verdict, c.verdict, c.name);
      assert.deepEqual(codes(r), c.codes, c.name);
      // Each stored piece is the file's bytes at its offset, in file order.
      const bytes = readFileSync(file);
      const rows = await rawRows(table);
      assert.equal(rows.length, c.raw.length);
      let last = -1;
      for (const row of rows) {
        const at = Number(row.offset);
        assert.ok(at > last, 'file order');
        last = at;
        assert.ok(bytes.subarray(at, at + row.bytes.length).equals(row.bytes), `${c.name}: bytes at ${at}`);
        assert.equal(row.path, file);
        assert.equal(Number(row.length) >= row.bytes.length, true);
      }
    });
  }

  it('a foreign line of 17 MiB is kept as the 16 MiB verification reads, with its whole length', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 3);
    const long = `x${'y'.repeat(17 * 1024 * 1024)}`;
    insertAfter(file, 2, long);
    const { raw } = await ship(file, table);
    assert.deepEqual(
      raw.map((r) => [r.reason, r.length]),
      [[RawReasons.NOT_AN_ENTRY, long.length]],
    );
    const [row] = await rawRows(table);
    assert.ok(row?.bytes.equals(Buffer.from(long.slice(0, 16 * 1024 * 1024))));
    assert.equal(Number(row?.length), long.length);
    assert.equal(count(table), 5);
    const r = await sameVerdict(file, table, 'a 17 MiB line');
    assert.deepEqual(codes(r), ['not-an-entry']);
  });

  it('a torn tail nobody ended yet is not shipped (a writer may be writing it) until the next writer ends it', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 10);
    tearLastLine(file, 70);
    const first = await ship(file, table);
    assert.deepEqual(first.raw, []);
    const [fromFile, fromStore] = await Promise.all([verifyAuditLog(file), verifyTable(table)]);
    // Not tampered, either way: the file's reader sees the fragment, the store has not received it yet.
    assert.equal(fromFile.verdict, 'intact');
    assert.equal(fromStore.verdict, 'intact');
    assert.deepEqual(codes(fromFile), ['torn-fragment', 'chain-open']);
    assert.deepEqual(codes(fromStore), ['chain-open']);
    await writeLog(file, 2);
    const second = await ship(file, table);
    assert.deepEqual(
      second.raw.map((r) => r.reason),
      [RawReasons.TORN_FRAGMENT],
    );
    const r = await sameVerdict(file, table, 'ended by the next writer');
    assert.deepEqual(codes(r), ['torn-fragment', 'writer-crashed']);
  });

  it('timestamps past 9999 and before 1 AD land as themselves; one PostgreSQL cannot hold is kept as it is', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    const log = createAuditLog({ filename: file });
    const times = [
      { path: '/far', at: '+010000-01-01T00:00:00.000Z', ts: '10000-01-01 00:00:00+00' },
      { path: '/bc', at: '-000001-06-01T12:00:00.000Z', ts: '0002-06-01 12:00:00+00 BC' },
      { path: '/early', at: '0999-12-31T23:59:59.999Z', ts: '0999-12-31 23:59:59.999+00' },
      { path: '/now', at: '2026-03-04T05:06:07.089Z', ts: '2026-03-04 05:06:07.089+00' },
      { path: '/ancient', at: '-010000-01-01T00:00:00.000Z', ts: undefined },
    ];
    for (const t of times) {
      log.write({ category: 'web', action: 'http-request', outcome: 'success', path: t.path, timestamp: Date.parse(t.at) });
    }
    await log.close();
    assert.ok(readFileSync(file, 'utf8').includes('"@timestamp":"+010000-01-01T00:00:00.000Z"'));
    const { s, raw } = await ship(file, table);
    assert.deepEqual([s.stats.inserted, s.stats.raw], [times.length + 1, 1]);
    assert.deepEqual(
      raw.map((r) => r.reason),
      [RawReasons.TIMESTAMP_RANGE],
    );
    for (const t of times.filter((x) => x.ts !== undefined)) {
      assert.equal(db.psql(`SET TimeZone = 'UTC'; SELECT ts FROM ${table} WHERE path = '${t.path}'`), t.ts, t.path);
    }
    assert.equal(db.psql(`SELECT count(*) FROM ${table} WHERE ts = '-infinity'`), '0');
    assert.equal(db.psql(`SELECT count(*) FROM ${table}_${'202603'}`), '1');
    // The refused one is evidence as it is, and verifies as the entry it is.
    const [row] = await rawRows(table);
    assert.match(row?.bytes.toString('utf8') ?? '', /^\{"@timestamp":"-010000-01-01T00:00:00.000Z".*"\/ancient"/);
    const r = await sameVerdict(file, table, 'timestamps');
    assert.equal(r.verdict, 'intact');
    assert.equal(r.entries, times.length + 2);
    // Resent (another shipper): nothing is stored twice, the refused one neither.
    const again = await ship(file, table, { source: 'another-host:/x' });
    assert.deepEqual([again.s.stats.inserted, again.s.stats.raw, again.s.stats.duplicates], [0, 0, times.length + 2]);
  });

  it("a row an administrator's constraint or trigger refuses is kept as it is (refused) and the rest ships", async () => {
    const table = freshTable();
    await init(table);
    db.psql(`ALTER TABLE ${table} ADD CONSTRAINT no_bad CHECK (path IS DISTINCT FROM '/e/3')`);
    db.psql(`CREATE FUNCTION ${table}_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF NEW.path = '/e/7' THEN RAISE EXCEPTION 'not this one'; END IF; RETURN NEW; END $$`);
    db.psql(`CREATE TRIGGER guard BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION ${table}_guard()`);
    const file = join(dir, `${table}.jsonl`);
    const n = await writeLog(file, 10);
    const { s, raw } = await ship(file, table);
    assert.deepEqual([s.stats.inserted, s.stats.raw, s.stats.failures], [n - 2, 2, 0]);
    assert.deepEqual(
      raw.map((r) => r.reason),
      [RawReasons.REFUSED, RawReasons.REFUSED],
    );
    const rows = await rawRows(table);
    assert.match(rows[0]?.bytes.toString('utf8') ?? '', /"path":"\/e\/3"/);
    assert.match(rows[1]?.bytes.toString('utf8') ?? '', /"path":"\/e\/7"/);
    const r = await sameVerdict(file, table, 'refused rows');
    assert.equal(r.verdict, 'intact');
  });

  it('a resend (another shipper of the file, or the same after its resume point was lost) stores no piece twice', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 10);
    insertAfter(file, 3, 'foreign 1', '\0\0\0');
    insertAfter(file, 8, 'foreign 2');
    const a = await ship(file, table);
    assert.equal(a.s.stats.raw, 3);
    const b = await ship(file, table, { source: 'another-host:/elsewhere' });
    assert.deepEqual([b.s.stats.inserted, b.s.stats.raw, b.s.stats.duplicates], [0, 0, 12 + 3]);
    // A lost resume point (the cursor table emptied by hand): everything is sent again, and held already.
    db.psql(`SET session_replication_role = replica; DELETE FROM ${table}_cursor`);
    const c = await ship(file, table);
    assert.deepEqual([c.s.stats.inserted, c.s.stats.raw, c.s.stats.duplicates], [0, 0, 12 + 3]);
    assert.equal(count(`${table}_raw`), 3);
    assert.equal(count(table), 12);
    // A copy of the file elsewhere (another inode) is another file: its pieces are stored as its own.
    const copy = join(dir, `${table}-copy.jsonl`);
    copyFileSync(file, copy);
    const d = await ship(copy, table);
    assert.deepEqual([d.s.stats.inserted, d.s.stats.raw], [0, 3]);
    assert.equal(count(table), 12);
  });

  it('a row the app role inserted before the shipper, with an entry’s line but other columns, is no resend: the line is stored as it is', async () => {
    // What the app role can do with its INSERT right: write an entry's row first, so that the shipper finds
    // the key held. Only a row with the very columns the line gives may count as the entry.
    const ref = freshTable();
    const table = freshTable();
    await init(ref);
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 10);
    await ship(file, ref); // the rows a shipper makes, to copy from
    const cols =
      'chain, sequence, ts, action, outcome, client_ip, peer_ip, user_id, method, path, route, status, host, service, hash, line, source, file_id, "offset"';
    const app = new pg.Client({ connectionString: db.urlAs('app') });
    await app.connect();
    try {
      const names = cols.split(', ');
      const insert = (set: Record<string, string>, path: string) =>
        app.query(
          `INSERT INTO ${table} (${cols}) SELECT ${names.map((c) => set[c] ?? c).join(', ')} FROM ${ref} WHERE path = $1`,
          [path],
        );
      await insert({}, '/e/1'); // exactly the shipper's row: a resend
      await insert({ client_ip: "'203.0.113.9'::inet" }, '/e/3'); // from the line's own place, another client
      await insert({ path: "'/elsewhere'", file_id: 'NULL' }, '/e/6'); // the same line as from no file, another path
    } finally {
      await app.end();
    }
    const { s, raw } = await ship(file, table);
    assert.deepEqual([s.stats.inserted, s.stats.raw, s.stats.duplicates], [12 - 3, 2, 1]);
    assert.deepEqual(
      raw.map((r) => r.reason),
      [RawReasons.COLUMNS_DIFFER, RawReasons.COLUMNS_DIFFER],
    );
    const lines = linesOf(file);
    const stored = await rawRows(table);
    assert.deepEqual(
      stored.map((r) => r.bytes.toString('utf8')),
      [lines.find((l) => l.includes('"/e/3"')), lines.find((l) => l.includes('"/e/6"'))],
    );
    // The file is intact; the store is not: it holds those two lines twice.
    assert.equal((await verifyAuditLog(file)).verdict, 'intact');
    const r = await verifyTable(table);
    assert.equal(r.verdict, 'tampered', JSON.stringify(r.findings));
    // (the row from no file reads as a file of its own, first: the chain then starts at its sequence, and
    // every entry of the file, the second /e/3 among them, comes after it)
    assert.deepEqual(codes(r), ['start-missing', ...Array(9).fill('sequence-reordered')]);
    // Resent again: nothing more is stored (the raw pieces are held at their places).
    const again = await ship(file, table, { source: 'another-host:/x' });
    assert.deepEqual([again.s.stats.inserted, again.s.stats.raw], [0, 0]);
    assert.equal(count(`${table}_raw`), 2);
  });

  it('SIGKILL of a following shipper and two shippers at once: every entry and every piece once', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 30_000);
    // A foreign line every 997 lines, a torn fragment every 1499, and an entry again (the one 40 lines back) every 1201.
    const l = linesOf(file);
    const out: string[] = [];
    let foreign = 0;
    for (const [i, line] of l.entries()) {
      if (i % 997 === 500) {
        out.push(`foreign ${i}`);
        foreign++;
      }
      if (i % 1499 === 700) {
        out.push(line.slice(0, 100));
        foreign++;
      }
      if (i % 1201 === 900) {
        out.push(l[i - 40] as string);
        foreign++;
      }
      out.push(line);
    }
    writeLines(file, out);
    const child: ChildProcess = spawn(process.execPath, [CLI, 'ship', file, '--postgres', db.url, '--table', table, '--follow'], {
      stdio: 'ignore',
    });
    while (count(table) === 0) await sleep(20);
    child.kill('SIGKILL');
    await once(child, 'exit');
    assert.ok(count(table) < l.length, 'killed mid-file');
    const make = (source: string) => shipper(file, table, { source, batchSize: 700 });
    const [a, b] = [make('host-a:/x'), make('host-b:/x')];
    a.start();
    b.start();
    await Promise.all([a.close(60_000), b.close(60_000)]);
    const r = await cli(['ship', file, '--postgres', db.url, '--table', table]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(count(table), l.length);
    assert.equal(Number(db.psql(`SELECT count(DISTINCT (chain, sequence)) FROM ${table}`)), l.length);
    assert.equal(count(`${table}_raw`), foreign);
    assert.equal(Number(db.psql(`SELECT count(DISTINCT "offset") FROM ${table}_raw`)), foreign);
    await sameVerdict(file, table, 'after kills and concurrent shippers');
  });

  it('the raw table is append-only too: the app role only inserts and reads, the owner is refused by the trigger', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 3);
    insertAfter(file, 2, 'foreign');
    const s = new PostgresShipper({ filename: file, postgres: { connectionString: db.urlAs('app'), table }, follow: false });
    s.start();
    await s.close(20_000);
    assert.equal(s.stats.raw, 1);
    const app = new pg.Client({ connectionString: db.urlAs('app') });
    await app.connect();
    try {
      for (const sql of [
        `UPDATE ${table}_raw SET bytes = 'x'`,
        `DELETE FROM ${table}_raw`,
        `TRUNCATE ${table}_raw`,
        `DROP TABLE ${table}_raw`,
      ]) {
        await assert.rejects(app.query(sql), (e: { code: string }) => e.code === '42501', sql);
      }
      assert.equal(Number((await app.query(`SELECT count(*) AS n FROM ${table}_raw`)).rows[0].n), 1);
    } finally {
      await app.end();
    }
    for (const sql of [`UPDATE ${table}_raw SET bytes = 'x'`, `DELETE FROM ${table}_raw`, `TRUNCATE ${table}_raw`]) {
      assert.throws(() => db.psql(sql), /append-only/, sql);
    }
    assert.equal(count(`${table}_raw`), 1);
  });

  it('a table from before the raw table: shipping and verifying say to run pg-init, which upgrades it in place', async () => {
    const table = freshTable();
    await init(table);
    // The schema of the previous version: the same, without the raw table.
    db.psql(`DROP TABLE ${table}_raw`);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 5);
    insertAfter(file, 2, 'foreign');
    const s = shipper(file, table, { retryMax: 200 });
    const outage = once(s, 'outage');
    s.start();
    const [err] = (await outage) as [{ code: string; message: string }];
    assert.equal(err.code, ErrorCodes.AUDIT_STORE_SCHEMA);
    assert.match(err.message, /pg-init again/);
    const oneOff = await cli(['ship', file, '--postgres', db.url, '--table', table]);
    assert.equal(oneOff.code, 1);
    assert.match(oneOff.stderr, /pg-init again/);
    assert.equal(count(table), 0, 'nothing shipped without the raw table');
    // Verifying the entries alone would say intact where the file says tampered: it says what to do instead.
    const v = await verifyTable(table);
    assert.equal(v.verdict, 'cannot-verify');
    assert.match(v.findings[0]?.message ?? '', /pg-init again/);
    assert.equal((await cli(['verify', '--postgres', db.url, '--table', table])).code, 2);
    const again = await cli(['pg-init', '--postgres', db.url, '--table', table, '--app-role', 'app']);
    assert.equal(again.code, 0, again.stderr);
    // The waiting shipper goes on.
    await s.close(30_000);
    assert.deepEqual([s.stats.inserted, s.stats.raw], [7, 1]);
    const r = await sameVerdict(file, table, 'upgraded');
    assert.deepEqual(codes(r), ['not-an-entry']);
  });

  it('CLI ship names each piece it stores as it is, and its summary counts them', async () => {
    const table = freshTable();
    await init(table);
    const file = join(dir, `${table}.jsonl`);
    await writeLog(file, 4);
    insertAfter(file, 2, 'foreign text');
    const r = await cli(['ship', file, '--postgres', db.url, '--table', table]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /byte \d+ \(12 bytes\) stored as it is, not as an entry: not-an-entry/);
    assert.match(r.stdout, /6 rows inserted, 0 already there, 1 other pieces stored as they are/);
  });
});
