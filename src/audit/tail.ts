// What a writer finds at the end of a file it opens: a torn fragment to terminate, and the last whole line
// to name in its start entry (so that writers of one file witness each other).
import { fstatSync, readSync } from 'node:fs';

/** What {@link inspectTail} found. */
export interface TailInfo {
  /** File size in bytes. */
  size: number;
  /** Bytes after the last newline (a torn fragment), 0 when the file is empty or ends in a newline. */
  tornBytes: number;
  /** The last complete line, when it is a whole audit entry. */
  previous?: { chain: string; sequence: number; hash: string };
}

/** Bytes read per step backwards. */
const CHUNK = 64 * 1024;
/** A last complete line longer than this is not looked at (no entry is that long). */
const MAX_LINE = 1024 * 1024;
const NEWLINE = 0x0a;
const MARKER = '{"@timestamp":"';
const SUFFIX = /,"hash":"([0-9a-f]{64})"\}\}$/;

/**
 * Inspects the end of an open file (read access needed; the position is not used): the size, the length of a
 * torn fragment after the last newline, and the chain, sequence and hash of the last complete line when it is
 * a whole entry (a fragment glued before it on the same physical line is skipped, as the verifier does).
 * Reads backwards in 64 KiB steps; memory stays bounded, and a last line over 1 MiB is not parsed.
 *
 * @example
 * ```ts
 * const fd = fs.openSync(filename, 'a+');
 * const { tornBytes, previous } = inspectTail(fd);
 * if (tornBytes > 0) fs.writeSync(fd, '\n'); // terminate the fragment before the first line of this writer
 * ```
 */
export function inspectTail(fd: number): TailInfo {
  const size = fstatSync(fd).size;
  const info: TailInfo = { size, tornBytes: 0 };
  if (size === 0) return info;
  const buf = Buffer.allocUnsafe(CHUNK);
  const lastNewline = findNewline(fd, buf, size);
  info.tornBytes = size - (lastNewline + 1);
  if (lastNewline < 0) return info;
  // The last complete line ends at lastNewline; it starts after the newline before it.
  const from = Math.max(0, lastNewline - MAX_LINE - 1);
  const before = findNewline(fd, buf, lastNewline, from);
  const start = before < 0 ? from : before + 1;
  if (before < 0 && from > 0) return info;
  const length = lastNewline - start;
  if (length === 0) return info;
  const line = Buffer.allocUnsafe(length);
  readFully(fd, line, start);
  const previous = lastEntry(line.toString('utf8'));
  if (previous) info.previous = previous;
  return info;
}

/** Whether the file ends in a newline (true for an empty file: nothing to terminate). */
export function endsWithNewline(fd: number, size: number = fstatSync(fd).size): boolean {
  if (size === 0) return true;
  const b = Buffer.alloc(1);
  return readSync(fd, b, 0, 1, size - 1) === 1 && b[0] === NEWLINE;
}

/** Offset of the last newline in [floor, end), or -1. */
function findNewline(fd: number, buf: Buffer, end: number, floor = 0): number {
  let hi = end;
  while (hi > floor) {
    const lo = Math.max(floor, hi - buf.length);
    const chunk = buf.subarray(0, hi - lo);
    readFully(fd, chunk, lo);
    const i = chunk.lastIndexOf(NEWLINE);
    if (i >= 0) return lo + i;
    hi = lo;
  }
  return -1;
}

function readFully(fd: number, into: Buffer, position: number): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error('file shrank while its tail was read');
    done += n;
  }
}

/** The chain, sequence and hash of the whole entry that ends `line`, if it is one. */
function lastEntry(text: string): TailInfo['previous'] {
  if (text.endsWith('\r')) text = text.slice(0, -1);
  const at = text.lastIndexOf(MARKER);
  if (at < 0) return undefined;
  const piece = text.slice(at);
  const m = SUFFIX.exec(piece);
  if (!m) return undefined;
  let e: { event?: { sequence?: unknown }; audit?: { chain?: unknown; hash?: unknown } };
  try {
    e = JSON.parse(piece);
  } catch {
    return undefined;
  }
  const chain = e?.audit?.chain;
  const sequence = e?.event?.sequence;
  if (typeof chain !== 'string' || !Number.isSafeInteger(sequence) || (sequence as number) < 1 || e.audit?.hash !== m[1]) {
    return undefined;
  }
  return { chain, sequence: sequence as number, hash: m[1] as string };
}
