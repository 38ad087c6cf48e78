// Adoption path 4: a Fastify app. Register the two plugins (they apply to the whole app), wrap app.server
// before listen().
// Run: PORT=8080 node build/examples/fastify-app.js   (then: curl --haproxy-protocol localhost:8080/patients/7)
import Fastify from 'fastify';
import { createAuditLog, withProxyProtocol } from 'proxy-protocol-audit';
import { auditLog, clientIp } from 'proxy-protocol-audit/fastify';

const log = createAuditLog({ filename: process.env.AUDIT_LOG ?? 'audit.jsonl', service: 'patients-api' });

const app = Fastify();
app.register(clientIp); // request.clientIp (and request.ip) from the PROXY header; X-Forwarded-For replaced
// path: 'route' logs /patients/:id instead of the patient's number.
app.register(auditLog, { log, path: 'route', user: (request) => request.headers['x-user-id'] as string | undefined });
app.get('/patients/:id', async (request) => ({ id: (request.params as { id: string }).id, clientIp: request.clientIp }));

withProxyProtocol(app.server, { trustedProxies: process.env.TRUSTED_PROXIES?.split(',') ?? ['loopback', 'uniquelocal'] });
log.watch(app.server);
app.listen({ port: Number(process.env.PORT ?? 8080), host: process.env.HOST ?? '127.0.0.1' }).then(() => {
  console.log(`listening on ${JSON.stringify(app.server.address())}`);
});

process.on('SIGTERM', () => {
  void app.close().then(() => log.close().then(() => process.exit(0)));
});
