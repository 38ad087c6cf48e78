// A socket the layer handled, taken further by code that knows nothing of the layer: handed to another server
// with emit('connection') (HTTP and HTTPS on one port), or turned into TLS in place (STARTTLS). The TLS socket
// reports the client as the handled socket does.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { connectionEnds } from '../../src/connection/socket-info.js';
import { getProxyInfo, withProxyProtocol } from '../../src/index.js';
import { certificate, close, listen } from '../helpers.js';

const CLIENT = '198.51.100.22';
const V1 = `PROXY TCP4 ${CLIENT} 10.0.0.5 35646 443\r\n`;

interface Seen {
  scheme: string;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  client: string | undefined;
  peer: string | undefined;
  ends: string | undefined;
}

function seenOf(scheme: string, socket: net.Socket): Seen {
  const info = getProxyInfo(socket);
  return {
    scheme,
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    client: info?.client?.address,
    peer: info?.peer?.address,
    ends: connectionEnds(socket).clientIp,
  };
}

/** Sends the header, then (for TLS) a handshake over the same connection, then one request; returns the response. */
async function request(port: number, secure: boolean): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(V1);
  const s = secure ? tls.connect({ socket, rejectUnauthorized: false, servername: 'localhost' }) : socket;
  if (secure) await once(s, 'secureConnect');
  s.write('GET / HTTP/1.1\r\nHost: ehr.example\r\nConnection: close\r\n\r\n');
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  await once(s, 'end');
  s.destroy();
  return Buffer.concat(chunks).toString();
}

for (const overrideRemoteAddress of [true, false]) {
  describe(`HTTP and HTTPS on one port: a wrapped net.Server sniffs the first byte (overrideRemoteAddress: ${overrideRemoteAddress})`, () => {
    const seen: Seen[] = [];
    let front: net.Server;
    let plain: http.Server;
    let secure: https.Server;
    let port: number;
    before(async () => {
      const handler = (scheme: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
        seen.push(seenOf(scheme, req.socket));
        res.end('ok');
      };
      plain = http.createServer(handler('http'));
      secure = https.createServer(await certificate(), handler('https'));
      front = withProxyProtocol(
        net.createServer((socket) => {
          socket.once('data', (first: Buffer) => {
            socket.pause();
            socket.unshift(first);
            // 0x16: a TLS handshake record.
            (first[0] === 0x16 ? secure : plain).emit('connection', socket);
            process.nextTick(() => socket.resume());
          });
        }),
        { overrideRemoteAddress },
      );
      port = await listen(front);
    });
    after(async () => {
      await close(front);
      await close(plain);
      await close(secure);
    });

    for (const scheme of ['http', 'https']) {
      it(`${scheme}: the request's socket reports the client`, async () => {
        seen.length = 0;
        assert.match(await request(port, scheme === 'https'), /ok$/);
        assert.equal(seen.length, 1);
        const s = seen[0] as Seen;
        assert.equal(s.scheme, scheme);
        assert.equal(s.client, CLIENT);
        assert.equal(s.ends, CLIENT, 'what the audit records');
        assert.equal(s.peer, '127.0.0.1');
        if (overrideRemoteAddress) {
          assert.equal(s.remoteAddress, CLIENT);
          assert.equal(s.remotePort, 35646);
        } else {
          assert.equal(s.remoteAddress, '127.0.0.1');
        }
      });
    }
  });
}

describe('STARTTLS: new tls.TLSSocket(handledSocket) on a wrapped net.Server', () => {
  let server: net.Server;
  let port: number;
  before(async () => {
    const cert = await certificate();
    server = withProxyProtocol(
      net.createServer((socket) => {
        socket.once('data', (line: Buffer) => {
          assert.equal(line.toString(), 'STARTTLS\r\n');
          socket.write('220 go ahead\r\n', () => {
            const secure = new tls.TLSSocket(socket, { isServer: true, ...cert });
            secure.on('secure', () => secure.end(`${JSON.stringify(seenOf('starttls', secure))}\n`));
            secure.on('error', () => {});
          });
        });
      }),
    );
    port = await listen(server);
  });
  after(() => close(server));

  it('the TLS socket reports the client (remoteAddress, getProxyInfo) and the balancer as the peer', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(`${V1}STARTTLS\r\n`);
    const [reply] = (await once(socket, 'data')) as [Buffer];
    assert.equal(reply.toString(), '220 go ahead\r\n');
    const s = tls.connect({ socket, rejectUnauthorized: false, servername: 'localhost' });
    let text = '';
    s.on('data', (d: Buffer) => (text += d));
    await once(s, 'end');
    s.destroy();
    assert.deepEqual(JSON.parse(text), {
      scheme: 'starttls',
      remoteAddress: CLIENT,
      remotePort: 35646,
      client: CLIENT,
      peer: '127.0.0.1',
      ends: CLIENT,
    });
  });
});
