// Adoption path 3: swap in for https.createServer. One changed import line:
//   - import { createServer } from 'node:https';
//   + import { createServer } from 'proxy-protocol-audit';
// Run: TLS_KEY=key.pem TLS_CERT=cert.pem PORT=8443 node build/examples/https-drop-in.js
//   (then: curl -k --haproxy-protocol https://localhost:8443/)
import { readFileSync } from 'node:fs';
import { createServer, getProxyInfo } from 'proxy-protocol-audit';

const server = createServer(
  {
    key: readFileSync(process.env.TLS_KEY ?? 'key.pem'),
    cert: readFileSync(process.env.TLS_CERT ?? 'cert.pem'),
    proxyProtocol: { trustedProxies: ['loopback', 'uniquelocal'], headerTimeout: 5000 },
  },
  (req, res) => {
    const info = getProxyInfo(req.socket);
    res.setHeader('content-type', 'application/json');
    // req.socket.remoteAddress is already the client; getProxyInfo also knows the balancer.
    res.end(
      JSON.stringify({ client: req.socket.remoteAddress, balancer: info?.peer?.address, tlvs: info?.header?.tlvs.length ?? 0 }),
    );
  },
);
server.on('proxyError', (err) => console.warn(`rejected ${err.peer?.address}: ${err.code}`));
server.listen(Number(process.env.PORT ?? 8443), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`listening on ${JSON.stringify(server.address())}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
