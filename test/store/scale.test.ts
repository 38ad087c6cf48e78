// Many instances, one evidence store: 8 audited servers shipping to one PostgreSQL under load, two killed
// by SIGKILL and restarted, the database stopped and started meanwhile. Every answered request must be in
// the table exactly once, and every chain must verify from the store.
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PostgresShipper, pgInit, verifyAuditLog } from '../../src/index.js';
import { sleep, tempDir } from '../helpers.js';
import { needsPostgres, startPostgres, type TestPostgres } from './postgres.js';

const SERVER = join(__dirname, 'fixtures/audited-server.js');
const WRITERS = 8;
const TABLE = 'audit_log';

interface Instance {
  file: string;
  child: ChildProcess;
  port: number | undefined;
}

function get(port: number, path: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('eight instances shipping to one PostgreSQL under faults', needsPostgres(), () => {
  let db: TestPostgres;
  let dir: string;
  let keyFile: string;
  let publicKey: string;
  const instances: Instance[] = [];

  async function launch(file: string): Promise<Instance> {
    const child = fork(SERVER, [file, db.url, TABLE, keyFile], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const inst: Instance = { file, child, port: undefined };
    const [msg] = (await once(child, 'message')) as [{ port: number }];
    inst.port = msg.port;
    return inst;
  }

  before(async () => {
    db = await startPostgres();
    dir = tempDir('ppa-scale-');
    const keys = generateKeyPairSync('ed25519');
    keyFile = join(dir, 'signing.key');
    writeFileSync(keyFile, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await pgInit({ postgres: { connectionString: db.url, table: TABLE } });
  });
  after(async () => {
    for (const i of instances) if (i.child.exitCode === null) i.child.kill('SIGKILL');
    await db?.stop();
  });

  it('every answered request is in the table exactly once; every chain verifies', { timeout: 120_000 }, async () => {
    for (let i = 0; i < WRITERS; i++) instances.push(await launch(join(dir, `w${i}.jsonl`)));
    const answered: string[] = [];
    let failed = 0;
    let next = 0;
    let running = true;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const worker = async (w: number) => {
      while (running) {
        const inst = instances[(w + next) % WRITERS] as Instance;
        next++;
        if (inst.port === undefined) {
          await sleep(5);
          continue;
        }
        const path = `/r/${w}-${next}`;
        try {
          const status = await get(inst.port, path, agent);
          if (status === 200) answered.push(path);
          else failed++;
        } catch {
          failed++; // killed mid-request: no answer, so nothing to find
        }
      }
    };
    const load = Array.from({ length: 16 }, (_, w) => worker(w));

    await sleep(3000);
    // Two instances die: one comes back on its own file (it witnesses the dead chain's last line), the other on
    // a new disk: its old file is shipped by a sidecar afterwards, and its chain stays unsealed.
    const killed = [instances[0], instances[1]] as Instance[];
    for (const k of killed) {
      k.port = undefined;
      k.child.kill('SIGKILL');
      await once(k.child, 'exit');
    }
    const oldFile = (instances[1] as Instance).file;
    instances[0] = await launch((instances[0] as Instance).file);
    instances[1] = await launch(join(dir, 'w1-new.jsonl'));
    await sleep(2000);
    await db.stop();
    await sleep(4000);
    await db.start();
    await sleep(4000);
    running = false;
    await Promise.all(load);
    agent.destroy();
    for (const i of instances) i.child.kill('SIGTERM');
    for (const i of instances) {
      const [code] = i.child.exitCode === null ? ((await once(i.child, 'exit')) as [number]) : [i.child.exitCode];
      assert.equal(code, 0, `${i.file}: log.close() failed`);
    }
    const sidecar = new PostgresShipper({
      filename: oldFile,
      postgres: { connectionString: db.url, table: TABLE },
      follow: false,
    });
    sidecar.start();
    await sidecar.close(30_000);

    assert.ok(answered.length > 500, `only ${answered.length} requests answered`);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const r = await client.query(`SELECT path, count(*)::int AS n FROM ${TABLE} WHERE action = 'http-request' GROUP BY path`);
      const seen = new Map<string, number>(r.rows.map((row) => [row.path as string, row.n as number]));
      const missing = answered.filter((p) => !seen.has(p));
      const twice = answered.filter((p) => (seen.get(p) ?? 0) > 1);
      assert.deepEqual(missing, [], `${missing.length} of ${answered.length} answered requests are not in the table`);
      assert.deepEqual(twice, [], 'answered requests stored more than once');
      const dup = await client.query(
        `SELECT count(*)::int AS n FROM (SELECT chain, sequence FROM ${TABLE} GROUP BY 1, 2 HAVING count(*) > 1) d`,
      );
      assert.equal(dup.rows[0].n, 0);
    } finally {
      await client.end();
    }

    const v = await verifyAuditLog({ postgres: { connectionString: db.url, table: TABLE }, publicKey });
    assert.ok(!v.findings.some((f) => f.severity === 'tampered' || f.severity === 'error'), JSON.stringify(v.findings));
    const statuses = v.chainSummaries.map((c) => c.status).sort();
    // 8 + 2 restarted writers; the one restarted on its file witnessed its predecessor's end.
    assert.deepEqual(statuses, [...Array(WRITERS).fill('closed'), 'unsealed', 'witnessed'].sort());
    assert.equal(v.verdict, 'unsealed');
    assert.equal(v.exitCode, 3);
    console.log(
      `scale: ${answered.length} answered, ${failed} failed or cut, ${v.entries} entries in ${v.chains} chains verified`,
    );
  });
});
