// Audit files → physical lines: rotated sets oldest first, gzip-compressed files decompressed on the way.
import { basename, dirname, join } from 'node:path';
import { lineBatches } from '../audit/line-reader.js';

/** Physical lines of one file, in order; `first` is the 1-based number of `lines[0]`. */
export interface LineBatch {
  file: string;
  first: number;
  lines: string[];
}

/** The end of one file, and whether its last line ended with a newline. */
export interface SourceEnd {
  file: string;
  endsWithNewline: boolean;
}

/** A file that could not be read (missing, unreadable, a corrupt gzip stream) after `lines` lines. */
export interface ReadFailure {
  file: string;
  lines: number;
  error: Error;
}

// logrotate names: `audit.jsonl.1` (1 is the newest), `audit.jsonl-20240301` or `audit.jsonl.2024-03-01` (dateext).
const NUMBERED = /^(.*)\.(\d+)$/;
const DATED = /^(.*)[.-](\d{4}-?\d{2}-?\d{2}(?:[-_T]?\d{2,6})?)$/;

function rotation(file: string): { set: string; rank: [number, string] } {
  const name = basename(file).replace(/\.gz$/, '');
  const dated = DATED.exec(name);
  if (dated) return { set: join(dirname(file), dated[1] as string), rank: [0, (dated[2] as string).replace(/\D/g, '')] };
  const numbered = NUMBERED.exec(name);
  // Larger numbers are older: they come first. Zero-padding keeps the string order numeric.
  if (numbered)
    return { set: join(dirname(file), numbered[1] as string), rank: [1, String(1e9 - Number(numbered[2])).padStart(10, '0')] };
  return { set: join(dirname(file), name), rank: [2, ''] };
}

/**
 * Orders audit files for reading: the files of one rotated set (`audit.jsonl`, `audit.jsonl.1`,
 * `audit.jsonl.2.gz`, `audit.jsonl-20240301.gz`…) oldest first — dated names by date, then numbered ones from
 * the highest number, then the live file; sets in the order they were first named.
 *
 * @example
 * ```ts
 * orderFiles(['audit.jsonl', 'audit.jsonl.1', 'audit.jsonl.2.gz']); // ['audit.jsonl.2.gz', 'audit.jsonl.1', 'audit.jsonl']
 * ```
 */
export function orderFiles(files: readonly string[]): string[] {
  const sets = new Map<string, { file: string; rank: [number, string] }[]>();
  for (const file of files) {
    const r = rotation(file);
    let s = sets.get(r.set);
    if (!s) {
      s = [];
      sets.set(r.set, s);
    }
    s.push({ file, rank: r.rank });
  }
  const out: string[] = [];
  for (const s of sets.values()) {
    s.sort((a, b) => a.rank[0] - b.rank[0] || (a.rank[1] < b.rank[1] ? -1 : a.rank[1] > b.rank[1] ? 1 : 0));
    for (const f of s) if (!out.includes(f.file)) out.push(f.file);
  }
  return out;
}

/**
 * The physical lines of each file, in the order given, one batch per chunk read (a line per `\n`; a last
 * line without `\n` is a line too), then a {@link SourceEnd}. A file that cannot be read yields a
 * {@link ReadFailure} and reading goes on with the next file. Gzip files (by their magic bytes) are
 * decompressed.
 */
export async function* readLines(files: readonly string[]): AsyncGenerator<LineBatch | SourceEnd | ReadFailure> {
  for (const file of files) {
    let n = 0;
    try {
      for await (const batch of lineBatches(file)) {
        if (!Array.isArray(batch)) {
          yield { file, endsWithNewline: batch.endsWithNewline };
          break;
        }
        yield { file, first: n + 1, lines: batch };
        n += batch.length;
      }
    } catch (err) {
      yield { file, lines: n, error: err as Error };
    }
  }
}
