// The v1 parser's two ways through a line: the one-pass reading of a whole, valid TCP line, and the long
// way (parseV1Line) that decides everything else. Both must give the same answer for every input.
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCodes, type ParseResult, parseProxyHeader } from '../../src/index.js';
import { parseV1, parseV1Line } from '../../src/protocol/v1.js';
import { text } from './fixtures.js';

const request = 'GET / HTTP/1.1\r\n\r\n';

/** The same bytes as a Buffer, a plain Uint8Array, and a Uint8Array view into the middle of a larger buffer. */
function forms(b: Uint8Array): [string, Uint8Array][] {
  const backing = new Uint8Array(b.length + 7);
  backing.set(b, 3);
  return [
    ['Buffer', Buffer.from(b)],
    ['Uint8Array', new Uint8Array(b)],
    ['Uint8Array view at offset 3', new Uint8Array(backing.buffer, 3, b.length)],
  ];
}

function ok(r: ParseResult) {
  assert.equal(r.status, 'ok', r.status === 'invalid' ? r.error.code : r.status);
  return r as Extract<ParseResult, { status: 'ok' }>;
}

describe('v1: whole TCP lines', () => {
  const cases: { name: string; line: string; source: [string, number]; destination: [string, number] }[] = [
    {
      name: 'TCP4 typical',
      line: 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n',
      source: ['203.0.113.7', 51000],
      destination: ['10.0.0.5', 443],
    },
    { name: 'TCP4 zeros', line: 'PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n', source: ['0.0.0.0', 0], destination: ['0.0.0.0', 0] },
    {
      name: 'TCP4 maxima',
      line: 'PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n',
      source: ['255.255.255.255', 65535],
      destination: ['255.255.255.255', 65535],
    },
    {
      name: 'TCP4 one-digit octets',
      line: 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n',
      source: ['1.2.3.4', 1],
      destination: ['5.6.7.8', 2],
    },
    {
      name: 'TCP4 octets of every width',
      line: 'PROXY TCP4 10.200.3.99 100.0.20.1 80 8080\r\n',
      source: ['10.200.3.99', 80],
      destination: ['100.0.20.1', 8080],
    },
    {
      name: 'TCP4 octet 0 inside',
      line: 'PROXY TCP4 10.0.0.1 192.0.2.0 10 20\r\n',
      source: ['10.0.0.1', 10],
      destination: ['192.0.2.0', 20],
    },
    {
      name: 'TCP6 typical',
      line: 'PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n',
      source: ['2001:db8::7', 51000],
      destination: ['2001:db8::1', 443],
    },
    {
      name: 'TCP6 unspecified and loopback',
      line: 'PROXY TCP6 :: ::1 0 65535\r\n',
      source: ['::', 0],
      destination: ['::1', 65535],
    },
  ];
  for (const c of cases) {
    for (const trailer of ['', request]) {
      for (const [form, bytes] of forms(text(c.line + trailer))) {
        it(`${c.name}${trailer ? ', data after it' : ''} (${form})`, () => {
          const r = ok(parseProxyHeader(bytes));
          assert.equal(r.length, c.line.length);
          assert.deepEqual(r.header, {
            version: 1,
            command: 'proxy',
            family: c.line.startsWith('PROXY TCP6') ? 'IPv6' : 'IPv4',
            transport: 'stream',
            source: { address: c.source[0], port: c.source[1] },
            destination: { address: c.destination[0], port: c.destination[1] },
            tlvs: [],
          });
          assert.deepEqual(parseV1Line(bytes), r);
        });
      }
    }
  }
});

describe('v1 TCP6: the address comes back in RFC 5952 form whatever the text', () => {
  const cases: { name: string; input: string; expected: string }[] = [
    { name: 'already canonical', input: '2001:db8::1', expected: '2001:db8::1' },
    { name: 'upper case', input: '2001:DB8::ABCD', expected: '2001:db8::abcd' },
    { name: 'leading zeros', input: '2001:0db8:0000:0000:0000:0000:0000:0001', expected: '2001:db8::1' },
    { name: 'zeros not compressed', input: '2001:db8:0:0:0:0:0:1', expected: '2001:db8::1' },
    { name: ':: for a single zero group', input: '2001:db8:1:2:3:4::5', expected: '2001:db8:1:2:3:4:0:5' },
    { name: ':: on the shorter run', input: '1::2:0:0:0:3', expected: '1:0:0:2::3' },
    { name: ':: on the later of equal runs', input: '1:0:0:2::3:4', expected: '1::2:0:0:3:4' },
    { name: 'all eight groups', input: '1:2:3:4:5:6:7:8', expected: '1:2:3:4:5:6:7:8' },
    { name: 'trailing ::', input: '1::', expected: '1::' },
    { name: 'all zeros spelled out', input: '0:0:0:0:0:0:0:0', expected: '::' },
    { name: 'IPv4-mapped in hex', input: '::ffff:c000:201', expected: '::ffff:192.0.2.1' },
    { name: 'IPv4-mapped spelled out', input: '0:0:0:0:0:FFFF:0A00:0001', expected: '::ffff:10.0.0.1' },
  ];
  for (const c of cases) {
    for (const [form, bytes] of forms(text(`PROXY TCP6 ${c.input} ${c.input} 1 2\r\n`))) {
      it(`${c.name} (${form})`, () => {
        const r = ok(parseProxyHeader(bytes));
        assert.equal(r.header.source?.address, c.expected);
        assert.equal(r.header.destination?.address, c.expected);
      });
    }
  }
  it('a canonical source beside a non-canonical destination, and the reverse', () => {
    const a = ok(parseProxyHeader(text('PROXY TCP6 2001:db8::1 2001:DB8:0:0::2 1 2\r\n')));
    assert.deepEqual([a.header.source?.address, a.header.destination?.address], ['2001:db8::1', '2001:db8::2']);
    const b = ok(parseProxyHeader(text('PROXY TCP6 2001:DB8:0:0::2 2001:db8::1 1 2\r\n')));
    assert.deepEqual([b.header.source?.address, b.header.destination?.address], ['2001:db8::2', '2001:db8::1']);
  });
});

describe('v1: what is not a whole valid TCP line is decided the long way', () => {
  const cases: { name: string; input: string; status: string; code?: string }[] = [
    { name: 'octet of four digits', input: 'PROXY TCP4 1.2.3.1234 1.2.3.4 1 2\r\n', status: 'invalid', code: ErrorCodes.ADDRESS },
    { name: 'five octets', input: 'PROXY TCP4 1.2.3.4.5 1.2.3.4 1 2\r\n', status: 'invalid', code: ErrorCodes.ADDRESS },
    {
      name: 'bad destination address',
      input: 'PROXY TCP4 1.2.3.4 1.2.3.04 1 2\r\n',
      status: 'invalid',
      code: ErrorCodes.ADDRESS,
    },
    { name: 'bad TCP6 destination address', input: 'PROXY TCP6 ::1 ::1:: 1 2\r\n', status: 'invalid', code: ErrorCodes.ADDRESS },
    { name: 'port of six digits', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 123456 2\r\n', status: 'invalid', code: ErrorCodes.PORT },
    {
      name: 'destination port leading zero',
      input: 'PROXY TCP4 1.2.3.4 1.2.3.4 1 02\r\n',
      status: 'invalid',
      code: ErrorCodes.PORT,
    },
    { name: 'destination port 65536', input: 'PROXY TCP6 ::1 ::1 1 65536\r\n', status: 'invalid', code: ErrorCodes.PORT },
    // The line's shape is decided before its fields: a bad address in a line with an extra field is malformed.
    {
      name: 'bad address and an extra field',
      input: 'PROXY TCP4 1.2.3.256 1.2.3.4 1 2 3\r\n',
      status: 'invalid',
      code: ErrorCodes.MALFORMED,
    },
    {
      name: 'bad address, CR without LF',
      input: 'PROXY TCP4 1.2.3.256 1.2.3.4 1 2\rX',
      status: 'invalid',
      code: ErrorCodes.MALFORMED,
    },
    // And nothing is decided about the fields before the CRLF has arrived.
    { name: 'bad address, no CRLF yet', input: 'PROXY TCP4 1.2.3.04 1.2.3.4 1 2', status: 'incomplete' },
    { name: 'valid fields, CR without its LF yet', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r', status: 'incomplete' },
    { name: 'TCP6 line cut after the ports', input: 'PROXY TCP6 ::1 ::1 1 2', status: 'incomplete' },
  ];
  for (const c of cases) {
    for (const [form, bytes] of forms(text(c.input))) {
      it(`${c.name} (${form})`, () => {
        const r = parseProxyHeader(bytes);
        assert.equal(r.status, c.status);
        if (c.code) assert.equal((r as Extract<ParseResult, { status: 'invalid' }>).error.code, c.code);
        assert.deepEqual(parseV1Line(bytes), r);
      });
    }
  }
});

describe('v1: the one-pass reading and the long way agree', () => {
  // Lines built from address-like and number-like pieces, then mutated, as the fuzz test does.
  const pieces = '0123456789.:abcdefABCDEF x\r\n\x00';
  const field = fc.oneof(
    fc.ipV4(),
    fc.ipV6(),
    fc.ipV4Extended(),
    fc.integer({ min: 0, max: 70000 }).map(String),
    fc.array(fc.constantFrom(...pieces), { maxLength: 40 }).map((a) => a.join('')),
    fc.constantFrom('0', '00', '01', '255', '256', '65535', '65536', '::', '1::', '::ffff:1.2.3.4', '1:2:3:4:5:6:7::'),
  );
  const port = fc.integer({ min: 0, max: 65535 });
  const trailer = fc.constantFrom('\r\n', `\r\n${request}`);
  const validLine = fc.oneof(
    fc
      .tuple(fc.ipV4(), fc.ipV4(), port, port, trailer)
      .map(([s, d, sp, dp, end]) => text(`PROXY TCP4 ${s} ${d} ${sp} ${dp}${end}`)),
    fc
      .tuple(fc.ipV6(), fc.ipV6(), port, port, trailer)
      .map(([s, d, sp, dp, end]) => text(`PROXY TCP6 ${s} ${d} ${sp} ${dp}${end}`)),
  );
  const noisyLine = fc
    .tuple(
      fc.constantFrom('TCP4', 'TCP6', 'UNKNOWN', 'TCP5'),
      fc.array(field, { maxLength: 6 }),
      fc.constantFrom(' ', '  '),
      fc.constantFrom('\r\n', '\r', '\n', '', `\r\n${request}`),
    )
    .map(([proto, fields, sep, end]) => text(`PROXY ${proto} ${fields.join(sep)}${end}`));
  const line = fc.oneof(validLine, noisyLine);
  const mutated = fc.tuple(line, fc.array(fc.tuple(fc.nat(), fc.nat(255), fc.nat(3)), { maxLength: 3 })).map(([b, edits]) => {
    let a = Array.from(b);
    for (const [at, value, kind] of edits) {
      const i = a.length === 0 ? 0 : at % a.length;
      if (kind === 0) a[i] = value;
      else if (kind === 1) a.splice(i, 0, value);
      else if (kind === 2) a.splice(i, 1);
      else a = a.slice(0, i);
    }
    return new Uint8Array(a);
  });

  it('on 10,000 generated lines and every prefix of them, as Buffer and as Uint8Array', () => {
    let valid = 0;
    fc.assert(
      fc.property(fc.oneof(line, mutated), (b) => {
        // Both take a line whose signature the caller has checked.
        if (Buffer.from(b.subarray(0, 5)).toString('latin1') !== 'PROXY') return;
        for (let n = 5; n <= b.length; n++) {
          for (const bytes of [Buffer.from(b.subarray(0, n)), new Uint8Array(b.subarray(0, n))]) {
            const r = parseV1(bytes);
            assert.deepEqual(r, parseV1Line(bytes));
            if (r.status === 'ok' && r.header.family !== 'unspec') valid++;
          }
        }
      }),
      { numRuns: 10_000 },
    );
    // The generator reaches the one-pass reading, not only the errors.
    assert.ok(valid > 1000, `${valid} valid TCP lines`);
  });

  it('accepts exactly the fields node:net and the spec accept, and names the first bad one', () => {
    // Printable pieces without spaces: the line's shape is always right, so only the fields and its length decide.
    const word = fc
      .array(fc.constantFrom(...'0123456789.:abcdefABCDEF%x'), { minLength: 1, maxLength: 40 })
      .map((a) => a.join(''));
    // Mostly valid octets, so that one bad octet among valid ones is common.
    const octet = fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 255 }).map(String), weight: 8 },
      { arbitrary: fc.constantFrom('00', '01', '001', '0255', '256', '299', '1000'), weight: 1 },
    );
    const quad = fc
      .oneof(
        { arbitrary: fc.array(octet, { minLength: 4, maxLength: 4 }), weight: 4 },
        { arbitrary: fc.array(octet, { minLength: 3, maxLength: 5 }), weight: 1 },
      )
      .map((a) => a.join('.'));
    const group = fc.array(fc.constantFrom(...'0123456789abcdefABCDEF'), { minLength: 1, maxLength: 5 }).map((a) => a.join(''));
    const groups = fc.tuple(fc.array(group, { maxLength: 9 }), fc.array(group, { maxLength: 9 }), fc.boolean());
    const hexText = groups
      .map(([a, b, gap]) => (gap ? `${a.join(':')}::${b.join(':')}` : [...a, ...b].join(':')))
      .filter((a) => a !== '');
    const address = fc.oneof(fc.ipV4(), fc.ipV4Extended(), quad, fc.ipV6(), hexText, word);
    const portText = fc.oneof(fc.integer({ min: 0, max: 70000 }).map(String), fc.constantFrom('00', '01', '065535'), word);
    const validPort = (p: string) => /^(0|[1-9][0-9]{0,4})$/.test(p) && Number(p) <= 65535;
    fc.assert(
      fc.property(fc.constantFrom('TCP4', 'TCP6'), address, address, portText, portText, (proto, src, dst, sp, dp) => {
        // IPv6 text without a zone (a dotted IPv4 tail, as inet_ntop writes mapped addresses, is read).
        const valid = proto === 'TCP4' ? isIPv4 : (a: string) => isIPv6(a) && !a.includes('%');
        const line = `PROXY ${proto} ${src} ${dst} ${sp} ${dp}\r\n`;
        const r = parseProxyHeader(text(line));
        if (line.length > 107) {
          assert.equal(r.status === 'invalid' && r.error.code, ErrorCodes.TOO_LONG);
        } else if (!valid(src) || !valid(dst)) {
          assert.equal(r.status === 'invalid' && r.error.code, ErrorCodes.ADDRESS);
        } else if (!validPort(sp) || !validPort(dp)) {
          assert.equal(r.status === 'invalid' && r.error.code, ErrorCodes.PORT);
        } else {
          assert.equal(r.status, 'ok');
        }
      }),
      { numRuns: 20_000 },
    );
  });
});
