// Reading COPY text rows (verify --postgres's loop without the verifier): CopyRows, which looks for a
// backslash once per buffer, against looking for one in each field (a view of the field's bytes, the id
// read as a string), and against making each line's string alone (what reading a file costs). Rows as
// verify --postgres's COPY gives them (id, 0, line) for the request entries of bench/store.mjs, in 64 KiB
// chunks. Not run by the tests. Knobs: ENTRIES (200000), ROUNDS (7).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { median, writeRequestLog } from './lib.mjs';

const require = createRequire(import.meta.url);
const dist = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'dist', 'cjs');
const { createAuditLog } = require(path.join(dist, 'index.js'));
const { CopyRows, wholeRows } = require(path.join(dist, 'store', 'copy-text.js'));

const ENTRIES = Number(process.env.ENTRIES ?? 200_000);
const ROUNDS = Number(process.env.ROUNDS ?? 7);

const dir = mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-copy-'));
let data;
try {
  const file = path.join(dir, 'audit.jsonl');
  await writeRequestLog(createAuditLog, file, ENTRIES);
  const lines = readFileSync(file, 'utf8').split('\n').slice(0, -1);
  data = Buffer.from(lines.map((l, i) => `${i + 1}\t0\t${l.replaceAll('\\', '\\\\')}\n`).join(''));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const rows = data.toString().split('\n').length - 1;
const CHUNK = 64 * 1024;
async function* chunks() {
  for (let i = 0; i < data.length; i += CHUNK) yield data.subarray(i, i + CHUNK);
}

let sink = 0;
const ways = {
  async copyRows() {
    for await (const buf of wholeRows(chunks())) {
      const row = new CopyRows(buf);
      while (row.next()) sink += row.integer() + row.integer() + row.text().length;
    }
  },
  async perField() {
    for await (const buf of wholeRows(chunks())) {
      for (let at = 0; at < buf.length; ) {
        const nl = buf.indexOf(0x0a, at);
        const tab = buf.indexOf(0x09, at);
        const id = Number(buf.toString('latin1', at, tab));
        const from = tab + 3;
        if (buf.subarray(from, nl).indexOf(0x5c) >= 0) throw new Error('no backslash expected here');
        sink += id + buf.toString('utf8', from, nl).length;
        at = nl + 1;
      }
    }
  },
  async stringsOnly() {
    for await (const buf of wholeRows(chunks())) {
      for (let at = 0; at < buf.length; ) {
        const nl = buf.indexOf(0x0a, at);
        sink += buf.toString('utf8', at, nl).length;
        at = nl + 1;
      }
    }
  },
};
const ns = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (const [k, f] of Object.entries(ways)) {
    const t = process.hrtime.bigint();
    await f();
    ns[k].push(Number(process.hrtime.bigint() - t) / rows);
  }
}
console.log(`copy-text: ${rows} rows, ${(data.length / 1e6).toFixed(0)} MB, ${ROUNDS} rounds (sink ${sink % 7})`);
for (const [k, v] of Object.entries(ns)) {
  console.log(`${k.padEnd(12)} median ${median(v).toFixed(0)} ns/row, best ${Math.min(...v).toFixed(0)}`);
}
