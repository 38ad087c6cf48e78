import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import TransportStream from 'winston-transport';
import { createAuditLog, verifyAuditLog } from '../../src/index.js';
import { tmpFile } from './util.js';

const MESSAGE = Symbol.for('message');

/** A winston transport that keeps every line it is given, as a user's CloudWatch or syslog transport would. */
class Memory extends TransportStream {
  lines: string[] = [];
  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    this.lines.push(info[MESSAGE] as string);
    callback();
  }
}

function fileLines(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}

function write(log: ReturnType<typeof createAuditLog>, n: number, tag: string): void {
  for (let i = 0; i < n; i++) {
    log.write({ category: 'web', action: 'http-request', outcome: 'success', path: `/${tag}/${i}` });
  }
}

describe('winston transports', () => {
  it('extra transports beside the file receive every sealed line, byte for byte', async () => {
    const file = tmpFile();
    const memory = new Memory();
    const log = createAuditLog({ filename: file, transports: [memory], service: 't' });
    write(log, 25, 'a');
    await log.close();
    const lines = fileLines(file);
    assert.equal(lines.length, 27); // started + 25 + stopped
    assert.deepEqual(memory.lines, lines);
    assert.equal((await verifyAuditLog(file)).ok, true);
  });

  it('transports alone (no file): every line reaches them and close() resolves', async () => {
    const memory = new Memory();
    const log = createAuditLog({ transports: [memory], service: 't' });
    write(log, 10, 'b');
    await log.close();
    assert.equal(memory.lines.length, 12);
    assert.deepEqual(
      memory.lines.map((l) => JSON.parse(l).event.sequence),
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
  });

  it('transports added and removed through log.logger: each entry reaches the file once, and the new transport while it is attached', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file, service: 't' });
    write(log, 5, 'before');
    // Entries are sealed (and handed to the transports attached then) at the end of the turn they are
    // written in: drained() seals them now.
    await log.drained();
    const memory = new Memory();
    log.logger.add(memory);
    write(log, 5, 'during');
    await new Promise((r) => setImmediate(r));
    log.logger.remove(memory);
    write(log, 5, 'after');
    await log.close();
    const lines = fileLines(file);
    const paths = lines.map((l) => JSON.parse(l).url?.path).filter(Boolean);
    assert.deepEqual(paths, [
      ...Array.from({ length: 5 }, (_, i) => `/before/${i}`),
      ...Array.from({ length: 5 }, (_, i) => `/during/${i}`),
      ...Array.from({ length: 5 }, (_, i) => `/after/${i}`),
    ]);
    assert.deepEqual(
      memory.lines.map((l) => JSON.parse(l).url.path),
      Array.from({ length: 5 }, (_, i) => `/during/${i}`),
    );
    const v = await verifyAuditLog(file);
    assert.equal(v.ok, true, v.reason);
    assert.equal(v.entries, 17);
  });

  it('a transport that fails on its way out is reported; close() resolves, the file holds and verifies every entry', async () => {
    const file = tmpFile();
    const log = createAuditLog({ filename: file, transports: [new FailsAtStop()] });
    const errors: Error[] = [];
    log.on('error', (e) => errors.push(e));
    write(log, 3, 'x');
    await new Promise((r) => setTimeout(r, 50)); // (the entries reached the transport)
    await log.close();
    assert.deepEqual(
      errors.map((e) => e.message),
      ['syslog down'],
    );
    assert.equal(fileLines(file).length, 5, 'start, three entries, stop');
    const v = await verifyAuditLog(file);
    assert.equal(v.ok, true);
  });

  it('with a failing disk too, close() rejects once with ERR_PROXY_AUDIT_LOST, and nothing is left unhandled', {
    skip: !existsSync('/dev/full') && 'no /dev/full',
  }, async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown) => unhandled.push(r);
    process.on('unhandledRejection', onUnhandled);
    try {
      const log = createAuditLog({
        filename: '/dev/full',
        transports: [new FailsAtStop()],
        onSinkError: 'fail-open',
        retryInterval: 50,
      });
      log.on('error', () => {});
      write(log, 1, 'x');
      await new Promise((r) => setTimeout(r, 50)); // (the entry reached the transport)
      await assert.rejects(log.close({ flushTimeout: 300 }), { code: 'ERR_PROXY_AUDIT_LOST' });
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(unhandled, []);
    } finally {
      process.removeListener('unhandledRejection', onUnhandled);
    }
  });
});

/** A transport (syslog, say) that fails on the log's last line. */
class FailsAtStop extends TransportStream {
  override log(info: Record<string | symbol, unknown>, callback: (err?: Error) => void): void {
    const stop = String(info[MESSAGE]).includes('audit-log-stopped');
    setImmediate(() => callback(stop ? new Error('syslog down') : undefined));
  }
}
