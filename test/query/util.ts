import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AuditFields, createAuditLog } from '../../src/index.js';
import { tempDir } from '../helpers.js';

export function tmpFile(name = 'audit.jsonl'): string {
  return join(tempDir('ppa-query-'), name);
}

const T0 = Date.parse('2024-03-01T08:00:00.000Z');
export const HOUR = 3_600_000;

/** A request entry at `hours` after 2024-03-01T08:00Z. */
export function request(hours: number, f: Partial<AuditFields> = {}): AuditFields {
  return {
    timestamp: T0 + hours * HOUR,
    category: 'web',
    action: 'http-request',
    outcome: (f.status ?? 200) >= 400 ? 'failure' : 'success',
    clientIp: '203.0.113.7',
    clientPort: 50000,
    peerAddress: '10.0.0.2',
    peerPort: 443,
    method: 'GET',
    path: '/patients/42',
    route: '/patients/:id',
    status: 200,
    userId: 'dr-lee',
    requestId: `req-${hours}`,
    ...f,
  };
}

/** The day's traffic every query test reads: who, from where, what. */
export const DAY: AuditFields[] = [
  request(0),
  request(1, { clientIp: '203.0.113.8', userId: 'nurse-kim', path: '/patients/43' }),
  request(2, {
    clientIp: '10.1.2.3',
    userId: 'dr-lee',
    path: '/patients/42/notes',
    route: '/patients/:id/notes',
    method: 'POST',
    status: 201,
  }),
  request(3, { clientIp: '2001:db8::7', userId: 'nurse-kim', status: 403, path: '/admin/users', route: '/admin/users' }),
  request(4, { clientIp: '10.200.0.1', userId: undefined, status: 404, path: '/favicon.ico', route: undefined }),
  {
    timestamp: T0 + 5 * HOUR,
    category: 'network',
    action: 'connection-rejected',
    outcome: 'failure',
    peerAddress: '198.51.100.9',
    peerPort: 40000,
    errorType: 'proxy_protocol',
    errorCode: 'ERR_PROXY_UNTRUSTED',
    errorMessage: 'peer 198.51.100.9 is not a trusted proxy',
  },
  request(26, { clientIp: '203.0.113.7', userId: 'dr-lee', status: 500, path: '/patients/42' }),
  request(27, { clientIp: '203.0.113.9', userId: 'dr-lee', method: 'DELETE', status: 204, path: '/patients/44' }),
];

/** Writes entries with the real writer; returns the file and its lines. */
export async function writeLog(
  entries: AuditFields[] = DAY,
  options: Partial<Parameters<typeof createAuditLog>[0]> = {},
  file = tmpFile(),
): Promise<{ file: string; lines: string[] }> {
  const log = createAuditLog({ filename: file, service: 'ehr-api', host: 'app-1', ...options });
  for (const e of entries) log.write(e);
  await log.close();
  return { file, lines: readFileSync(file, 'utf8').trimEnd().split('\n') };
}
