// node:cluster: every worker appends to the same audit file with a chain of its own; the verifier checks
// each chain. Run: PORT=8080 node build/examples/cluster.js, then `npx proxy-protocol-audit verify audit.jsonl`.
import cluster from 'node:cluster';
import http from 'node:http';
import { availableParallelism } from 'node:os';
import express from 'express';
import { createAuditLog, withProxyProtocol } from 'proxy-protocol-audit';
import { auditLog, clientIp } from 'proxy-protocol-audit/express';

const file = process.env.AUDIT_LOG ?? 'audit.jsonl';

if (cluster.isPrimary) {
  const workers = Number(process.env.WORKERS ?? availableParallelism());
  for (let i = 0; i < workers; i++) cluster.fork();
  // Forward SIGTERM: each worker closes its server, then its log (final entries and checkpoint per chain).
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
  });
} else {
  const log = createAuditLog({ filename: file, service: 'ehr-api' }); // one chain per worker (chain id = audit.chain)
  const app = express();
  app.use(clientIp());
  app.use(auditLog({ log }));
  app.get('/', (req, res) => res.json({ worker: process.pid, clientIp: req.clientIp }));
  const server = withProxyProtocol(http.createServer(app));
  log.watch(server);
  // In a cluster, listen(0) gives every worker the same port.
  server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
    console.log(`worker ${process.pid} listening on ${JSON.stringify(server.address())}`);
  });
  process.on('SIGTERM', () => {
    server.close();
    void log.close().then(() => process.exit(0));
  });
}
