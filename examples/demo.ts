// npm run demo: the whole product in a few seconds, in one process.
// An HTTPS Express app that requires the PROXY protocol, driven by fake balancers: clients from several
// IPs over v1 and v2 headers, a health check, a spoofed X-Forwarded-For, a malformed header and a
// slow-loris attempt. Every audit entry is printed as it is written; the log is verified at the end.
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import express from 'express';
import { type AuditFields, createAuditLog, createServer, encodeProxyHeader, verifyAuditLog } from 'proxy-protocol-audit';
import { auditLog, clientIp } from 'proxy-protocol-audit/express';
import selfsigned from 'selfsigned';

const color = process.stdout.isTTY ? (code: number, s: string) => `\x1b[${code}m${s}\x1b[0m` : (_: number, s: string) => s;
const dim = (s: string) => color(2, s);
const bold = (s: string) => color(1, s);
const step = (s: string) => console.log(`\n${bold('▶')} ${s}`);

function describeEntry(f: AuditFields, seq: number): string {
  const n = dim(`#${String(seq).padStart(2)}`);
  if (f.category === 'web') {
    const ip = f.clientIp?.includes(':') ? `[${f.clientIp}]` : f.clientIp;
    const who = `client ${ip}:${f.clientPort ?? '-'} via ${f.peerAddress}`;
    const what = `${f.method} ${f.path} → ${f.status ?? '-'}${f.errorType ? ` (${f.errorType})` : ''}`;
    return `${n} ${color(36, 'request')}   ${what.padEnd(34)} ${who}${f.userId ? `  user=${f.userId}` : ''}`;
  }
  if (f.category === 'network')
    return `${n} ${color(31, 'rejected')}  ${String(f.errorCode).padEnd(34)} peer ${f.peerAddress}:${f.peerPort}`;
  return `${n} ${color(33, 'log')}       ${f.action}`;
}

/** A fake balancer: TCP to the server, PROXY header first, then HTTPS over the same connection. */
async function viaBalancer(port: number, header: Uint8Array | string, path: string, headers: Record<string, string> = {}) {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(header);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.get(
      { path, headers, createConnection: () => tls.connect({ socket, servername: 'localhost', rejectUnauthorized: false }) },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'proxy-protocol-audit-demo-'));
  const file = join(dir, 'audit.jsonl');
  const signing = generateKeyPairSync('ed25519');
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
  } as never);

  console.log(bold('proxy-protocol-audit demo'));
  console.log(dim(`audit log: ${file} (hash-chained, signed checkpoints)`));

  // 1. The audit log and the app, exactly as in the README.
  const log = createAuditLog({ filename: file, service: 'demo-ehr', signingKey: signing.privateKey });
  log.on('entry', (line: string, fields: AuditFields) =>
    console.log(`   ${describeEntry(fields, JSON.parse(line).event.sequence)}`),
  );

  const app = express();
  app.use(clientIp());
  app.use(auditLog({ log, user: (req) => req.get('x-demo-user') }));
  app.get('/health', (_req, res) => res.send('ok'));
  app.get('/patients/:id', (req, res) => {
    res.json({ patient: req.params.id, seenClientIp: req.clientIp, seenXForwardedFor: req.get('x-forwarded-for') });
  });

  const server = createServer({ key: pems.private, cert: pems.cert, proxyProtocol: { headerTimeout: 1000 } }, app);
  log.watch(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  console.log(dim(`HTTPS server on 127.0.0.1:${port}, PROXY header required`));

  step('Classic ELB / nginx: v1 header from 203.0.113.10, then TLS');
  let r = await viaBalancer(port, 'PROXY TCP4 203.0.113.10 10.0.0.5 51000 443\r\n', '/patients/42', { 'x-demo-user': 'dr-grey' });
  console.log(`   app answered ${r.status}: ${r.body}`);

  step('NLB / HAProxy: v2 header with CRC32C from 2001:db8::77');
  const v2 = encodeProxyHeader(
    { version: 2, source: { address: '2001:db8::77', port: 40123 }, destination: { address: '2001:db8::1', port: 443 } },
    { crc32c: true },
  );
  r = await viaBalancer(port, v2, '/patients/7', { 'x-demo-user': 'nurse-ray' });
  console.log(`   app answered ${r.status}: ${r.body}`);

  step('A client spoofing X-Forwarded-For: 6.6.6.6 (real address 198.51.100.23)');
  r = await viaBalancer(port, 'PROXY TCP4 198.51.100.23 10.0.0.5 52000 443\r\n', '/patients/13', {
    'x-forwarded-for': '6.6.6.6',
  });
  console.log(`   app answered ${r.status}: ${r.body}`);
  console.log(dim('   the app saw the PROXY address, never the spoofed one'));

  step('Balancer health check: v2 LOCAL, served with the balancer’s own address');
  r = await viaBalancer(port, encodeProxyHeader({ version: 2, command: 'local' }), '/health');
  console.log(`   app answered ${r.status}: ${r.body}`);

  step('A malformed header (address 999.1.1.1): rejected before TLS');
  const bad = net.connect(port, '127.0.0.1');
  bad.on('error', () => {});
  bad.write('PROXY TCP4 999.1.1.1 10.0.0.5 1234 443\r\n');
  await once(bad, 'close');

  step('Slow-loris: half a header, then silence; closed at headerTimeout (1 s)');
  const t0 = Date.now();
  const slow = net.connect(port, '127.0.0.1');
  slow.on('error', () => {});
  slow.write('PROXY TCP4 203.');
  await once(slow, 'close');
  console.log(dim(`   closed after ${Date.now() - t0} ms`));

  step('Shutdown: server.close(), then await log.close() (final signed checkpoint, fsync)');
  server.close();
  await log.close();

  step(`Verification: npx proxy-protocol-audit verify ${file} --public-key <pem>`);
  const verdict = await verifyAuditLog(file, { publicKey: signing.publicKey });
  console.log(
    verdict.ok
      ? `   ${color(32, 'INTACT')}: ${verdict.entries} entries, ${verdict.chains} chain, ${verdict.checkpoints} signed checkpoints`
      : `   ${color(31, 'TAMPERED')}: line ${verdict.firstBadLine}: ${verdict.reason}`,
  );

  step('Someone edits one entry (a 200 becomes a 404) and verifies again');
  const lines = readFileSync(file, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes('"status_code":200'));
  lines[i] = (lines[i] as string).replace('"status_code":200', '"status_code":404');
  const edited = join(dir, 'audit-edited.jsonl');
  writeFileSync(edited, lines.join('\n'));
  const caught = await verifyAuditLog(edited, { publicKey: signing.publicKey });
  console.log(
    `   ${caught.ok ? color(31, 'NOT DETECTED') : color(32, 'DETECTED')}: line ${caught.firstBadLine}: ${caught.reason}`,
  );

  console.log(`\n${bold('Done.')} The audit log is at ${file}`);
  if (!verdict.ok || caught.ok) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
