import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { getProxyInfo, type ProxyProtocolError, withProxyProtocol } from '../../src/index.js';
import { certificate, close, listen, sleep } from '../helpers.js';

// A server made with `pauseOnConnect` hands over sockets that are paused and whose TCP handle is not
// reading: the layer must still read the header (paused mode for net servers, flowing mode for TLS servers)
// and hand everything after it over as for any other server. A TLS server read in flowing mode used to wait
// for ever, closing every connection at the header timeout.
const V1 = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 80\r\n';

describe('servers with pauseOnConnect: the header is read all the same', () => {
  it('net.Server: the client, and every byte after the header in order, whatever the split', async () => {
    const seen: unknown[] = [];
    const server = withProxyProtocol(
      net.createServer({ pauseOnConnect: true }, (s) => {
        const chunks: Buffer[] = [];
        s.on('data', (d: Buffer) => chunks.push(d));
        s.on('end', () => {
          seen.push({ client: getProxyInfo(s)?.client?.address, body: Buffer.concat(chunks).toString('latin1') });
          s.end();
        });
        s.resume();
      }),
    );
    const errors: ProxyProtocolError[] = [];
    server.on('proxyError', (e: ProxyProtocolError) => errors.push(e));
    const port = await listen(server);
    const splits = [
      [V1, 'hello'],
      [V1.slice(0, 7), V1.slice(7), 'hel', 'lo'],
      [`${V1}hel`, 'lo'],
    ];
    for (const parts of splits) {
      const c = net.connect(port, '127.0.0.1');
      await once(c, 'connect');
      for (const p of parts) {
        c.write(p);
        await sleep(15);
      }
      c.end();
      c.resume();
      await once(c, 'close');
    }
    await close(server);
    assert.deepEqual(errors, []);
    assert.deepEqual(
      seen,
      splits.map(() => ({ client: '203.0.113.7', body: 'hello' })),
    );
  });

  it('tls.Server: the handshake after the header, the client on the TLS socket', async () => {
    const cert = await certificate();
    const server = withProxyProtocol(
      tls.createServer({ ...cert, pauseOnConnect: true }, (s) => {
        s.end(`${getProxyInfo(s)?.client?.address} ${s.remoteAddress}`);
      }),
    );
    const port = await listen(server);
    const answers: string[] = [];
    // The ClientHello right behind the header, or after a pause (the header then read alone).
    for (const pause of [0, 15]) {
      const rawSocket = net.connect(port, '127.0.0.1');
      await once(rawSocket, 'connect');
      rawSocket.write(V1);
      if (pause) await sleep(pause);
      const c = tls.connect({ socket: rawSocket, rejectUnauthorized: false });
      let text = '';
      c.on('data', (d: Buffer) => {
        text += d.toString();
      });
      await once(c, 'end');
      answers.push(text);
      c.destroy();
    }
    await close(server);
    assert.deepEqual(answers, ['203.0.113.7 203.0.113.7', '203.0.113.7 203.0.113.7']);
  });
});
