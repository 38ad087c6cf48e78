import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeProxyHeader } from '../../src/index.js';

describe('encodeProxyHeader', () => {
  it('writes the spec v1 line', () => {
    const b = encodeProxyHeader({
      version: 1,
      source: { address: '192.168.0.1', port: 56324 },
      destination: { address: '192.168.0.11', port: 443 },
    });
    assert.equal(Buffer.from(b).toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
  });
  it('writes v1 TCP6 without dotted IPv4', () => {
    const b = encodeProxyHeader({
      version: 1,
      source: { address: '::ffff:10.0.0.1', port: 1 },
      destination: { address: '2001:DB8::1', port: 2 },
    });
    assert.equal(Buffer.from(b).toString('latin1'), 'PROXY TCP6 ::ffff:a00:1 2001:db8::1 1 2\r\n');
  });
  it('writes UNKNOWN for v1 LOCAL', () => {
    assert.equal(Buffer.from(encodeProxyHeader({ version: 1, command: 'local' })).toString(), 'PROXY UNKNOWN\r\n');
  });
  it('writes the v2 fixed part', () => {
    const b = Buffer.from(
      encodeProxyHeader({
        version: 2,
        source: { address: '192.0.2.1', port: 55470 },
        destination: { address: '198.51.100.1', port: 443 },
      }),
    );
    assert.equal(b.toString('hex'), '0d0a0d0a000d0a515549540a2111000cc0000201c6336401d8ae01bb');
  });
  const bad: { name: string; init: Parameters<typeof encodeProxyHeader>[0] }[] = [
    {
      name: 'not an address',
      init: { version: 2, source: { address: 'example.com', port: 1 }, destination: { address: '1.2.3.4', port: 1 } },
    },
    {
      name: 'port out of range',
      init: { version: 1, source: { address: '1.2.3.4', port: 70000 }, destination: { address: '1.2.3.4', port: 1 } },
    },
    {
      name: 'IPv6 into IPv4',
      init: { version: 2, family: 'IPv4', source: { address: '::1', port: 1 }, destination: { address: '1.2.3.4', port: 1 } },
    },
    { name: 'TLVs on v1', init: { version: 1, tlvs: [{ type: 1, value: new Uint8Array(1) }] } },
    { name: 'PROXY without destination', init: { version: 2, source: { address: '1.2.3.4', port: 1 } } },
    { name: 'version 3', init: { version: 3 as 2 } },
    { name: 'an unknown command', init: { version: 2, command: 'foo' as 'proxy' } },
    {
      name: 'an unknown family',
      init: {
        version: 2,
        family: 'IPX' as 'IPv4',
        source: { address: '1.2.3.4', port: 1 },
        destination: { address: '1.2.3.4', port: 1 },
      },
    },
    { name: 'an unknown transport', init: { version: 2, transport: 'sctp' as 'stream' } },
    {
      name: 'UDP on v1',
      init: {
        version: 1,
        transport: 'dgram',
        source: { address: '1.2.3.4', port: 1 },
        destination: { address: '1.2.3.4', port: 1 },
      },
    },
    { name: 'tlvs that are no array', init: { version: 2, command: 'local', tlvs: 'x' as never } },
    { name: 'a TLV type above 255', init: { version: 2, command: 'local', tlvs: [{ type: 300, value: new Uint8Array(1) }] } },
    {
      name: 'a TLV value that is no Uint8Array',
      init: { version: 2, command: 'local', tlvs: [{ type: 4, value: 'x' as never }] },
    },
    { name: 'no version', init: {} as { version: 2 } },
  ];
  for (const c of bad) it(`throws TypeError: ${c.name}`, () => assert.throws(() => encodeProxyHeader(c.init), TypeError));
});
