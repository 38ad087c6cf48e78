// What the balancer says in its PROXY v2 TLVs reaches the entry: TLS ended at the balancer, its unique id as
// the request id (before a client's X-Request-Id unless asked otherwise), its authority (SNI) as the domain of
// a request without Host.
import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { auditRequests, createAuditLog, encodeProxyHeader, withProxyProtocol } from '../../src/index.js';
import { requests, tmpFile } from '../audit/util.js';
import { close, listen, raw } from '../helpers.js';

function tlv(type: number, value: Uint8Array | string) {
  return { type, value: typeof value === 'string' ? new Uint8Array(Buffer.from(value)) : value };
}

/** The SSL TLV: client flags (SSL), verify 0, then sub-TLVs (version, cipher, CN). */
function ssl(version: string, cipher: string, cn?: string) {
  const sub = (t: number, v: string) => Buffer.concat([Buffer.from([t, 0, Buffer.byteLength(v)]), Buffer.from(v)]);
  const parts = [Buffer.from([0x01, 0, 0, 0, 0]), sub(0x21, version), sub(0x23, cipher)];
  if (cn !== undefined) parts.push(sub(0x22, cn));
  return tlv(0x20, new Uint8Array(Buffer.concat(parts)));
}

function header(tlvs: ReturnType<typeof tlv>[]) {
  return Buffer.from(
    encodeProxyHeader({
      version: 2,
      command: 'proxy',
      family: 'IPv4',
      transport: 'stream',
      source: { address: '203.0.113.20', port: 41000 },
      destination: { address: '10.0.0.1', port: 443 },
      tlvs,
    }),
  );
}

async function entryFor(request: string, tlvs: ReturnType<typeof tlv>[], options: { preferRequestIdHeader?: boolean } = {}) {
  const file = tmpFile();
  const log = createAuditLog({ filename: file });
  const server = withProxyProtocol(http.createServer((_req, res) => res.end('ok')));
  auditRequests(server, { log, ...options });
  const port = await listen(server);
  await raw(port, [Buffer.concat([header(tlvs), Buffer.from(request)])], { timeout: 300 });
  await close(server);
  await log.close();
  return requests(file)[0];
}

describe('balancer facts in the entry', () => {
  const TLVS = [tlv(0x05, 'lb-7f3a-0001'), tlv(0x02, 'ehr.example'), ssl('TLSv1.2', 'ECDHE-RSA-AES128-GCM-SHA256', 'dr-grey')];

  it('TLS, unique id and authority (no Host header)', async () => {
    const e = await entryFor('GET /chart HTTP/1.0\r\n\r\n', TLVS);
    assert.equal(e?.client.ip, '203.0.113.20');
    assert.equal(e?.http.request.id, 'lb-7f3a-0001');
    assert.equal(e?.url.domain, 'ehr.example');
    assert.deepEqual(e?.tls, {
      version: '1.2',
      version_protocol: 'tls',
      cipher: 'ECDHE-RSA-AES128-GCM-SHA256',
      client: { x509: { subject: { common_name: 'dr-grey' } } },
    });
  });

  it("the Host header comes before the authority; the balancer's id before the client's X-Request-Id", async () => {
    const e = await entryFor(
      'GET / HTTP/1.1\r\nHost: portal.example\r\nX-Request-Id: client-1\r\nConnection: close\r\n\r\n',
      TLVS,
    );
    assert.equal(e?.url.domain, 'portal.example');
    assert.equal(e?.http.request.id, 'lb-7f3a-0001');
  });

  it('preferRequestIdHeader: the header first, the balancer id when there is none', async () => {
    const withHeader = await entryFor('GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: client-1\r\nConnection: close\r\n\r\n', TLVS, {
      preferRequestIdHeader: true,
    });
    assert.equal(withHeader?.http.request.id, 'client-1');
    const without = await entryFor('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', TLVS, {
      preferRequestIdHeader: true,
    });
    assert.equal(without?.http.request.id, 'lb-7f3a-0001');
  });

  it('no TLVs: no tls, a generated id', async () => {
    const e = await entryFor('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', []);
    assert.equal(e?.tls, undefined);
    assert.match(e?.http.request.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('a unique id that is not 1–128 safe characters is not used', async () => {
    const e = await entryFor('GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: client-2\r\nConnection: close\r\n\r\n', [
      tlv(0x05, new Uint8Array(100).fill(0x01)), // binary bytes are given as hex: 100 of them make 200 characters
    ]);
    assert.equal(e?.http.request.id, 'client-2', JSON.stringify(e));
  });
});
