// COPY text format read back (copy-text.ts): every escape, UTF-8, rows cut anywhere by the stream's chunks;
// then against a real PostgreSQL: what its COPY TO writes decodes to what SELECT gives, and a slow reader
// holds the server back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { CopyRows, wholeRows } from '../../src/store/copy-text.js';
import { sleep } from '../helpers.js';
import { needsPostgres, startPostgres, type TestPostgres } from './postgres.js';

/** The rows of `data` (COPY text, any chunking) as arrays of fields, read as verify --postgres reads them. */
async function readRows(chunks: Buffer[], fields = 1): Promise<(string | null)[][]> {
  async function* stream() {
    for (const c of chunks) yield c;
  }
  const out: (string | null)[][] = [];
  for await (const buf of wholeRows(stream())) {
    const row = new CopyRows(buf);
    while (row.next()) {
      const r: (string | null)[] = [];
      for (let i = 0; i < fields; i++) r.push(row.text());
      out.push(r);
    }
  }
  return out;
}

/** One field of one row, given as the bytes of COPY text (latin1: each char one byte). */
const field = async (copy: string | Buffer) =>
  (await readRows([Buffer.concat([typeof copy === 'string' ? Buffer.from(copy, 'latin1') : copy, Buffer.from('\n')])]))[0]?.[0];

/**
 * PostgreSQL's COPY TO escaping of a text value (CopyAttributeOutText, delimiter tab), written again here
 * from its rules: backslash → \\, \b \f \n \r \t \v for those characters, other bytes as they are.
 */
function copyEscape(text: string): string {
  const names: Record<string, string> = {
    '\\': '\\\\',
    '\b': '\\b',
    '\f': '\\f',
    '\n': '\\n',
    '\r': '\\r',
    '\t': '\\t',
    '\v': '\\v',
  };
  return text.replace(/[\\\b\f\n\r\t\v]/g, (c) => names[c] as string);
}

describe('COPY text format, read back', () => {
  const cases: { name: string; copy: string | Buffer; expected: string | null }[] = [
    { name: 'no backslash', copy: 'plain text', expected: 'plain text' },
    { name: 'an empty field', copy: '', expected: '' },
    { name: '\\\\ (a backslash)', copy: 'a\\\\b', expected: 'a\\b' },
    { name: '\\b', copy: '\\b', expected: '\b' },
    { name: '\\f', copy: '\\f', expected: '\f' },
    { name: '\\n', copy: 'x\\ny', expected: 'x\ny' },
    { name: '\\r', copy: 'x\\r', expected: 'x\r' },
    { name: '\\t (the delimiter)', copy: '\\tx', expected: '\tx' },
    { name: '\\v', copy: '\\v', expected: '\v' },
    { name: '\\N alone is NULL', copy: '\\N', expected: null },
    { name: '\\N inside text is an N', copy: 'a\\N', expected: 'aN' },
    { name: '\\\\N is a backslash and an N', copy: '\\\\N', expected: '\\N' },
    { name: 'octal, three digits', copy: '\\101', expected: 'A' },
    { name: 'octal, one digit', copy: '\\0x', expected: '\0x' },
    { name: 'octal, two digits', copy: '\\12', expected: '\n' },
    { name: 'octal takes at most three digits', copy: '\\1012', expected: 'A2' },
    { name: 'octal bytes of one UTF-8 character', copy: '\\303\\251', expected: 'é' },
    { name: 'hex, two digits', copy: '\\x41', expected: 'A' },
    { name: 'hex, one digit', copy: '\\x4G', expected: '\x04G' },
    { name: 'hex takes at most two digits', copy: '\\x414', expected: 'A4' },
    { name: 'hex bytes of one UTF-8 character', copy: '\\xc3\\xA9', expected: 'é' },
    { name: '\\x without a hex digit is an x', copy: '\\xg', expected: 'xg' },
    { name: 'a backslash before another character is that character', copy: '\\q\\.\\"', expected: 'q."' },
    { name: 'a lone backslash at the end is kept', copy: 'ab\\', expected: 'ab\\' },
    { name: 'multi-byte UTF-8 around escapes', copy: Buffer.from('日本\\t語 😀\\\\ é'), expected: '日本\t語 😀\\ é' },
    {
      name: 'a JSON line with backslashes in its user agent',
      copy: Buffer.from(copyEscape('{"user_agent":{"original":"Mozilla \\"x\\" C:\\\\dir\\\\ \\u00e9"}}')),
      expected: '{"user_agent":{"original":"Mozilla \\"x\\" C:\\\\dir\\\\ \\u00e9"}}',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      assert.equal(await field(c.copy), c.expected);
    });
  }

  it('reads the fields of each row, with and without backslashes, in any order of rows', async () => {
    const rows = [
      ['1', '0', 'plain'],
      ['2', '0', 'with \\\\ one'],
      ['3', '0', 'plain again'],
      ['4', '1', '\\t\\n'],
      ['5', '0', 'é plain'],
      ['6', '2', 'last \\\\'],
    ];
    const data = Buffer.from(rows.map((r) => `${r.join('\t')}\n`).join(''));
    async function* one() {
      yield data;
    }
    const got: [number, number, string | null][] = [];
    for await (const buf of wholeRows(one())) {
      const row = new CopyRows(buf);
      while (row.next()) got.push([row.integer(), row.integer(), row.text()]);
    }
    assert.deepEqual(got, [
      [1, 0, 'plain'],
      [2, 0, 'with \\ one'],
      [3, 0, 'plain again'],
      [4, 1, '\t\n'],
      [5, 0, 'é plain'],
      [6, 2, 'last \\'],
    ]);
  });

  it('gives every row whole wherever the chunks cut it (in a UTF-8 character, an escape, a newline)', async () => {
    const texts = ['a😀b\\c', 'é\tx\ny', '', '\\N is text here', '日本語'];
    const data = Buffer.from(texts.map((t) => `${copyEscape(t)}\n`).join(''));
    for (let cut = 0; cut <= data.length; cut++) {
      const rows = await readRows([data.subarray(0, cut), data.subarray(cut)]);
      assert.deepEqual(
        rows.map((r) => r[0]),
        texts,
        `cut at ${cut}`,
      );
    }
    const bytes = [...data].map((b) => Buffer.from([b]));
    assert.deepEqual(
      (await readRows(bytes)).map((r) => r[0]),
      texts,
      'one byte per chunk',
    );
  });

  it('round-trips any text escaped as PostgreSQL escapes it, however chunked (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.string({ unit: 'binary' }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (texts, cuts) => {
          // Unpaired surrogates are not text PostgreSQL can hold.
          const valid = texts.map((t) => Buffer.from(t).toString());
          const data = Buffer.from(valid.map((t) => `${copyEscape(t)}\n`).join(''));
          const at = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
          const chunks = [0, ...at].map((from, i) => data.subarray(from, at[i] ?? data.length));
          const rows = await readRows(chunks);
          assert.deepEqual(
            rows.map((r) => r[0]),
            valid,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('throws when the data ends inside a row, and ignores empty chunks', async () => {
    await assert.rejects(readRows([Buffer.from('1\tone\n2\ttw')], 2), /ended inside a row/);
    assert.deepEqual(await readRows([Buffer.alloc(0), Buffer.from('a\n'), Buffer.alloc(0)]), [['a']]);
  });
});

describe('COPY text format from PostgreSQL', needsPostgres(), () => {
  let db: TestPostgres;
  let client: pg.Client;

  before(async () => {
    db = await startPostgres();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
  });
  after(async () => {
    await client?.end();
    await db?.stop();
  });

  it('decodes what COPY TO writes to what SELECT gives: every ASCII character, UTF-8, NULL', async () => {
    const values: (string | null)[] = [
      ...Array.from({ length: 127 }, (_, i) => `<${String.fromCharCode(i + 1)}>`),
      Array.from({ length: 127 }, (_, i) => String.fromCharCode(i + 1)).join(''),
      '\\N',
      '\\\\',
      null,
      '',
      'é 日本語 😀 \u00a0 \u2028 \uffff',
      '{"user_agent":{"original":"Mozilla \\"x\\" C:\\\\dir\\\\ \\u0000"}}',
    ];
    await client.query('CREATE TABLE round_trip (id int PRIMARY KEY, v text)');
    await client.query('INSERT INTO round_trip SELECT i, v FROM unnest($1::text[]) WITH ORDINALITY AS u (v, i)', [values]);
    const selected = (await client.query('SELECT v FROM round_trip ORDER BY id')).rows.map((r) => r.v as string | null);
    assert.deepEqual(selected, values);
    const stream = client.query(copyTo('COPY (SELECT id, v FROM round_trip ORDER BY id) TO STDOUT'));
    const got: [number, string | null][] = [];
    for await (const buf of wholeRows(stream)) {
      const row = new CopyRows(buf);
      while (row.next()) got.push([row.integer(), row.text()]);
    }
    assert.deepEqual(
      got,
      values.map((v, i) => [i + 1, v]),
    );
  });

  it('a slow reader holds the server back: the COPY waits to write, memory stays bounded', async () => {
    // 40,000 rows of 1000 bytes: 40 MB, far more than the socket's and the stream's buffers.
    await client.query("CREATE TABLE big AS SELECT i AS id, repeat('x', 1000) AS v FROM generate_series(1, 40000) AS i");
    const reader = new pg.Client({ connectionString: db.url });
    await reader.connect();
    try {
      const pid = (await reader.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const progress = async () =>
        (
          await client.query(
            'SELECT p.bytes_processed::bigint AS sent, a.wait_event FROM pg_stat_progress_copy p JOIN pg_stat_activity a USING (pid) WHERE pid = $1',
            [pid],
          )
        ).rows[0] as { sent: string; wait_event: string };
      const stream = reader.query(copyTo('COPY (SELECT id, v FROM big ORDER BY id) TO STDOUT'));
      let rows = 0;
      let read = 0;
      let paused = false;
      for await (const buf of wholeRows(stream)) {
        read += buf.length;
        const row = new CopyRows(buf);
        while (row.next()) {
          assert.equal(row.integer(), ++rows);
          assert.equal(row.text()?.length, 1000);
        }
        if (!paused && read > 1e6) {
          // The verifier slow here: nothing more is read while it works.
          paused = true;
          await sleep(300);
          const a = await progress();
          await sleep(300);
          const b = await progress();
          assert.equal(b.sent, a.sent, 'the server sends nothing more while the reader pauses');
          assert.equal(b.wait_event, 'ClientWrite');
          assert.ok(Number(b.sent) - read < 4e6, `sent ${b.sent} bytes, read ${read}: at most the buffers' worth ahead`);
        }
      }
      assert.ok(paused);
      assert.equal(rows, 40_000);
    } finally {
      await reader.end();
    }
  });
});
