// Physical lines of a file, streamed: plain or gzip-compressed (rotated files), never the whole file in memory.
import { type FileHandle, open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

/** A physical line longer than this is not an entry; only its first bytes are kept (memory stays bounded). */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

/** How a file ended. */
export interface FileEnd {
  /** Whether the last byte was a newline (or the file was empty). */
  endsWithNewline: boolean;
}

/**
 * Calls `onLine(text, lineNumber)` for every physical line of `file` (without its newline), in order. A file
 * that starts with the gzip magic bytes is decompressed on the way. Lines longer than
 * {@link MAX_LINE_BYTES} are cut to that length. Rejects with the I/O or gzip error.
 */
export async function readLines(file: string, onLine: (text: string, line: number) => void): Promise<FileEnd> {
  let n = 0;
  for await (const batch of lineBatches(file)) {
    if (!Array.isArray(batch)) return batch;
    for (const text of batch) onLine(text, ++n);
  }
  throw new Error('unreachable: lineBatches ends with a FileEnd');
}

/**
 * The physical lines of `file` as {@link readLines} reads them, one array per chunk read (so a consumer that
 * awaits between batches holds back the reading: memory stays bounded), then how the file ended. Throws
 * the I/O or gzip error.
 */
export async function* lineBatches(file: string): AsyncGenerator<string[] | FileEnd> {
  const fh = await open(file, 'r');
  let magic: Buffer;
  try {
    magic = Buffer.alloc(2);
    const { bytesRead } = await fh.read(magic, 0, 2, 0);
    if (bytesRead < 2) magic.fill(0);
  } catch (err) {
    await fh.close();
    throw err;
  }
  if (magic[0] !== 0x1f || magic[1] !== 0x8b) {
    try {
      yield* split(chunks(fh));
    } finally {
      await fh.close();
    }
    return;
  }
  // The read stream owns the handle from here on (autoClose) and is destroyed in every case below.
  const raw = fh.createReadStream({ start: 0, highWaterMark: 256 * 1024 });
  const gunzip = createGunzip();
  raw.on('error', (err) => gunzip.destroy(err));
  const input: Readable = raw.pipe(gunzip);
  try {
    yield* split(input as AsyncIterable<Buffer>);
  } finally {
    raw.destroy();
    input.destroy();
  }
}

/**
 * A plain file's bytes, read into one reused buffer: a read stream allocates a new buffer per chunk, and
 * that much external memory made V8 run a full collection every ~30 MB read (bench/query.mjs: 460 ms of
 * garbage collection per 200,000 entries). Lines are copied out as strings before the next read.
 */
async function* chunks(fh: FileHandle): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafe(256 * 1024);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead === 0) return;
    yield buf.subarray(0, bytesRead);
  }
}

async function* split(input: AsyncIterable<Buffer>): AsyncGenerator<string[] | FileEnd> {
  let held: Buffer[] = [];
  let heldBytes = 0;
  let last = 0x0a;
  for await (const chunk of input) {
    if (chunk.length === 0) continue;
    last = chunk[chunk.length - 1] as number;
    const lines: string[] = [];
    let from = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, from)) {
      let text: string;
      if (held.length === 0) text = chunk.toString('utf8', from, nl);
      else {
        hold(chunk.subarray(from, nl));
        text = Buffer.concat(held).toString('utf8');
        held = [];
        heldBytes = 0;
      }
      lines.push(text);
      from = nl + 1;
    }
    if (from < chunk.length) hold(Buffer.from(chunk.subarray(from)));
    if (lines.length > 0) yield lines;
  }
  if (held.length > 0) yield [Buffer.concat(held).toString('utf8')];
  yield { endsWithNewline: last === 0x0a };

  function hold(b: Buffer): void {
    const room = MAX_LINE_BYTES - heldBytes;
    if (room <= 0) return;
    const kept = b.length > room ? b.subarray(0, room) : b;
    held.push(kept);
    heldBytes += kept.length;
  }
}
