// A mistyped or wrong-shaped option is a TypeError naming it, never its default: `trustedProxie` must not mean
// "trust every peer", nor `signingkey` "sign nothing".
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import { describe, it } from 'node:test';
import { auditLog as expressAuditLog, clientIp as expressClientIp } from '../src/express/index.js';
import {
  AuditFileTransport,
  auditRequests,
  createAuditLog,
  createHttpServer,
  createServer,
  encodeProxyHeader,
  PostgresShipper,
  type ProxyProtocolOptions,
  queryAuditLog,
  verifyAuditLog,
  withProxyProtocol,
} from '../src/index.js';
import { clientIp as koaClientIp } from '../src/koa/index.js';
import { tempDir } from './helpers.js';

const typo = (message: RegExp) => (e: unknown) => e instanceof TypeError && message.test(e.message);

describe('options are checked by name', () => {
  const cases: [string, () => unknown, RegExp][] = [
    [
      'withProxyProtocol({ trustedProxy })',
      () => withProxyProtocol(http.createServer(), { trustedProxy: ['10.0.0.0/8'] } as ProxyProtocolOptions),
      /proxyProtocol: unknown option "trustedProxy" \(did you mean trustedProxies\?\)/,
    ],
    [
      "withProxyProtocol(server, 'loopback')",
      () => withProxyProtocol(http.createServer(), 'loopback' as ProxyProtocolOptions),
      /proxyProtocol: options must be an object/,
    ],
    [
      'createHttpServer({ proxyProtocol: { trustedProxie } })',
      () => createHttpServer({ proxyProtocol: { trustedProxie: [] } as ProxyProtocolOptions }),
      /did you mean trustedProxies\?/,
    ],
    [
      'Express clientIp({ forwardFor })',
      () => expressClientIp({ forwardFor: 'preserve' } as never),
      /clientIp: unknown option "forwardFor" \(did you mean forwardedFor\?\)/,
    ],
    [
      'Koa clientIp({ trustForwarded })',
      () => koaClientIp({ trustForwarded: 'loopback' } as never),
      /unknown option "trustForwarded"/,
    ],
    [
      'createAuditLog({ signingkey })',
      () => createAuditLog({ filename: `${tempDir('ppa-opt-')}/a.jsonl`, signingkey: 'x' } as never),
      /createAuditLog: unknown option "signingkey" \(did you mean signingKey\?\)/,
    ],
    [
      'createAuditLog({ postgres: { conectionString } })',
      () =>
        createAuditLog({ filename: `${tempDir('ppa-opt-')}/a.jsonl`, postgres: { conectionString: 'postgres://x' } as never }),
      /^createAuditLog: postgres: unknown option "conectionString" \(did you mean connectionString\?\)/,
    ],
    [
      "createAuditLog({ postgres: { table: 'a-b' } })",
      () => createAuditLog({ filename: `${tempDir('ppa-opt-')}/a.jsonl`, postgres: { table: 'a-b' } }),
      /^createAuditLog: table must be/,
    ],
    [
      'createHttpServer({ proxyprotocol })',
      () => createHttpServer({ proxyprotocol: { trustedProxies: ['10.0.0.0/8'] } } as never),
      /createHttpServer: unknown option "proxyprotocol" \(did you mean proxyProtocol\?\)/,
    ],
    [
      'createServer({ proxy_protocol })',
      () => createServer({ proxy_protocol: {} } as never),
      /createServer: unknown option "proxy_protocol" \(did you mean proxyProtocol\?\)/,
    ],
    [
      'verifyAuditLog(file, { publickey })',
      () => verifyAuditLog('x.jsonl', { publickey: 'x' } as never),
      /Verifier: unknown option "publickey" \(did you mean publicKey\?\)/,
    ],
    ['queryAuditLog(file, { usr })', () => queryAuditLog('x.jsonl', { usr: 'dr-lee' } as never), /filters: unknown option "usr"/],
    [
      'queryAuditLog({ postgres, fetchsize })',
      () => queryAuditLog({ postgres: 'postgres://x', fetchsize: 5 } as never),
      /queryStore: unknown option "fetchsize" \(did you mean fetchSize\?\)/,
    ],
    ['queryAuditLog(file, {}, { limt })', () => queryAuditLog('x.jsonl', {}, { limt: 1 } as never), /did you mean limit\?/],
    [
      'Express auditLog({ clientIP })',
      () => expressAuditLog({ log: createAuditLog({ filename: `${tempDir('ppa-opt-')}/a.jsonl` }), clientIP: true } as never),
      /auditLog: unknown option "clientIP" \(did you mean clientIp\?\)/,
    ],
    [
      'auditRequests(server, { skp })',
      () =>
        auditRequests(http.createServer(), {
          log: createAuditLog({ filename: `${tempDir('ppa-opt-')}/a.jsonl` }),
          skp: () => true,
        } as never),
      /did you mean skip\?/,
    ],
    [
      'new AuditFileTransport({ hashkey })',
      () => new AuditFileTransport({ filename: `${tempDir('ppa-opt-')}/a.jsonl`, hashkey: 'k' } as never),
      /AuditFileTransport: unknown option "hashkey"/,
    ],
    [
      'new PostgresShipper({ stalltimeout })',
      () => new PostgresShipper({ filename: 'x.jsonl', postgres: 'postgres://x', stalltimeout: 1 } as never),
      /PostgresShipper: unknown option "stalltimeout" \(did you mean stallTimeout\?\)/,
    ],
    [
      'encodeProxyHeader(h, { crc })',
      () => encodeProxyHeader({ version: 2, command: 'local' }, { crc: true } as never),
      /encodeProxyHeader: unknown option "crc"/,
    ],
    [
      'an option far from every name: no suggestion',
      () => withProxyProtocol(http.createServer(), { zzz: 1 } as never),
      /unknown option "zzz"$/,
    ],
  ];
  for (const [name, call, message] of cases) {
    it(name, async () => {
      let result: unknown;
      try {
        result = call();
      } catch (e) {
        assert.ok(typo(message)(e), String(e));
        return;
      }
      // (an async function rejects)
      assert.ok(result instanceof Promise, 'neither threw nor rejected');
      await assert.rejects(result, typo(message));
    });
  }

  it('a wrong value is a TypeError that names what was wrong', () => {
    const filename = `${tempDir('ppa-opt-')}/a.jsonl`;
    assert.throws(
      () => createAuditLog({ filename, signingKey: 'not a pem' }),
      typo(/^signingKey must be an Ed25519 private key/),
    );
    const { publicKey } = generateKeyPairSync('ed25519');
    assert.throws(
      () => createAuditLog({ filename, signingKey: publicKey.export({ type: 'spki', format: 'pem' }) as string }),
      typo(/^signingKey must be an Ed25519 private key/),
    );
    const log = createAuditLog({ filename });
    assert.throws(() => log.watch({} as never), typo(/^watch: expected a server/));
    return log.close();
  });

  it('every documented option is accepted', () => {
    const s = withProxyProtocol(http.createServer(), {
      requireHeader: true,
      trustedProxies: 'loopback',
      headerTimeout: 1000,
      overrideRemoteAddress: true,
      maxHeaderLength: 4096,
    });
    assert.ok(s instanceof http.Server);
    // Node's own options pass through unchecked (Node does not check them either)
    assert.ok(createHttpServer({ keepAliveTimeout: 5000, proxyProtocol: { headerTimeout: 1000 } }) instanceof http.Server);
    assert.equal(typeof expressClientIp({ forwardedFor: 'append', trustForwardedFrom: '10.0.0.0/8' }), 'function');
  });
});
