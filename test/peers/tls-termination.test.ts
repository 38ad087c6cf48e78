// HAProxy terminating TLS in front: what it says about the client's TLS session, its unique id and the SNI
// reach the socket layer (balancerFacts) through the v2 TLVs.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import selfsigned from 'selfsigned';
import { balancerFacts } from '../../src/connection/socket-info.js';
import { createHttpServer, getProxyInfo } from '../../src/index.js';
import { certificate, close, listen, tempDir } from '../helpers.js';
import { freePort, HAPROXY_TCP, haproxy, needs, type Peer } from './peers.js';

const CLIENT = '127.0.0.5';

function get(port: number, options: https.RequestOptions = {}): Promise<{ status: number; body: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    let localPort = 0;
    const req = https.get(
      { host: '127.0.0.1', port, path: '/', localAddress: CLIENT, rejectUnauthorized: false, agent: false, ...options },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, localPort }));
      },
    );
    req.on('socket', (s) => s.on('connect', () => (localPort = s.localPort ?? 0)));
    req.on('error', reject);
  });
}

describe('HAProxy terminating TLS, send-proxy-v2 with proxy-v2-options ssl,unique-id', needs('haproxy'), () => {
  let server: http.Server;
  let peer: Peer;
  let plain: number;
  let full: number;
  let clientCert: { key: string; cert: string };
  const errors: string[] = [];
  before(async () => {
    server = createHttpServer({ proxyProtocol: { trustedProxies: ['127.0.0.1'] } }, (req, res) => {
      res.end(
        JSON.stringify({
          remoteAddress: req.socket.remoteAddress,
          client: getProxyInfo(req.socket)?.client.address,
          facts: balancerFacts(req.socket),
        }),
      );
    });
    server.on('proxyError', (e: { code: string }) => errors.push(e.code));
    const port = await listen(server);
    const dir = tempDir('ppa-haproxy-tls-');
    const { key, cert } = await certificate();
    writeFileSync(join(dir, 'server.pem'), `${cert}\n${key}\n`);
    const c = await selfsigned.generate([{ name: 'commonName', value: 'dr-grey' }], {
      keyType: 'ec',
      algorithm: 'sha256',
    } as never);
    clientCert = { key: c.private, cert: c.cert };
    writeFileSync(join(dir, 'client-ca.pem'), c.cert); // the self-signed client certificate is its own CA
    [plain, full] = [await freePort(), await freePort()];
    peer = await haproxy(
      `${HAPROXY_TCP}frontend fe_plain
  bind 127.0.0.1:${plain} ssl crt ${join(dir, 'server.pem')}
  unique-id-format %ci-%cp-%rt
  default_backend be_plain
frontend fe_full
  bind 127.0.0.1:${full} ssl crt ${join(dir, 'server.pem')} ca-file ${join(dir, 'client-ca.pem')} verify optional
  unique-id-format %ci-%cp-%rt
  default_backend be_full
backend be_plain
  server node 127.0.0.1:${port} send-proxy-v2 proxy-v2-options ssl,unique-id
backend be_full
  server node 127.0.0.1:${port} send-proxy-v2 proxy-v2-options ssl,unique-id,ssl-cipher,cert-cn,authority,crc32c
`,
      [plain, full],
    );
  });
  after(async () => {
    await peer?.stop();
    await close(server);
  });

  it("ssl,unique-id: the TLS version of the client session and HAProxy's unique id", async () => {
    const r = await get(plain, { minVersion: 'TLSv1.3' });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body);
    assert.equal(seen.remoteAddress, CLIENT);
    assert.equal(seen.client, CLIENT);
    assert.deepEqual(seen.facts.tls, { version: 'TLSv1.3' });
    assert.match(seen.facts.uniqueId, new RegExp(`^${CLIENT.replaceAll('.', '\\.')}-${r.localPort}-\\d+$`));
    assert.equal(seen.facts.authority, undefined);
    assert.deepEqual(errors, []);
  });

  it('TLS 1.2 is reported as such', async () => {
    const r = await get(plain, { maxVersion: 'TLSv1.2' });
    assert.equal(JSON.parse(r.body).facts.tls.version, 'TLSv1.2');
  });

  it('with ssl-cipher, cert-cn and authority: the cipher, the client certificate CN and the SNI', async () => {
    const r = await get(full, { minVersion: 'TLSv1.3', servername: 'ehr.example', ...clientCert });
    const { facts } = JSON.parse(r.body);
    assert.equal(facts.tls.version, 'TLSv1.3');
    assert.match(facts.tls.cipher, /^TLS_(AES|CHACHA20)_/);
    assert.equal(facts.tls.clientCn, 'dr-grey');
    assert.equal(facts.authority, 'ehr.example');
    assert.match(facts.uniqueId, new RegExp(`-${r.localPort}-\\d+$`));
  });

  it('without a client certificate there is no CN', async () => {
    const r = await get(full, { servername: 'ehr.example' });
    const { facts } = JSON.parse(r.body);
    assert.equal(facts.tls.clientCn, undefined);
    assert.equal(typeof facts.tls.cipher, 'string');
    assert.deepEqual(errors, []);
  });
});
