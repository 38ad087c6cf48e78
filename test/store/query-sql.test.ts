import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QueryFilters } from '../../src/index.js';
import { storeQuerySql } from '../../src/store/query-sql.js';

const NOW = Date.parse('2024-03-08T12:00:00.000Z');
const T = '"audit_log"';
const ORDER = ' ORDER BY ts, chain, sequence';

describe('storeQuerySql', () => {
  const cases: { name: string; filters: QueryFilters; limit?: number; where: string; values: unknown[] }[] = [
    { name: 'no filter', filters: {}, where: '', values: [] },
    { name: 'one address', filters: { ip: '203.0.113.7' }, where: 'client_ip = $1::inet', values: ['203.0.113.7'] },
    { name: 'a CIDR', filters: { ip: '10.0.0.0/8' }, where: 'client_ip <<= $1::inet', values: ['10.0.0.0/8'] },
    {
      name: 'several, and a named range',
      filters: { ip: ['203.0.113.7', 'loopback'] },
      where: '(client_ip = $1::inet OR client_ip <<= $2::inet OR client_ip <<= $3::inet)',
      values: ['203.0.113.7', '127.0.0.0/8', '::1/128'],
    },
    { name: 'peer', filters: { peer: '10.0.0.2' }, where: 'peer_ip = $1::inet', values: ['10.0.0.2'] },
    { name: 'not an address', filters: { notIp: '10.0.0.0/8' }, where: 'NOT (client_ip <<= $1::inet)', values: ['10.0.0.0/8'] },
    {
      name: 'not in a named range',
      filters: { notIp: 'loopback' },
      where: 'NOT (client_ip <<= $1::inet OR client_ip <<= $2::inet)',
      values: ['127.0.0.0/8', '::1/128'],
    },
    {
      name: 'user',
      filters: { user: ['dr-lee', 'nurse-kim'] },
      where: 'user_id = ANY($1::text[])',
      values: [['dr-lee', 'nurse-kim']],
    },
    {
      name: 'a path: itself or below it',
      filters: { path: '/patients/42' },
      where: '(path = $1::text OR path LIKE $2::text)',
      values: ['/patients/42', '/patients/42/%'],
    },
    { name: 'a path ending in /', filters: { path: '/patients/' }, where: 'path LIKE $1::text', values: ['/patients/%'] },
    {
      name: 'a path with LIKE characters is literal',
      filters: { path: ['/a_b%c\\d/', '/x/'] },
      where: '(path LIKE $1::text OR path LIKE $2::text)',
      values: ['/a\\_b\\%c\\\\d/%', '/x/%'],
    },
    { name: 'route', filters: { route: '/patients/:id' }, where: 'route = ANY($1::text[])', values: [['/patients/:id']] },
    {
      name: 'action',
      filters: { action: 'connection-rejected' },
      where: 'action = ANY($1::text[])',
      values: [['connection-rejected']],
    },
    { name: 'outcome', filters: { outcome: 'failure' }, where: 'outcome = ANY($1::text[])', values: [['failure']] },
    { name: 'a status', filters: { status: 403 }, where: 'status = ANY($1::integer[])', values: [[403]] },
    {
      name: 'a status class',
      filters: { status: '4xx' },
      where: 'status BETWEEN $1::integer AND $2::integer',
      values: [400, 499],
    },
    {
      name: 'statuses and patterns',
      filters: { status: [401, '403', '5XX', '4x3'] },
      where: '(status = ANY($1::integer[]) OR status BETWEEN $2::integer AND $3::integer OR status::text LIKE $4::text)',
      values: [[401, 403], 500, 599, '4_3'],
    },
    {
      name: 'a time range, relative times made absolute',
      filters: { from: '7d', to: '2024-03-08' },
      where: 'ts >= $1::timestamptz AND ts < $2::timestamptz',
      values: ['2024-03-01T12:00:00.000Z', '2024-03-08T00:00:00.000Z'],
    },
    {
      name: 'everything combines with AND',
      filters: { ip: '203.0.113.7', user: 'dr-lee', from: '2024-03-01', to: '2024-03-02' },
      where: 'client_ip = $1::inet AND user_id = ANY($2::text[]) AND ts >= $3::timestamptz AND ts < $4::timestamptz',
      values: ['203.0.113.7', ['dr-lee'], '2024-03-01T00:00:00.000Z', '2024-03-02T00:00:00.000Z'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const q = storeQuerySql(T, c.filters, { now: NOW });
      assert.equal(q.text, `SELECT line FROM ${T}${c.where ? ` WHERE ${c.where}` : ''}${ORDER}`);
      assert.deepEqual(q.values, c.values);
    });
  }

  it('a limit is a parameter too', () => {
    const q = storeQuerySql('"ops"."audit"', { user: 'u' }, { limit: 50 });
    assert.equal(q.text, `SELECT line FROM "ops"."audit" WHERE user_id = ANY($1::text[])${ORDER} LIMIT $2::bigint`);
    assert.deepEqual(q.values, [['u'], 50]);
  });

  it('no value ever reaches the SQL text', () => {
    const evil = "x'; DROP TABLE audit_log; --";
    const q = storeQuerySql(T, { user: evil, path: evil, route: evil, action: evil });
    assert.ok(!q.text.includes('DROP'));
    assert.equal(q.values.length, 5, 'user, path (itself and below), route, action');
  });

  const bad: { name: string; filters: unknown; limit?: number }[] = [
    { name: 'a bad address', filters: { ip: 'nowhere' } },
    { name: 'a bad status', filters: { status: '6xx' } },
    { name: 'a bad time', filters: { from: 'soon' } },
    { name: 'a bad limit', filters: {}, limit: -1 },
  ];
  for (const c of bad) {
    it(`TypeError: ${c.name}`, () =>
      assert.throws(() => storeQuerySql(T, c.filters as QueryFilters, { limit: c.limit }), TypeError));
  }
});
