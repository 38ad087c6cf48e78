// Adoption path 1: an existing Express app. Wrap the server that app.listen() returns, add the middleware.
// Run: PORT=8080 node build/examples/express-existing-app.js   (then: curl --haproxy-protocol localhost:8080/whoami)
import express from 'express';
import { createAuditLog, withProxyProtocol } from 'proxy-protocol-audit';
import { auditLog, clientIp } from 'proxy-protocol-audit/express';

const log = createAuditLog({ filename: process.env.AUDIT_LOG ?? 'audit.jsonl', service: 'ehr-api' });

const app = express();
app.use(clientIp()); // req.clientIp from the PROXY header; X-Forwarded-For replaced
app.use(auditLog({ log, user: (req) => req.get('x-user-id'), skip: (req) => req.path === '/health' }));
app.get('/health', (_req, res) => res.send('ok'));
app.get('/whoami', (req, res) => res.json({ clientIp: req.clientIp, ip: req.ip }));

// The only change to the existing app: the server app.listen() returns is wrapped.
const server = withProxyProtocol(app.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1'), {
  trustedProxies: process.env.TRUSTED_PROXIES?.split(',') ?? ['loopback', 'uniquelocal'],
});
log.watch(server); // rejected connections are audited too
server.on('listening', () => console.log(`listening on ${JSON.stringify(server.address())}`));

process.on('SIGTERM', () => {
  server.close();
  void log.close().then(() => process.exit(0));
});
