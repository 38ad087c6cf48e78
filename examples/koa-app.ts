// Adoption path 2: a Koa app.
// Run: PORT=8080 node build/examples/koa-app.js   (then: curl --haproxy-protocol localhost:8080/records/1)
import Router from '@koa/router';
import Koa from 'koa';
import { createAuditLog, withProxyProtocol } from 'proxy-protocol-audit';
import { auditLog, clientIp } from 'proxy-protocol-audit/koa';

const log = createAuditLog({ filename: process.env.AUDIT_LOG ?? 'audit.jsonl', service: 'records-api' });

const app = new Koa();
const router = new Router();
app.use(clientIp());
// path: 'route' logs /records/:id instead of the record number itself.
app.use(auditLog({ log, path: 'route', user: (ctx) => ctx.get('x-user-id') || undefined }));
router.get('/records/:id', (ctx) => {
  ctx.body = { id: ctx.params.id, clientIp: ctx.clientIp }; // ctx.clientIp: string, typed
});
app.use(router.routes());

const server = withProxyProtocol(app.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1'));
log.watch(server);
server.on('listening', () => console.log(`listening on ${JSON.stringify(server.address())}`));

process.on('SIGTERM', () => {
  server.close();
  void log.close().then(() => process.exit(0));
});
