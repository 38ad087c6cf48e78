import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import type { ClientIpOptions } from '../../src/client-ip.js';
import { compileClientIp } from '../../src/client-ip.js';

function fakeReq(remoteAddress: string, headers: Record<string, string> = {}): IncomingMessage {
  const rawHeaders = Object.entries(headers).flat();
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { socket: { remoteAddress, remotePort: 4242 }, headers: lower, rawHeaders } as unknown as IncomingMessage;
}

describe('compileClientIp', () => {
  const cases: {
    name: string;
    options?: ClientIpOptions;
    peer: string;
    headers?: Record<string, string>;
    ip: string;
    port?: number;
    xff?: string;
  }[] = [
    { name: 'socket address when no PROXY info', peer: '127.0.0.1', ip: '127.0.0.1', port: 4242, xff: '127.0.0.1' },
    { name: 'IPv4-mapped IPv6 is unmapped', peer: '::ffff:192.0.2.9', ip: '192.0.2.9', xff: '192.0.2.9' },
    { name: 'IPv6 stays IPv6', peer: '2001:db8::1', ip: '2001:db8::1' },
    {
      name: 'spoofed XFF is replaced',
      peer: '192.0.2.9',
      headers: { 'X-Forwarded-For': '6.6.6.6' },
      ip: '192.0.2.9',
      xff: '192.0.2.9',
    },
    {
      name: 'append keeps the list and adds the connection',
      options: { forwardedFor: 'append' },
      peer: '192.0.2.9',
      headers: { 'X-Forwarded-For': '6.6.6.6' },
      ip: '192.0.2.9',
      xff: '6.6.6.6, 192.0.2.9',
    },
    {
      name: 'preserve leaves it',
      options: { forwardedFor: 'preserve' },
      peer: '192.0.2.9',
      headers: { 'X-Forwarded-For': '6.6.6.6' },
      ip: '192.0.2.9',
      xff: '6.6.6.6',
    },
    {
      name: 'XFF ignored from untrusted hop',
      options: { trustForwardedFrom: ['10.0.0.0/8'] },
      peer: '192.0.2.9',
      headers: { 'X-Forwarded-For': '6.6.6.6' },
      ip: '192.0.2.9',
    },
    {
      name: 'walks right to left past trusted hops',
      options: { trustForwardedFrom: ['10.0.0.0/8'] },
      peer: '10.0.0.9',
      headers: { 'X-Forwarded-For': '6.6.6.6, 198.51.100.1, 10.1.1.1' },
      ip: '198.51.100.1',
      port: undefined,
      xff: '198.51.100.1',
    },
    {
      name: 'stops at garbage',
      options: { trustForwardedFrom: 'uniquelocal' },
      peer: '10.0.0.9',
      headers: { 'X-Forwarded-For': '1.1.1.1, bogus' },
      ip: '10.0.0.9',
      port: 4242,
    },
    {
      name: 'a forwarded IPv6 address in its canonical form; IPv4-mapped as a.b.c.d',
      options: { trustForwardedFrom: ['10.0.0.0/8'] },
      peer: '10.0.0.9',
      headers: { 'X-Forwarded-For': '2001:DB8:0:0::1' },
      ip: '2001:db8::1',
      xff: '2001:db8::1',
    },
    {
      name: 'IPv4-mapped in hex groups, upper case: the IPv4 client',
      options: { trustForwardedFrom: ['10.0.0.0/8'] },
      peer: '10.0.0.9',
      headers: { 'X-Forwarded-For': '::FFFF:102:304' },
      ip: '1.2.3.4',
    },
    {
      name: 'a trusted hop written in another form is still trusted',
      options: { trustForwardedFrom: ['10.0.0.0/8'] },
      peer: '10.0.0.9',
      headers: { 'X-Forwarded-For': '198.51.100.1, ::ffff:a00:1' },
      ip: '198.51.100.1',
    },
    {
      name: "an IPv6 zone index ends the walk (no client of ours is on the sender's link)",
      options: { trustForwardedFrom: ['10.0.0.0/8'] },
      peer: '10.0.0.9',
      headers: { 'X-Forwarded-For': 'fe80::1%eth0' },
      ip: '10.0.0.9',
      port: 4242,
    },
    {
      name: 'all hops trusted ends at the leftmost',
      options: { trustForwardedFrom: ['10.0.0.0/8'] },
      peer: '10.0.0.9',
      headers: { 'X-Forwarded-For': '10.0.0.1, 10.0.0.2' },
      ip: '10.0.0.1',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const req = fakeReq(c.peer, c.headers);
      const r = compileClientIp(c.options)(req);
      assert.equal(r.ip, c.ip);
      if ('port' in c) assert.equal(r.port, c.port);
      if (c.xff !== undefined) assert.equal(req.headers['x-forwarded-for'], c.xff);
    });
  }

  it('replace neutralises every client-IP header, in headers and rawHeaders', () => {
    const req = fakeReq('192.0.2.9', {
      'X-Forwarded-For': '6.6.6.6',
      'X-Real-IP': '6.6.6.6',
      'X-Client-IP': '6.6.6.6',
      'True-Client-IP': '6.6.6.6',
      'CF-Connecting-IP': '6.6.6.6',
      Forwarded: 'for=6.6.6.6',
      Accept: '*/*',
    });
    compileClientIp()(req);
    assert.equal(req.headers['x-real-ip'], '192.0.2.9');
    for (const h of ['x-client-ip', 'true-client-ip', 'cf-connecting-ip', 'forwarded'])
      assert.equal(req.headers[h], undefined, h);
    assert.ok(!req.rawHeaders.includes('6.6.6.6') && !req.rawHeaders.includes('for=6.6.6.6'));
    assert.deepEqual(req.rawHeaders, ['Accept', '*/*', 'X-Forwarded-For', '192.0.2.9', 'X-Real-IP', '192.0.2.9']);
  });

  it('append adds the connection to rawHeaders too, as one more X-Forwarded-For line', () => {
    const req = fakeReq('192.0.2.9', { 'X-Forwarded-For': '6.6.6.6', Accept: '*/*' });
    compileClientIp({ forwardedFor: 'append' })(req);
    assert.deepEqual(req.rawHeaders, ['X-Forwarded-For', '6.6.6.6', 'Accept', '*/*', 'X-Forwarded-For', '192.0.2.9']);
  });

  it('bad options throw a TypeError at compile time', () => {
    assert.throws(() => compileClientIp({ forwardedFor: 'drop' as never }), TypeError);
    assert.throws(() => compileClientIp({ trustForwardedFrom: ['300.1.1.1'] }), TypeError);
  });

  it('does not mutate options', () => {
    const o = Object.freeze({ trustForwardedFrom: Object.freeze(['10.0.0.0/8']) });
    compileClientIp(o);
    assert.deepEqual(o, { trustForwardedFrom: ['10.0.0.0/8'] });
  });
});
