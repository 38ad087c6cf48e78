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
