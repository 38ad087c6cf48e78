import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import {
  type AuditFields,
  createCsvFormatter,
  createTableFormatter,
  csvField,
  entryFields,
  type QueryMatch,
} from '../../src/index.js';
import { request, writeLog } from './util.js';

async function matches(entries: AuditFields[]): Promise<QueryMatch[]> {
  const { file, lines } = await writeLog(entries);
  return lines.slice(1, -1).map((line, i) => ({
    line,
    entry: JSON.parse(line),
    fields: entryFields(JSON.parse(line)),
    source: file,
    lineNumber: i + 2,
    verified: true,
  }));
}

describe('table', () => {
  let rows: QueryMatch[];
  before(async () => {
    rows = await matches([
      request(0),
      request(1, { clientIp: '2001:db8::7', userId: 'nurse-kim', method: 'DELETE', path: '/patients/43', status: 204 }),
      request(2, { userId: undefined, status: 404, path: '/x' }),
      {
        timestamp: Date.parse('2024-03-01T13:00:00Z'),
        category: 'network',
        action: 'connection-rejected',
        outcome: 'failure',
        peerAddress: '198.51.100.9',
      },
    ]);
  });

  it('aligns columns to the widest value, numbers to the right, unknowns as -', () => {
    const t = createTableFormatter();
    const out = rows.map((r) => t.row(r)).join('') + t.end();
    assert.equal(
      out,
      [
        '   TIME                      CLIENT        USER       METHOD  PATH                 STATUS  OUTCOME',
        '   2024-03-01T08:00:00.000Z  203.0.113.7   dr-lee     GET     /patients/42            200  success',
        '   2024-03-01T09:00:00.000Z  2001:db8::7   nurse-kim  DELETE  /patients/43            204  success',
        '   2024-03-01T10:00:00.000Z  203.0.113.7   -          GET     /x                      404  failure',
        '   2024-03-01T13:00:00.000Z  198.51.100.9  -          -       connection-rejected       -  failure',
        '',
      ].join('\n'),
    );
  });

  it('marks entries that did not verify with !', () => {
    const t = createTableFormatter();
    const out = t.row({ ...(rows[0] as QueryMatch), verified: false }) + t.end();
    assert.match(out.split('\n')[1] as string, /^! {2}2024-03-01T08:00:00\.000Z/);
  });

  it('fixes widths after the sample and cuts longer values with …', async () => {
    const [short, long] = await matches([request(0, { path: '/a' }), request(1, { path: `/${'b'.repeat(80)}` })]);
    const t = createTableFormatter({ sample: 1 });
    const head = t.row(short as QueryMatch);
    const next = t.row(long as QueryMatch);
    assert.equal(head.split('\n').length, 3, 'header and the first row, once the sample is full');
    assert.equal(next.indexOf('/bb…  '), head.split('\n')[1]?.indexOf('/a  '), 'the path column keeps its place and width');
    assert.equal(t.end(), '');
  });

  it('caps a column at its maximum even inside the sample', async () => {
    const [long] = await matches([request(0, { path: `/${'c'.repeat(100)}` })]);
    const t = createTableFormatter();
    const out = t.row(long as QueryMatch) + t.end();
    assert.ok(out.includes(`/${'c'.repeat(58)}…`), 'PATH is at most 60 wide');
  });

  it('never sends control characters or bidi overrides to the terminal', async () => {
    const [evil] = await matches([request(0, { userId: 'eve\u001b[2J\u202e', path: '/p\r\n' })]);
    const t = createTableFormatter();
    const out = t.row(evil as QueryMatch) + t.end();
    // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters
    assert.doesNotMatch(out.replace(/\n/g, ''), /[\u0000-\u001f\u202e]/);
    assert.ok(out.includes('eve\\u001b[2J\\u202e'));
    assert.ok(out.includes('/p\\u000d\\u000a'));
  });

  it('an empty result is only the header', () => {
    assert.equal(createTableFormatter().end().trim().split(/ +/).join(' '), 'TIME CLIENT USER METHOD PATH STATUS OUTCOME');
  });
});

describe('csv', () => {
  const fields: { name: string; input: string | number | undefined; expected: string }[] = [
    { name: 'plain text', input: 'dr-lee', expected: 'dr-lee' },
    { name: 'absent', input: undefined, expected: '' },
    { name: 'a number', input: 403, expected: '403' },
    { name: 'a comma', input: 'a,b', expected: '"a,b"' },
    { name: 'quotes are doubled', input: 'say "hi"', expected: '"say ""hi"""' },
    { name: 'a newline', input: 'a\nb', expected: '"a\nb"' },
    { name: 'a CR', input: 'a\rb', expected: '"a\rb"' },
    { name: 'formula =', input: '=HYPERLINK("http://x")', expected: `"'=HYPERLINK(""http://x"")"` },
    { name: 'formula +', input: '+1', expected: `"'+1"` },
    { name: 'formula -', input: '-2+3', expected: `"'-2+3"` },
    { name: 'formula @', input: '@SUM(A1)', expected: `"'@SUM(A1)"` },
    { name: 'leading TAB', input: '\t=1', expected: `"'\t=1"` },
    { name: 'a formula character later is harmless', input: 'a=b', expected: 'a=b' },
  ];
  for (const c of fields) it(`field: ${c.name}`, () => assert.equal(csvField(c.input), c.expected));

  it('a header, CRLF line ends, one row per entry, in a fixed column order', async () => {
    const [m] = await matches([request(0, { userId: '=cmd|calc', path: '/a,b' })]);
    const f = createCsvFormatter();
    const out = f.row(m as QueryMatch) + f.end();
    const [head, row, rest] = out.split('\r\n');
    assert.equal(rest, '');
    assert.equal(
      head,
      'time,client_ip,client_port,peer_ip,peer_port,user,method,path,route,status,outcome,action,error,request_id,service,host,chain,sequence,verified,source,line',
    );
    assert.equal(
      row,
      `2024-03-01T08:00:00.000Z,203.0.113.7,50000,10.0.0.2,443,"'=cmd|calc",GET,"/a,b",/patients/:id,200,success,http-request,,req-0,ehr-api,app-1,${m?.fields.chain},2,yes,${m?.source},2`,
    );
  });

  it('an empty result is the header alone', () => {
    const f = createCsvFormatter();
    assert.equal(f.end().split('\r\n').length, 2);
    assert.equal(f.end(), '', 'once');
  });
});
