import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import {
  balancerFacts,
  ConnectionInfo,
  connectionEnds,
  kInfo,
  rawSocketOf,
  reportClient,
} from '../../src/connection/socket-info.js';
import { SslClientFlags, TlvType } from '../../src/protocol/tlv.js';
import type { ProxyHeader, Tlv } from '../../src/protocol/types.js';
import { certificate, close, listen } from '../helpers.js';

// The connection layer's private Node access. If one of these fails after a Node upgrade, fix
// socket-info.ts before anything else.
it('rawSocketOf(tlsSocket) is the accepted TCP socket (Node private field `_parent`)', async () => {
  const raws: net.Socket[] = [];
  const server = tls.createServer(await certificate(), (s) => {
    assert.equal(rawSocketOf(s), raws[0], `Node ${process.version} no longer exposes TLSSocket._parent`);
    s.end('ok');
  });
  server.on('connection', (s: net.Socket) => raws.push(s));
  const port = await listen(server);
  const c = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
  c.on('data', () => {});
  await once(c, 'end');
  assert.equal(raws.length, 1);
  c.destroy();
  await close(server);
});

// The way to report the client (reportClient): the TCP handle answers getpeername with the client, so the
// socket and any TLS socket later made over it report it; the real peer is read from the handle's class
// method (ConnectionInfo.peer). If this fails after a Node upgrade, the public fallback still reports the
// client on the socket itself, but not on a TLS socket made over it: update reportClient().
it('reportClient() answers through the TCP handle (Node private field `_handle`): socket and TLS socket over it report the client; the peer stays readable', async () => {
  const cert = await certificate();
  const seen: Record<string, unknown>[] = [];
  const server = net.createServer((s) => {
    const info = new ConnectionInfo(s, undefined, { address: '203.0.113.5', port: 4444, family: 'IPv4' }, undefined);
    reportClient(s, info);
    const own = Object.hasOwn(s, 'remoteAddress');
    const secure = new tls.TLSSocket(s, { isServer: true, ...cert });
    seen.push({
      own,
      address: s.remoteAddress,
      port: s.remotePort,
      family: s.remoteFamily,
      tlsAddress: secure.remoteAddress,
      tlsPort: secure.remotePort,
      peer: info.peer?.address,
      peerPort: (info.peer?.port ?? 0) > 0,
    });
    secure.destroy();
  });
  const port = await listen(server);
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => {});
  await once(c, 'close');
  await close(server);
  assert.deepEqual(
    seen,
    [
      {
        own: false,
        address: '203.0.113.5',
        port: 4444,
        family: 'IPv4',
        tlsAddress: '203.0.113.5',
        tlsPort: 4444,
        peer: '127.0.0.1',
        peerPort: true,
      },
    ],
    `Node ${process.version}: the TCP handle's getpeername is no longer what net.Socket and TLSSocket ask`,
  );
});

const tlv = (type: number, value: Uint8Array | string): Tlv => ({
  type,
  value: typeof value === 'string' ? new TextEncoder().encode(value) : value,
});

function ssl(client: number, verify: number, sub: Tlv[]): Tlv {
  const body = sub.flatMap((t) => [t.type, t.value.length >> 8, t.value.length & 0xff, ...t.value]);
  return tlv(
    TlvType.SSL,
    new Uint8Array([client, verify >>> 24, (verify >> 16) & 0xff, (verify >> 8) & 0xff, verify & 0xff, ...body]),
  );
}

function headerWith(tlvs: Tlv[]): ProxyHeader {
  return {
    version: 2,
    command: 'proxy',
    family: 'IPv4',
    transport: 'stream',
    source: { address: '203.0.113.7', port: 51000 },
    destination: { address: '10.0.0.5', port: 443 },
    tlvs,
  };
}

/** A socket carrying the info the layer would attach (no network needed). */
function carrying(header: ProxyHeader | undefined): net.Socket {
  const s = new net.Socket();
  const info = new ConnectionInfo(
    s,
    header,
    { address: '203.0.113.7', port: 51000, family: 'IPv4' },
    {
      address: '10.0.0.2',
      port: 40000,
      family: 'IPv4',
    },
  );
  (s as unknown as Record<symbol, unknown>)[kInfo] = info;
  return s;
}

describe('balancerFacts()', () => {
  const cases: { name: string; tlvs: Tlv[]; expected: object }[] = [
    { name: 'no TLVs', tlvs: [], expected: {} },
    {
      name: 'TLS at the balancer: version, cipher, client CN',
      tlvs: [
        ssl(SslClientFlags.SSL | SslClientFlags.CERT_CONN, 0, [
          tlv(TlvType.SSL_VERSION, 'TLSv1.3'),
          tlv(TlvType.SSL_CIPHER, 'TLS_AES_256_GCM_SHA384'),
          tlv(TlvType.SSL_CN, 'Dr. Grey'),
        ]),
      ],
      expected: { tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', clientCn: 'Dr. Grey' } },
    },
    {
      name: 'TLS without a client certificate: no clientCn',
      tlvs: [
        ssl(SslClientFlags.SSL, 0, [tlv(TlvType.SSL_VERSION, 'TLSv1.2'), tlv(TlvType.SSL_CIPHER, 'ECDHE-RSA-AES128-GCM-SHA256')]),
      ],
      expected: { tls: { version: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256' } },
    },
    {
      name: 'SSL TLV of a plain client (flag not set): no tls',
      tlvs: [ssl(0, 0, [tlv(TlvType.SSL_VERSION, 'TLSv1.3')])],
      expected: {},
    },
    { name: 'SSL TLV without a version: no tls', tlvs: [ssl(SslClientFlags.SSL, 0, [])], expected: {} },
    {
      name: 'unique id as text, authority',
      tlvs: [tlv(TlvType.UNIQUE_ID, 'C0A80001:D9E4_0A000005:01BB_6553F2A1_0001:1A2B'), tlv(TlvType.AUTHORITY, 'ehr.example')],
      expected: { uniqueId: 'C0A80001:D9E4_0A000005:01BB_6553F2A1_0001:1A2B', authority: 'ehr.example' },
    },
    {
      name: 'binary unique id: hex',
      tlvs: [tlv(TlvType.UNIQUE_ID, new Uint8Array([0, 1, 0xfe, 0x20]))],
      expected: { uniqueId: '0001fe20' },
    },
    {
      name: 'empty unique id and authority: absent',
      tlvs: [tlv(TlvType.UNIQUE_ID, ''), tlv(TlvType.AUTHORITY, '')],
      expected: {},
    },
    {
      name: 'the first of each type wins; unknown types ignored',
      tlvs: [tlv(0xf0, 'x'), tlv(TlvType.UNIQUE_ID, 'first'), tlv(TlvType.UNIQUE_ID, 'second')],
      expected: { uniqueId: 'first' },
    },
  ];
  for (const { name, tlvs, expected } of cases) {
    it(name, () => {
      const facts = balancerFacts(carrying(headerWith(tlvs)));
      assert.deepEqual(facts, expected);
      assert.ok(Object.isFrozen(facts));
      if ('tls' in facts) assert.ok(Object.isFrozen(facts.tls));
    });
  }

  it('decoded once per connection: every call returns the same object', () => {
    const s = carrying(headerWith([tlv(TlvType.UNIQUE_ID, 'abc')]));
    assert.equal(balancerFacts(s), balancerFacts(s));
  });

  it('sockets the layer did not handle, v1 and header-less connections give one shared empty object', () => {
    const empty = balancerFacts(undefined);
    assert.deepEqual(empty, {});
    assert.equal(balancerFacts(new net.Socket()), empty);
    assert.equal(balancerFacts(carrying(undefined)), empty);
    assert.equal(balancerFacts(carrying({ ...headerWith([]), version: 1 })), empty);
  });

  it('a TLS socket made over a handled socket has its facts and its ends', () => {
    const raw = carrying(headerWith([tlv(TlvType.AUTHORITY, 'ehr.example')]));
    const secure = { _parent: raw } as unknown as tls.TLSSocket; // what the TLSSocket constructor sets
    assert.equal(balancerFacts(secure), balancerFacts(raw));
    assert.deepEqual(connectionEnds(secure), { clientIp: '203.0.113.7', clientPort: 51000, peerIp: '10.0.0.2', peerPort: 40000 });
  });
});
