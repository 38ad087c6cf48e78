// Adoption path 5: a server without a framework, with WebSockets. auditRequests() audits every request of a
// plain node:http handler; auditUpgrades() audits every WebSocket session: one entry when it ends (duration,
// bytes each way, user), and its 101 leaves only once an `http-upgrade-started` entry is written.
// Run: PORT=8080 node build/examples/websocket.js
import http from 'node:http';
import { auditRequests, auditUpgrades, createAuditLog, withProxyProtocol } from 'proxy-protocol-audit';
import { WebSocketServer } from 'ws';

const log = createAuditLog({ filename: process.env.AUDIT_LOG ?? 'audit.jsonl', service: 'monitoring' });

// Stands in for the app's own token check; what it returns is an opaque user id, never a name.
const users = new Map([['demo-token', 'clinician-17']]);
const userOf = (req: http.IncomingMessage) => users.get(new URL(req.url ?? '/', 'http://x').searchParams.get('token') ?? '');

const server = withProxyProtocol(
  http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url }));
  }),
  { trustedProxies: process.env.TRUSTED_PROXIES?.split(',') ?? ['loopback', 'uniquelocal'] },
);
auditRequests(server, { log });
// url.path is logged without the query, so the token never reaches the log.
auditUpgrades(server, { log, user: userOf });
log.watch(server);

const wss = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  if (userOf(req) === undefined) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'); // audited, status 401
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(`vitals ok: ${m}`)));
});
server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () =>
  console.log(`listening on ${JSON.stringify(server.address())}`),
);

process.on('SIGTERM', () => {
  for (const ws of wss.clients) ws.close(1001); // sessions end (and are written) before the log closes
  server.close();
  void log.close({ timeout: 5000 }).then(() => process.exit(0));
});
