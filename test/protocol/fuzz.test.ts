// A fuzz run: mutated real headers (bit flips, splices, truncations, duplications) through the parser.
// Invariants: never throws, never claims bytes it was not given, errors carry a code, and whatever parses
// is stable — re-encoding the parsed header and parsing it again gives the same header.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { encodeProxyHeader, type ProxyHeader, parseProxyHeader } from '../../src/index.js';
import { fixtures } from './fixtures.js';

const seeds = Object.values(fixtures).map((b) => new Uint8Array(b));

const mutate = fc
  .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.nat(255), fc.nat(3)), { minLength: 1, maxLength: 8 }))
  .map(([seed, edits]) => {
    let b = Array.from(seed);
    for (const [at, value, kind] of edits) {
      const i = b.length === 0 ? 0 : at % b.length;
      if (kind === 0)
        b[i] = value; // overwrite
      else if (kind === 1)
        b.splice(i, 0, value); // insert
      else if (kind === 2)
        b.splice(i, 1); // delete
      else b = b.slice(0, i); // truncate
    }
    return new Uint8Array(b);
  });

function comparable(h: ProxyHeader) {
  return { ...h, tlvs: h.tlvs.map((t) => ({ type: t.type, value: [...t.value] })) };
}

it('fuzz: 50,000 mutated headers keep every parser invariant', () => {
  fc.assert(
    fc.property(mutate, (bytes) => {
      const r = parseProxyHeader(bytes);
      if (r.status === 'invalid') assert.match(r.error.code, /^ERR_PROXY_[A-Z_]+$/);
      if (r.status !== 'ok') return;
      assert.ok(r.length > 0 && r.length <= bytes.length);
      const h = r.header;
      if (h.version === 2 && h.command === 'local') return; // LOCAL keeps no addresses to re-encode
      if (h.family === 'unix') return;
      const again = parseProxyHeader(
        encodeProxyHeader({
          version: h.version,
          command: h.command,
          family: h.family,
          transport: h.transport,
          source: h.source,
          destination: h.destination,
          tlvs: h.version === 2 ? h.tlvs : undefined,
        }),
      );
      assert.equal(again.status, 'ok');
      if (again.status === 'ok') assert.deepEqual(comparable(again.header), comparable(h));
    }),
    { numRuns: 50_000 },
  );
});
