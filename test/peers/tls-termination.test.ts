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
import { auditRequests, createAuditLog, createHttpServer, getProxyInfo } from '../../src/index.js';
import { requests } from '../audit/util.js';
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
  const auditFile = join(tempDir('ppa-haproxy-audit-'), 'audit.jsonl');
  const log = createAuditLog({ filename: auditFile });
  /** The entry of the request `uniqueId` named, once written. */
  async function entryOf(uniqueId: string) {
    await log.drained();
    return requests(auditFile).find((e) => e.http.request.id === uniqueId);
  }
  before(async () => {
    server = createHttpServer({ proxyProtocol: { trustedProxies: ['127.0.0.1'] } }, (req, res) => {
      res.end(
        JSON.stringify({
          remoteAddress: req.socket.remoteAddress,
          client: getProxyInfo(req.socket)?.client?.address,
          facts: balancerFacts(req.socket),
        }),
      );
    });
    server.on('proxyError', (e: { code: string }) => errors.push(e.code));
    auditRequests(server, { log });
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
    await log.close();
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
    // The audit entry: TLS as the balancer saw it, and HAProxy's unique id as the request id (the two logs join).
    const e = await entryOf(seen.facts.uniqueId);
    assert.equal(e?.client.ip, CLIENT);
    assert.deepEqual(e?.tls, { version: '1.3', version_protocol: 'tls' });
  });

  it("a client's X-Request-Id does not replace the balancer's unique id", async () => {
    const r = await get(plain, { headers: { 'x-request-id': 'spoofed-id' } });
    const seen = JSON.parse(r.body);
    const e = await entryOf(seen.facts.uniqueId);
    assert.ok(e, 'the entry carries the unique id');
    assert.equal(requests(auditFile).filter((x) => x.http.request.id === 'spoofed-id').length, 0);
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
    const e = await entryOf(facts.uniqueId);
    assert.equal(e?.tls.version, '1.3');
    assert.equal(e?.tls.cipher, facts.tls.cipher);
    assert.equal(e?.tls.client.x509.subject.common_name, 'dr-grey');
    assert.equal(e?.url.domain, '127.0.0.1', 'the Host header comes first');
  });

  it('without a client certificate there is no CN', async () => {
    const r = await get(full, { servername: 'ehr.example' });
    const { facts } = JSON.parse(r.body);
    assert.equal(facts.tls.clientCn, undefined);
    assert.equal(typeof facts.tls.cipher, 'string');
    assert.deepEqual(errors, []);
  });
});
