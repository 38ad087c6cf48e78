import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeProxyHeader, type ProxyHeaderInit, parseProxyHeader } from '../../src/index.js';

const port = fc.integer({ min: 0, max: 65535 });
const v4 = fc.ipV4();
const v6 = fc.ipV6();
const tlv = fc.record({
  // Types whose values the parser validates are generated separately below.
  type: fc.integer({ min: 0, max: 255 }).filter((t) => ![0x03, 0x05, 0x20, 0xe0, 0xea, 0xee].includes(t)),
  value: fc.uint8Array({ maxLength: 64 }),
});

const v2Header: fc.Arbitrary<ProxyHeaderInit> = fc.oneof(
  fc.record({
    version: fc.constant(2 as const),
    family: fc.constant('IPv4' as const),
    source: fc.record({ address: v4, port }),
    destination: fc.record({ address: v4, port }),
    transport: fc.constantFrom('stream' as const, 'dgram' as const, 'unspec' as const),
    tlvs: fc.array(tlv, { maxLength: 4 }),
  }),
  fc.record({
    version: fc.constant(2 as const),
    family: fc.constant('IPv6' as const),
    source: fc.record({ address: v6, port }),
    destination: fc.record({ address: v6, port }),
    transport: fc.constantFrom('stream' as const, 'dgram' as const),
    tlvs: fc.array(tlv, { maxLength: 4 }),
  }),
  fc.record({
    version: fc.constant(2 as const),
    command: fc.constant('local' as const),
    family: fc.constant('unspec' as const),
    tlvs: fc.array(tlv, { maxLength: 2 }),
  }),
);
const v1Header: fc.Arbitrary<ProxyHeaderInit> = fc.oneof(
  fc.record({
    version: fc.constant(1 as const),
    source: fc.record({ address: v4, port }),
    destination: fc.record({ address: v4, port }),
  }),
  fc.record({
    version: fc.constant(1 as const),
    source: fc.record({ address: v6, port }),
    destination: fc.record({ address: v6, port }),
  }),
  fc.constant<ProxyHeaderInit>({ version: 1, family: 'unspec' }),
);
const anyHeader = fc.oneof(v1Header, v2Header);
const anyEncoded = fc.tuple(anyHeader, fc.boolean()).map(([h, crc]) => encodeProxyHeader(h, { crc32c: crc && h.version === 2 }));

/** What an address must come back as: the canonical form Node itself would print. */
function canonical(a: string): string {
  return new URL(`http://[${a}]/`).hostname
    .slice(1, -1)
    .replace(/^::ffff:([0-9a-f]+):([0-9a-f]+)$/, (_m, hi: string, lo: string) => {
      const h = Number.parseInt(hi, 16);
      const l = Number.parseInt(lo, 16);
      return `::ffff:${h >> 8}.${h & 255}.${l >> 8}.${l & 255}`;
    });
}

describe('codec properties', () => {
  it('encode → parse round-trips every header, with the exact length', () => {
    fc.assert(
      fc.property(anyHeader, fc.boolean(), fc.uint8Array({ maxLength: 32 }), (h, crc, trailer) => {
        const bytes = encodeProxyHeader(h, { crc32c: crc && h.version === 2 });
        const r = parseProxyHeader(Buffer.concat([bytes, trailer]));
        assert.equal(r.status, 'ok');
        if (r.status !== 'ok') return;
        assert.equal(r.length, bytes.length);
        assert.equal(r.header.version, h.version);
        if (h.source && h.destination && h.family !== 'unspec') {
          const expect = (a: string) => (isIP(a) === 4 ? a : canonical(a));
          assert.equal(r.header.source?.address, expect(h.source.address));
          assert.equal(r.header.destination?.address, expect(h.destination.address));
          assert.equal(r.header.source?.port, h.source.port);
          assert.equal(r.header.destination?.port, h.destination.port);
        } else {
          assert.equal(r.header.source, undefined);
        }
        if (h.version === 2) {
          const expected = (h.tlvs ?? []).map((t) => ({ type: t.type, value: [...t.value] }));
          const got = r.header.tlvs.map((t) => ({ type: t.type, value: [...t.value] }));
          assert.deepEqual(crc ? got.slice(0, -1) : got, expected);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('every strict prefix of a valid header is incomplete', () => {
    fc.assert(
      fc.property(anyEncoded, (bytes) => {
        for (let n = 0; n < bytes.length; n++) {
          const r = parseProxyHeader(bytes.subarray(0, n));
          assert.equal(r.status, 'incomplete', `prefix of ${n}/${bytes.length}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes never throw and never report a length beyond the input', () => {
    const prefixed = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.concat([Buffer.from('PROXY '), b])),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), b])),
      fc
        .tuple(fc.constantFrom('TCP4 ', 'TCP6 ', 'UNKNOWN '), fc.string({ maxLength: 100 }))
        .map(([p, s]) => Buffer.from(`PROXY ${p}${s}\r\n`, 'latin1')),
    );
    fc.assert(
      fc.property(prefixed, (b) => {
        const r = parseProxyHeader(b);
        assert.ok(['ok', 'incomplete', 'none', 'invalid'].includes(r.status));
        if (r.status === 'ok') assert.ok(r.length > 0 && r.length <= b.length);
        if (r.status === 'invalid') assert.match(r.error.code, /^ERR_PROXY_/);
      }),
      { numRuns: 20000 },
    );
  });

  it('mutating one byte of a valid header never throws nor overruns', () => {
    fc.assert(
      fc.property(anyEncoded, fc.nat(), fc.integer({ min: 0, max: 255 }), (bytes, at, value) => {
        const b = Buffer.from(bytes);
        b[at % b.length] = value;
        const r = parseProxyHeader(b);
        if (r.status === 'ok') assert.ok(r.length <= b.length);
      }),
      { numRuns: 20000 },
    );
  });
});
