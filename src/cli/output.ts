// Writing a long answer to stdout: waits when the pipe is full, stops quietly when the reader has gone
// (`query … | head`).
import { once } from 'node:events';

/** Buffers small writes into larger ones; `write` resolves when stdout can take more. */
export class Output {
  private buf = '';
  /** True once the reader closed the pipe (EPIPE): the caller may stop producing. */
  closed = false;
  /** Any other write error, thrown by the next flush. */
  private failed: Error | undefined;

  constructor(private readonly stream: NodeJS.WritableStream = process.stdout) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') this.closed = true;
      else this.failed ??= err;
    });
  }

  async write(s: string): Promise<void> {
    this.buf += s;
    // 64 KiB per write(2): one system call per few hundred lines instead of one per line; a person at a
    // terminal sees each row as it comes.
    if (this.buf.length >= 65536 || (this.stream as { isTTY?: boolean }).isTTY) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.failed) throw this.failed;
    if (this.buf === '' || this.closed) {
      this.buf = '';
      return;
    }
    const s = this.buf;
    this.buf = '';
    if (this.stream.write(s)) return;
    // (the wait that loses the race is called off: its listeners would otherwise pile up on stdout, one set
    // per full pipe)
    const done = new AbortController();
    const { signal } = done;
    try {
      await Promise.race([once(this.stream, 'drain', { signal }), once(this.stream, 'close', { signal })]);
    } catch (err) {
      // once() rejects with the stream's 'error': a reader gone is the end of the answer, anything else is not.
      if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err;
      this.closed = true;
    } finally {
      done.abort();
    }
  }
}
