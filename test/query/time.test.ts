import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTime } from '../../src/index.js';

const NOW = Date.parse('2024-03-08T12:00:00.000Z');

describe('parseTime', () => {
  const good: { name: string; input: string | number | Date; expected: string }[] = [
    { name: 'a date is midnight UTC', input: '2024-03-01', expected: '2024-03-01T00:00:00.000Z' },
    { name: 'a date-time without offset is UTC', input: '2024-03-01T08:30', expected: '2024-03-01T08:30:00.000Z' },
    { name: 'seconds and fraction', input: '2024-03-01T08:30:15.250Z', expected: '2024-03-01T08:30:15.250Z' },
    { name: 'an offset with colon', input: '2024-03-01T10:30:00+02:00', expected: '2024-03-01T08:30:00.000Z' },
    { name: 'an offset without colon', input: '2024-03-01T03:30:00-0500', expected: '2024-03-01T08:30:00.000Z' },
    { name: 'a space instead of T', input: '2024-03-01 08:30', expected: '2024-03-01T08:30:00.000Z' },
    { name: '7d ago', input: '7d', expected: '2024-03-01T12:00:00.000Z' },
    { name: '12h ago', input: '12h', expected: '2024-03-08T00:00:00.000Z' },
    { name: '30m ago', input: '30m', expected: '2024-03-08T11:30:00.000Z' },
    { name: '45s ago', input: '45s', expected: '2024-03-08T11:59:15.000Z' },
    { name: '2w ago', input: '2w', expected: '2024-02-23T12:00:00.000Z' },
    { name: 'milliseconds', input: 0, expected: '1970-01-01T00:00:00.000Z' },
    { name: 'a Date', input: new Date('2024-01-02T03:04:05Z'), expected: '2024-01-02T03:04:05.000Z' },
  ];
  for (const c of good) {
    it(c.name, () => assert.equal(new Date(parseTime(c.input, NOW)).toISOString(), c.expected));
  }
  const bad = [
    'yesterday',
    '7',
    '7y',
    '-7d',
    '2024-02-30',
    '2024-13-01',
    '2024-03-01T25:00',
    '',
    '03/01/2024',
    '2024-03-01T08:00+2',
  ];
  for (const input of bad) {
    it(`rejects ${JSON.stringify(input)}`, () => assert.throws(() => parseTime(input, NOW, 'from'), TypeError));
  }
  it('rejects NaN', () => assert.throws(() => parseTime(Number.NaN, NOW), TypeError));
});
