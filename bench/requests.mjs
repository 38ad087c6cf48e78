// The audit file the query benchmarks read: request entries written by the real writer, with realistic members
// (client and peer addresses and ports, method, request id, path, route, status, bytes, user agent, user):
// 65,536 client addresses (10.a.b.c), 300 users, 5,000 records, one request in ten refused (403), one
// second apart from 2024-03-01T00:00:00Z.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { createAuditLog } = await import(path.join(root, 'dist/cjs/index.js'));

export const T0 = Date.parse('2024-03-01T00:00:00Z');

/** The client address of entry `i`. */
export const clientOf = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

/** Writes `n` request entries (plus the log's start and stop entries) to `file`. */
export async function writeRequests(file, n) {
  const log = createAuditLog({ filename: file, service: 'ehr-api', host: 'app-1', maxQueue: 1_000_000 });
  for (let i = 0; i < n; i++) {
    const failed = i % 10 === 0;
    log.write({
      timestamp: T0 + i * 1000,
      category: 'web',
      action: 'http-request',
      outcome: failed ? 'failure' : 'success',
      duration: 1_250_000 + (i % 1000),
      clientIp: clientOf(i),
      clientPort: 40000 + (i % 20000),
      peerAddress: '10.0.0.2',
      peerPort: 443,
      method: 'GET',
      requestId: `req-${i}`,
      httpVersion: '1.1',
      path: `/patients/${i % 5000}`,
      route: '/patients/:id',
      status: failed ? 403 : 200,
      bytes: 512,
      userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36',
      userId: `user-${i % 300}`,
    });
    if (i % 10_000 === 9_999) await new Promise((r) => setImmediate(r));
  }
  await log.close();
}
