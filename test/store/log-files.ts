// Audit files for the store tests: written by the real log, then read and damaged line by line.
import { readFileSync, writeFileSync } from 'node:fs';
import { createAuditLog } from '../../src/index.js';
import { sleep } from '../helpers.js';

/**
 * Writes `n` request entries to `file` (appending: a file that exists is reopened, as after a crash) and
 * closes; returns the lines written (with audit-log-started and audit-log-stopped).
 */
export async function writeLog(file: string, n: number, fields: Record<string, unknown> = {}): Promise<number> {
  const log = createAuditLog({ filename: file, maxQueue: 1_000_000 });
  for (let i = 0; i < n; i++) {
    log.write({ category: 'web', action: 'http-request', outcome: 'success', method: 'GET', path: `/e/${i}`, ...fields });
    if (i % 1000 === 999) await sleep(1);
  }
  await log.close();
  return n + 2;
}

/** The file's lines (its last, empty piece after the final newline dropped). */
export function linesOf(file: string): string[] {
  const t = readFileSync(file, 'utf8').split('\n');
  if (t.at(-1) === '') t.pop();
  return t;
}

/** Writes `lines` back, each ended by a newline (`end: false`: the last one without). */
export function writeLines(file: string, lines: string[], end = true): void {
  writeFileSync(file, lines.join('\n') + (end ? '\n' : ''));
}

/** Puts `text` (lines of their own) after line `at` of the file. */
export function insertAfter(file: string, at: number, ...text: string[]): void {
  const l = linesOf(file);
  l.splice(at, 0, ...text);
  writeLines(file, l);
}

/** A request's fields with every column a row has, for the row tests. */
export const requestFields = {
  method: 'GET',
  path: '/patients/7/record',
  route: '/patients/:id/record',
  status: 200,
  clientIp: '203.0.113.9',
  clientPort: 41000,
  peerAddress: '10.0.0.1',
  peerPort: 5000,
  userAgent: 'curl/8.5',
  userId: 'u-1',
  requestId: 'r-1',
  httpVersion: '1.1',
  domain: 'ehr.example.org',
  duration: 1234,
};
