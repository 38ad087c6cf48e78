import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';

export function tmpFile(name = 'audit.jsonl'): string {
  return join(tempDir('ppa-audit-'), name);
}

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON lines are inspected field by field
export type Entry = Record<string, any>;

/** Every line of the file, parsed; throws on any line that is not JSON. */
export function entries(file: string): Entry[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

export function requests(file: string): Entry[] {
  return entries(file).filter((e) => e.event.action === 'http-request');
}
