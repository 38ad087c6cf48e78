import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { compileFilter, entryFields, type QueryFilters } from '../../src/index.js';
import { DAY, request, writeLog } from './util.js';

// Sequence numbers of DAY's entries in the written file (1 is audit-log-started).
const REQ = { lee0: 2, kim1: 3, lee2: 4, kim3: 5, anon4: 6, refused: 7, lee26: 8, lee27: 9 };
const NOW = Date.parse('2024-03-02T12:00:00.000Z');

describe('compileFilter', () => {
  let lines: string[];
  before(async () => {
    lines = (await writeLog(DAY)).lines;
  });

  const matching = (filters: QueryFilters) => {
    const f = compileFilter(filters, NOW);
    return lines
      .filter((l) => {
        const m = f.match(entryFields(JSON.parse(l)));
        // The cheap test never rules out a line that matches.
        if (m) assert.equal(f.mayMatch(l), true, `mayMatch said no to a match of ${JSON.stringify(filters)}`);
        return m;
      })
      .map((l) => JSON.parse(l).event.sequence);
  };

  const cases: { name: string; filters: QueryFilters; expected: number[] }[] = [
    { name: 'no filter: everything', filters: {}, expected: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
    { name: 'one address', filters: { ip: '203.0.113.7' }, expected: [REQ.lee0, REQ.lee26] },
    { name: 'a CIDR', filters: { ip: '203.0.113.0/24' }, expected: [REQ.lee0, REQ.kim1, REQ.lee26, REQ.lee27] },
    { name: 'a named range', filters: { ip: 'uniquelocal' }, expected: [REQ.lee2, REQ.anon4] },
    { name: 'IPv6 CIDR', filters: { ip: '2001:db8::/32' }, expected: [REQ.kim3] },
    { name: 'IPv6 written another way', filters: { ip: '2001:0DB8:0:0::7' }, expected: [REQ.kim3] },
    { name: 'two addresses (either)', filters: { ip: ['203.0.113.8', '10.1.2.3'] }, expected: [REQ.kim1, REQ.lee2] },
    { name: 'peer', filters: { peer: '198.51.100.0/24' }, expected: [REQ.refused] },
    {
      name: 'not from our network (entries without a client address match neither way)',
      filters: { notIp: 'uniquelocal', user: ['dr-lee', 'nurse-kim'] },
      expected: [REQ.lee0, REQ.kim1, REQ.kim3, REQ.lee26, REQ.lee27],
    },
    { name: 'not-ip alone', filters: { notIp: ['203.0.113.0/24', '2001:db8::/32'] }, expected: [REQ.lee2, REQ.anon4] },
    { name: 'user', filters: { user: 'nurse-kim' }, expected: [REQ.kim1, REQ.kim3] },
    { name: 'path, by whole segments', filters: { path: '/patients/42' }, expected: [REQ.lee0, REQ.lee2, REQ.lee26] },
    { name: 'a partial segment matches nothing', filters: { path: '/patients/4' }, expected: [] },
    {
      name: 'a path ending in /',
      filters: { path: '/patients/' },
      expected: [REQ.lee0, REQ.kim1, REQ.lee2, REQ.lee26, REQ.lee27],
    },
    { name: 'route', filters: { route: '/patients/:id' }, expected: [REQ.lee0, REQ.kim1, REQ.lee26, REQ.lee27] },
    { name: 'status', filters: { status: 403 }, expected: [REQ.kim3] },
    { name: 'status as text', filters: { status: '201' }, expected: [REQ.lee2] },
    { name: 'status class', filters: { status: '4xx' }, expected: [REQ.kim3, REQ.anon4] },
    { name: 'status pattern', filters: { status: '20x' }, expected: [REQ.lee0, REQ.kim1, REQ.lee2, REQ.lee27] },
    { name: 'two status classes', filters: { status: ['4xx', '5xx'] }, expected: [REQ.kim3, REQ.anon4, REQ.lee26] },
    { name: 'outcome', filters: { outcome: 'failure' }, expected: [REQ.kim3, REQ.anon4, REQ.refused, REQ.lee26] },
    { name: 'action', filters: { action: 'connection-rejected' }, expected: [REQ.refused] },
    {
      name: 'from (inclusive; the log’s own start and stop entries are written now)',
      filters: { from: '2024-03-02T10:00:00Z' },
      expected: [1, REQ.lee26, REQ.lee27, 10],
    },
    { name: 'to (exclusive)', filters: { from: '2024-03-01', to: '2024-03-01T10:00:00Z' }, expected: [REQ.lee0, REQ.kim1] },
    { name: 'relative from', filters: { from: '3h', action: 'http-request' }, expected: [REQ.lee26, REQ.lee27] },
    {
      name: 'everything at once',
      filters: {
        ip: '203.0.113.0/24',
        user: 'dr-lee',
        path: '/patients/',
        route: '/patients/:id',
        status: '2xx',
        outcome: 'success',
        action: 'http-request',
        from: '2024-03-02',
        to: '2024-03-03',
      },
      expected: [REQ.lee27],
    },
    { name: 'filters combine: nothing matches both', filters: { user: 'nurse-kim', ip: '10.0.0.0/8' }, expected: [] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(matching(c.filters), c.expected));

  const bad: { name: string; filters: unknown }[] = [
    { name: 'not an address', filters: { ip: 'somewhere' } },
    { name: 'a prefix too long', filters: { ip: '10.0.0.0/33' } },
    { name: 'a status out of range', filters: { status: 700 } },
    { name: 'a status pattern out of range', filters: { status: '6xx' } },
    { name: 'an unknown outcome', filters: { outcome: 'failed' } },
    { name: 'a bad time', filters: { from: 'last week' } },
    { name: 'from after to', filters: { from: '2024-03-02', to: '2024-03-01' } },
    { name: 'an empty list', filters: { user: [] } },
    { name: 'a number for a string filter', filters: { user: 42 } },
    { name: 'not an object', filters: 'ip=1.2.3.4' },
  ];
  for (const c of bad)
    it(`TypeError: ${c.name}`, () => assert.throws(() => compileFilter(c.filters as QueryFilters, NOW), TypeError));

  it('the filters are described as applied, times absolute', () => {
    assert.deepEqual(compileFilter({ ip: '10.0.0.0/8', from: '1d', status: '4xx' }, NOW).description, {
      ip: ['10.0.0.0/8'],
      status: ['4xx'],
      from: ['2024-03-01T12:00:00.000Z'],
    });
  });

  it('mayMatch never rules out a matching line, whatever the values (property)', async () => {
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(text, text, fc.ipV4(), async (user, path, ip) => {
        const { lines: ls } = await writeLog([request(0, { userId: user, path, clientIp: ip })]);
        const line = ls[1] as string;
        const f = compileFilter({ user, path, ip });
        assert.equal(f.match(entryFields(JSON.parse(line))), true);
        assert.equal(f.mayMatch(line), true);
      }),
      { numRuns: 60 },
    );
  });
});
