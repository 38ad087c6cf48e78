import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { it } from 'node:test';
import tls from 'node:tls';
import { rawSocketOf } from '../../src/connection/socket-info.js';
import { certificate, close, listen } from '../helpers.js';

// The connection layer's only private Node access. If this fails after a Node upgrade, TLS sockets lose
// their client address: fix rawSocketOf() before anything else.
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

// The fast way to report the client (reportClient): fill net.Socket's peer cache with the client; the real
// peer is then read with the cache set aside (ConnectionInfo.peer). If this fails after a Node upgrade, the
// public fallback still reports the client, only slower: update reportClient().
it('reportClient() uses the cached peer of net.Socket (Node private field `_peername`); the peer stays readable', async () => {
  const { ConnectionInfo, reportClient } = await import('../../src/connection/socket-info.js');
  const seen: { own: boolean; address?: string; port?: number; family?: string; peer: string; peerPort: boolean }[] = [];
  const server = net.createServer((s) => {
    const info = new ConnectionInfo(s, undefined, { address: '203.0.113.5', port: 4444, family: 'IPv4' }, undefined);
    reportClient(s, info);
    const own = Object.hasOwn(s, 'remoteAddress');
    const { address, port } = info.peer;
    seen.push({ own, address: s.remoteAddress, port: s.remotePort, family: s.remoteFamily, peer: address, peerPort: port > 0 });
    s.destroy();
  });
  const port = await listen(server);
  const c = net.connect(port, '127.0.0.1');
  c.on('error', () => {});
  await once(c, 'close');
  await close(server);
  assert.deepEqual(
    seen,
    [{ own: false, address: '203.0.113.5', port: 4444, family: 'IPv4', peer: '127.0.0.1', peerPort: true }],
    `Node ${process.version}: no _peername cache`,
  );
});
