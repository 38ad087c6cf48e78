// Closing a server ends the connections still reading their PROXY header, as Node ends its own idle ones.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type http from 'node:http';
import net from 'node:net';
import { describe, it } from 'node:test';
import { createHttpServer, createServer } from '../../src/index.js';
import { certificate, listen, sleep } from '../helpers.js';

/** A client that stalls mid-header; resolves when the server closes it. */
async function stalled(port: number): Promise<{ closed: Promise<unknown> }> {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  await once(s, 'connect');
  s.write('PROXY TCP4 203.0.113.');
  s.resume();
  return { closed: once(s, 'close') };
}

const kinds: { name: string; make: () => Promise<http.Server> }[] = [
  {
    name: 'createHttpServer',
    make: async () => createHttpServer({ proxyProtocol: { headerTimeout: 0 } }, (_q, r) => r.end('ok')),
  },
  {
    name: 'createServer (https)',
    make: async () => createServer({ ...(await certificate()), proxyProtocol: { headerTimeout: 0 } }, (_q, r) => r.end('ok')),
  },
];

for (const { name, make } of kinds) {
  describe(`${name} with headerTimeout: 0`, () => {
    for (const how of ['closeAllConnections()', 'server.close() alone (closes idle connections)']) {
      it(`${how} ends connections stalled mid-header, without a 'proxyError'; close() completes`, async () => {
        const server = await make();
        const errors: unknown[] = [];
        server.on('proxyError', (e) => errors.push(e));
        const port = await listen(server);
        const clients = [await stalled(port), await stalled(port), await stalled(port)];
        await sleep(50); // the server has read the partial headers
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        if (how.startsWith('closeAll')) server.closeAllConnections();
        const timeout = sleep(3000).then(() => 'timed out');
        assert.equal(await Promise.race([done.then(() => 'closed'), timeout]), 'closed');
        await Promise.all(clients.map((c) => c.closed));
        assert.deepEqual(errors, []);
      });
    }
  });
}
