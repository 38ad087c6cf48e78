// What a writer finds at the end of a log file it opens: the last whole line, and any fragment after it.
import fs from 'node:fs';

/** The last whole line of a file, as an audit entry names it. */
export interface TailEntry {
  chain: string;
  sequence: number;
  hash: string;
}

/** What {@link inspectTail} found. */
export interface TailInfo {
  size: number;
  /** Bytes after the last newline: a line cut short by a crash or a full disk. */
  tornBytes: number;
  /** The last whole line, when it is an audit entry. */
  previous?: TailEntry;
}

const CHUNK = 64 * 1024;
const LIMIT = 1024 * 1024;

/** Reads the end of an open file backwards (at most 1 MiB) for its last whole line and a torn fragment. */
export function inspectTail(fd: number): TailInfo {
  const size = fs.fstatSync(fd).size;
  if (size === 0) return { size, tornBytes: 0 };
  let end = size;
  let tail = Buffer.alloc(0);
  let lastNl = -1;
  // Find the last newline (the end of the last whole line) and the one before it (its start).
  while (end > 0 && size - end < LIMIT) {
    const start = Math.max(0, end - CHUNK);
    const chunk = Buffer.allocUnsafe(end - start);
    fs.readSync(fd, chunk, 0, chunk.length, start);
    tail = Buffer.concat([chunk, tail]);
    end = start;
    if (lastNl < 0) {
      const i = tail.lastIndexOf(0x0a);
      if (i >= 0) lastNl = i;
    }
    if (lastNl >= 0) {
      const before = lastNl === 0 ? -1 : tail.lastIndexOf(0x0a, lastNl - 1);
      if (before >= 0 || end === 0) {
        const line = tail.toString('utf8', before + 1, lastNl);
        return { size, tornBytes: tail.length - lastNl - 1, previous: entryOf(line) };
      }
    }
  }
  if (lastNl < 0) return { size, tornBytes: end === 0 ? tail.length : Math.min(size, LIMIT) };
  return { size, tornBytes: tail.length - lastNl - 1 };
}

function entryOf(line: string): TailEntry | undefined {
  try {
    const e = JSON.parse(line) as { event?: { sequence?: unknown }; audit?: { chain?: unknown; hash?: unknown } };
    const chain = e.audit?.chain;
    const sequence = e.event?.sequence;
    const hash = e.audit?.hash;
    if (typeof chain === 'string' && typeof sequence === 'number' && typeof hash === 'string') return { chain, sequence, hash };
  } catch {}
  return undefined;
}
