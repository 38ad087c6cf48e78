// compileTrust: the trust matcher behind trustedProxies and trustForwardedFrom, table-driven as proxy-addr's
// tests are.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileTrust, type TrustList } from '../../src/index.js';

const matches: { name: string; list: TrustList; yes: string[]; no: string[] }[] = [
  { name: 'one IPv4 address', list: '10.0.0.1', yes: ['10.0.0.1', '::ffff:10.0.0.1'], no: ['10.0.0.2', '10.0.0.10', '::1'] },
  { name: 'IPv4 /32', list: ['10.0.0.1/32'], yes: ['10.0.0.1'], no: ['10.0.0.0', '10.0.0.2'] },
  { name: 'IPv4 /24', list: ['192.168.1.0/24'], yes: ['192.168.1.0', '192.168.1.255'], no: ['192.168.0.255', '192.168.2.0'] },
  { name: 'IPv4 /8', list: ['10.0.0.0/8'], yes: ['10.255.255.255', '10.0.0.0'], no: ['11.0.0.0', '9.255.255.255'] },
  { name: 'IPv4 /0', list: ['0.0.0.0/0'], yes: ['1.2.3.4', '255.255.255.255', '::ffff:8.8.8.8'], no: ['::1', '2001:db8::1'] },
  { name: 'IPv4 prefix with host bits set', list: ['10.1.2.3/16'], yes: ['10.1.0.0', '10.1.255.255'], no: ['10.2.0.0'] },
  { name: 'IPv6 address', list: ['2001:db8::1'], yes: ['2001:db8::1', '2001:0db8:0:0:0:0:0:1'], no: ['2001:db8::2', '::1'] },
  {
    name: 'IPv6 /64',
    list: ['2001:db8:1::/64'],
    yes: ['2001:db8:1::1', '2001:db8:1:0:ffff::'],
    no: ['2001:db8:2::1', '10.0.0.1'],
  },
  { name: 'IPv6 /128', list: ['::1/128'], yes: ['::1'], no: ['::2', '127.0.0.1'] },
  { name: 'IPv6 /0', list: ['::/0'], yes: ['::1', 'fe80::1'], no: [] },
  { name: 'IPv4-mapped IPv6 checked as IPv4', list: ['10.0.0.0/8'], yes: ['::ffff:10.9.8.7'], no: ['::ffff:11.0.0.1'] },
  {
    name: 'loopback preset',
    list: 'loopback',
    yes: ['127.0.0.1', '127.255.0.1', '::1', '::ffff:127.0.0.1'],
    no: ['128.0.0.1', '::2'],
  },
  {
    name: 'a comma-separated string, as Express takes it',
    list: 'loopback, 10.0.0.0/8,2001:db8::/32',
    yes: ['127.0.0.1', '10.1.2.3', '2001:db8::7'],
    no: ['11.0.0.1', '2001:db9::1'],
  },
  // A link-local peer may be reported with its zone (fe80::1%eth0): it matches as the address.
  {
    name: 'linklocal preset',
    list: ['linklocal'],
    yes: ['169.254.1.1', 'fe80::1', 'febf::1', 'fe80::1%eth0'],
    no: ['169.253.1.1', 'fec0::1'],
  },
  {
    name: 'uniquelocal preset',
    list: ['uniquelocal'],
    yes: ['10.1.1.1', '172.16.0.1', '172.31.255.255', '192.168.0.1', 'fc00::1', 'fdff::1'],
    no: ['172.32.0.1', '192.169.0.1', 'fe00::1', '8.8.8.8'],
  },
  {
    name: 'presets and CIDRs mixed',
    list: ['loopback', '203.0.113.0/24'],
    yes: ['127.0.0.1', '203.0.113.9'],
    no: ['203.0.114.1'],
  },
  { name: 'empty list trusts nobody', list: [], yes: [], no: ['127.0.0.1', '::1'] },
  {
    name: 'non-addresses never match',
    list: ['0.0.0.0/0', '::/0'],
    yes: [],
    no: ['', 'localhost', '10.0.0.1:80', '[::1]', ' 10.0.0.1', 'constructor'],
  },
];

const bad: { name: string; list: unknown }[] = [
  { name: 'not a string or array', list: 42 },
  { name: 'an object', list: { loopback: true } },
  { name: 'an entry that is not a string', list: ['10.0.0.1', 7] },
  { name: 'a host name', list: ['localhost'] },
  { name: 'an Object.prototype key: constructor', list: ['constructor'] },
  { name: 'an Object.prototype key: __proto__', list: ['__proto__'] },
  { name: 'an Object.prototype key: toString', list: ['toString'] },
  { name: 'a preset with different case', list: ['Loopback'] },
  { name: 'IPv4 prefix above 32', list: ['10.0.0.0/33'] },
  { name: 'IPv6 prefix above 128', list: ['::/129'] },
  { name: 'a negative prefix', list: ['10.0.0.0/-1'] },
  { name: 'a prefix with a sign', list: ['10.0.0.0/+8'] },
  { name: 'an empty prefix', list: ['10.0.0.0/'] },
  { name: 'a prefix written as a mask', list: ['10.0.0.0/255.0.0.0'] },
  { name: 'a prefix with spaces', list: ['10.0.0.0/ 8'] },
  { name: 'an octet above 255', list: ['10.0.0.256'] },
  { name: 'an empty string', list: [''] },
  { name: 'an empty item in a comma-separated string', list: '10.0.0.1,,10.0.0.2' },
  { name: 'commas inside an array entry', list: ['10.0.0.1,10.0.0.2'] },
  { name: 'a prefix with a leading zero', list: ['10.0.0.0/08'] },
  { name: 'an IPv6 zone index', list: ['fe80::1%eth0'] },
  { name: 'a zone index in a CIDR', list: ['fe80::%eth0/64'] },
];

describe('compileTrust', () => {
  for (const { name, list, yes, no } of matches) {
    it(name, () => {
      const isTrusted = compileTrust(list, 'test');
      for (const a of yes) assert.equal(isTrusted(a), true, `${a} should be trusted`);
      for (const a of no) assert.equal(isTrusted(a), false, `${a} should not be trusted`);
    });
  }
  for (const { name, list } of bad) {
    it(`TypeError naming the option: ${name}`, () => {
      assert.throws(
        () => compileTrust(list as TrustList, 'proxyProtocol.trustedProxies'),
        (e: unknown) => e instanceof TypeError && e.message.startsWith('proxyProtocol.trustedProxies'),
      );
    });
  }
  it('does not modify the list it is given', () => {
    const list = Object.freeze(['loopback', '10.0.0.0/8']);
    compileTrust(list, 'test');
    assert.deepEqual(list, ['loopback', '10.0.0.0/8']);
  });
});
