// Physical lines of a file, streamed: plain or gzip-compressed (rotated files), never the whole file in memory.
import { open } from 'node:fs/promises';
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
  // The read stream owns the handle from here on (autoClose) and is destroyed in every case below.
  const raw = fh.createReadStream({ start: 0, highWaterMark: 256 * 1024 });
  let input: Readable = raw;
  if (magic[0] === 0x1f && magic[1] === 0x8b) {
    const gunzip = createGunzip();
    raw.on('error', (err) => gunzip.destroy(err));
    input = raw.pipe(gunzip);
  }
  try {
    return await split(input, onLine);
  } finally {
    raw.destroy();
    input.destroy();
  }
}

async function split(input: Readable, onLine: (text: string, line: number) => void): Promise<FileEnd> {
  let n = 0;
  let held: Buffer[] = [];
  let heldBytes = 0;
  let last = 0x0a;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    if (chunk.length === 0) continue;
    last = chunk[chunk.length - 1] as number;
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
      onLine(text, ++n);
      from = nl + 1;
    }
    if (from < chunk.length) hold(Buffer.from(chunk.subarray(from)));
  }
  if (held.length > 0) onLine(Buffer.concat(held).toString('utf8'), ++n);
  return { endsWithNewline: last === 0x0a };

  function hold(b: Buffer): void {
    const room = MAX_LINE_BYTES - heldBytes;
    if (room <= 0) return;
    const kept = b.length > room ? b.subarray(0, room) : b;
    held.push(kept);
    heldBytes += kept.length;
  }
}
