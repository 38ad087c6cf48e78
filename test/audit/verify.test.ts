import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  createAuditLog,
  Verifier,
  VerifyCodes,
  type VerifyOptions,
  type VerifyResult,
  VerifySeverities,
  verifyAuditLog,
} from '../../src/index.js';
import { joined, logFile, TestChain, type Tip } from './log-builder.js';
import { tmpFile } from './util.js';

const keys = generateKeyPairSync('ed25519');
const otherKeys = generateKeyPairSync('ed25519');
const signed = () => new TestChain({ signingKey: keys.privateKey });
const withPub: VerifyOptions = { publicKey: keys.publicKey };

/** [code, line] of every finding, for exact comparison. */
function codes(r: VerifyResult): [string, number | undefined][] {
  return r.findings.map((f) => [f.code, f.line]);
}

/** Where a chain stands: what a writer opening the file next records as `previous`. */
function tipOf(chain: TestChain): Tip {
  return chain.tip;
}

/** The `previous` naming one given line. */
function tipOfLine(line: string): Tip {
  const e = JSON.parse(line);
  return { chain: e.audit.chain, sequence: e.event.sequence, hash: e.audit.hash };
}

/**
 * Writer A writes two entries and crashes while writing its third (a 70-byte fragment); writer B opens the
 * file, terminates the fragment and names A's last whole line; `edit` may change B's lines.
 */
function tornThenNext(edit: (lines: string[]) => string[] = (l) => l): string {
  const a = new TestChain();
  const b = new TestChain();
  const lines = [a.start(), a.request('/1')];
  const tip = tipOf(a);
  const torn = a.request('/2').slice(0, 70);
  return `${joined(lines)}${torn}\n${joined(edit(b.life(3, 5, tip)))}`;
}

/** A clean chain's lines with `line` inserted as the third line. */
function withLine(line: string): string {
  const lines = new TestChain().life(2);
  lines.splice(2, 0, line);
  return joined(lines);
}

interface Case {
  name: string;
  /** The file's text. */
  text: () => string | Buffer;
  options?: VerifyOptions;
  verdict: VerifyResult['verdict'];
  exitCode: number;
  findings: [string, number | undefined][];
  entries?: number;
  status?: Record<number, string>;
}

const cases: Case[] = [
  {
    name: 'one clean writer',
    text: () => joined(new TestChain().life(5)),
    verdict: 'intact',
    exitCode: 0,
    findings: [],
    entries: 7,
    status: { 0: 'closed' },
  },
  {
    name: 'a writer that crashed, witnessed by the next writer of the file',
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const lines = [a.start(), a.request('/1'), a.request('/2')];
      return joined([...lines, ...b.life(2, 5, tipOf(a))]);
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [['writer-crashed', 3]],
    status: { 0: 'witnessed', 1: 'closed' },
  },
  {
    name: 'a torn fragment terminated by the next writer, which verification reads past',
    text: () => tornThenNext(),
    verdict: 'intact',
    exitCode: 0,
    findings: [
      ['torn-fragment', 3],
      ['writer-crashed', 2],
    ],
    entries: 2 + 5,
    status: { 0: 'witnessed', 1: 'closed' },
  },
  {
    name: 'an edit after a torn fragment is still found',
    text: () => tornThenNext((rest) => rest.map((l, i) => (i === 2 ? l.replace('/r/1', '/r/9') : l))),
    verdict: 'tampered',
    exitCode: 1,
    findings: [
      ['torn-fragment', 3],
      ['hash-mismatch', 6],
      ['writer-crashed', 2],
    ],
  },
  {
    name: "a fragment with another writer's whole line glued after it, rewritten whole further down",
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const a1 = a.start();
      const b1 = b.start(tipOf(a));
      const a2 = a.request('/a');
      const b2 = b.request('/b');
      // A's write of a2 was cut short, B's line landed right after the fragment; A rewrote a2 whole later.
      return joined([a1, b1, a2.slice(0, 100) + b2, a2, ...a.stop(), ...b.stop()]);
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [['torn-fragment', 3]],
    entries: 6,
    status: { 0: 'closed', 1: 'closed' },
  },
  {
    name: 'a fragment cut inside a multi-byte character, glued',
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const a1 = a.start();
      const b1 = b.start(tipOf(a));
      const a2 = a.request('/ärzte/€');
      const b2 = b.request('/b');
      const cut = Buffer.from(a2).subarray(0, Buffer.from(a2).indexOf('€') + 1); // one byte of three
      return Buffer.concat([Buffer.from(joined([a1, b1])), cut, Buffer.from(joined([b2, ...b.stop()]))]);
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [
      ['torn-fragment', 3],
      ['writer-crashed', 1],
    ],
    entries: 4,
  },
  {
    name: 'a whole writer deleted (its chain named by the next writer)',
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      a.life(3);
      return joined(b.life(2, 5, tipOf(a)));
    },
    verdict: 'tampered',
    exitCode: 1,
    findings: [['witness-missing', 1]],
  },
  {
    name: 'a whole HMAC writer deleted',
    options: { hashKey: 'k3y' },
    text: () => {
      const a = new TestChain({ hashKey: 'k3y' });
      const b = new TestChain({ hashKey: 'k3y' });
      a.life(3);
      return joined(b.life(2, 5, tipOf(a)));
    },
    verdict: 'tampered',
    exitCode: 1,
    findings: [['witness-missing', 1]],
  },
  {
    name: 'a whole signed writer deleted',
    options: withPub,
    text: () => {
      const a = signed();
      const b = signed();
      const c = new TestChain({ signingKey: keys.privateKey });
      const first = c.life(2);
      a.life(3);
      return joined([...first, ...b.life(6, 5, tipOf(a))]);
    },
    verdict: 'tampered',
    exitCode: 1,
    findings: [['witness-missing', 6]],
  },
  {
    name: 'a fragment put between two entries by hand (no writer leaves one there alone): fragment-unexplained, unsealed',
    text: () => {
      const a = new TestChain();
      const planted =
        '{"@timestamp":"2026-03-01T11:59:59.999Z","event":{"kind":"event","category":"web","action":"http-request"},"user":{"id":"dr-framed"},"url":{"path":"/patients/42"';
      return joined([a.start(), a.request('/1'), planted, a.request('/2'), ...a.stop()]);
    },
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 3],
      ['fragment-unexplained', 3],
    ],
  },
  {
    name: 'a planted fragment is not excused by zero bytes a power loss left at the end, nor by a crash found elsewhere',
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const planted = '{"@timestamp":"2026-03-01T11:59:59.999Z","event":{"kind":"event","category":"web"';
      const lines = [a.start(), planted, a.request('/1')];
      const tip = tipOf(a);
      const torn = a.request('/2', 'crashed-mid-write').slice(0, 150);
      // B found A's torn line (150 bytes) and says so: that excuses it, not the planted one.
      return `${joined([...lines, torn, b.start(tip, Buffer.byteLength(torn)), ...b.stop()])}\0\0\0`;
    },
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 2],
      ['torn-fragment', 4],
      ['torn-fragment', 7],
      ['fragment-unexplained', 2],
      ['writer-crashed', 3],
    ],
  },
  {
    name: 'a fragment written again whole on the next line (a full disk): a note',
    text: () => {
      const a = new TestChain();
      const first = a.start();
      const r1 = a.request('/1');
      return joined([first, r1.slice(0, 120), r1, ...a.stop()]);
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [['torn-fragment', 2]],
  },
  {
    name: 'a fragment written again whole, cut inside a character (U+FFFD in the text read): a note',
    text: () => {
      const a = new TestChain();
      const first = a.start();
      const r1 = a.request('/patients/ärzt€');
      const bytes = Buffer.from(r1);
      const cut = bytes.indexOf(Buffer.from('€')) + 1; // one byte of three
      return `${first}\n${bytes.subarray(0, cut).toString('utf8')}\n${joined([r1, ...a.stop()])}`;
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [['torn-fragment', 2]],
  },
  {
    name: 'a fragment planted before a whole entry on its line, every writer closed cleanly: fragment-unexplained',
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const planted = '{"@timestamp":"2026-03-01T11:59:59.999Z","event":{"kind":"event","category":"web","action":"http-request"';
      const [b1, ...bRest] = b.life(2);
      return joined([...a.life(1), b1 as string, `${planted}${bRest[0]}`, ...bRest.slice(1)]);
    },
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 5],
      ['fragment-unexplained', 5],
    ],
  },
  {
    name: 'a fragment planted as the last piece of a log whose writers all closed cleanly: fragment-unexplained',
    text: () => {
      const a = signed();
      const planted = '{"@timestamp":"2026-03-01T11:59:59.999Z","event":{"kind":"event","category":"web","action":"http-request"';
      return `${joined(a.life(2))}${planted}`;
    },
    options: withPub,
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 6],
      ['fragment-unexplained', 6],
    ],
  },
  {
    name: "a fragment glued before another writer's entry, its own writer crashed before it: a note",
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const a1 = a.start();
      const b1 = b.start();
      const a2 = a.request('/a');
      const torn = a.request('/crashed').slice(0, 100);
      const b2 = b.request('/b');
      // A's writer was killed in a write cut short (a full disk); B went on appending; C later names A's last line.
      const c = new TestChain();
      return joined([
        a1,
        b1,
        a2,
        `${torn}${b2}`,
        ...b.stop(),
        ...c.life(1, 5, { chain: a.id, sequence: 2, hash: tipOfLine(a2).hash }),
      ]);
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [
      ['torn-fragment', 4],
      ['writer-crashed', 3],
    ],
  },
  {
    name: 'a planted start of a first line that goes on as no first line does: fragment-unexplained',
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const start = b.start(a.tip);
      const at = start.indexOf(',"service"');
      const planted = `${start.slice(0, at)},"note":"patient 42 record viewed by dr-evil at 03:00, approved"`;
      return `${joined(a.life(1))}${planted}`;
    },
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 4],
      ['fragment-unexplained', 4],
    ],
  },
  {
    name: 'a planted first line of a service no writer of the log has: fragment-unexplained',
    text: () => {
      const a = new TestChain();
      const b = new TestChain({ service: 'patient 42 record viewed by dr-evil' });
      return `${joined(a.life(1))}${b.start(a.tip).slice(0, 300)}`;
    },
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 4],
      ['fragment-unexplained', 4],
    ],
  },
  {
    name: "a fragment glued after a crashed writer's last entry that is not its next entry: fragment-unexplained",
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const lines = [a.start(), a.request('/1')];
      const tip = tipOf(a);
      a.sequence = 998; // what the planted line claims: sequence 999
      const planted = a.request('/patients/42', 'dr-evil').slice(0, 250);
      return joined([...lines, `${planted}${b.start(tip)}`, ...b.stop()]);
    },
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 3],
      ['fragment-unexplained', 3],
      ['writer-crashed', 2],
    ],
  },
  {
    name: 'a first line cut inside a character of its service name (U+FFFD where the cut is): a note',
    text: () => {
      const a = new TestChain({ service: 'klinik-é'.repeat(20) });
      const b = new TestChain({ service: 'klinik-é'.repeat(20) });
      const start = Buffer.from(b.start(a.tip));
      const cut = start.indexOf(Buffer.from('é')) + 1; // one byte of two
      return `${joined(a.life(1))}${start.subarray(0, cut).toString('utf8')}`;
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [['torn-fragment', 4]],
  },
  {
    name: "free text after a crashed writer's last entry, showing no sequence: fragment-unexplained",
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const lines = [a.start(), a.request('/1')];
      const tip = tipOf(a);
      const planted = '{"@timestamp":"Dr. Lee exported all 4,000 patient records to a USB stick; signed, the CISO';
      return joined([...lines, `${planted}${b.start(tip)}`, ...b.stop()]);
    },
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 3],
      ['fragment-unexplained', 3],
      ['writer-crashed', 2],
    ],
  },
  {
    name: 'a torn fragment swapped for text of another length than the next writer found (torn_bytes): fragment-unexplained',
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const lines = [a.start(), a.request('/1')];
      const tip = tipOf(a);
      const torn = a.request('/2').slice(0, 150);
      const swapped = a.request('/patients/42/export-all', 'dr-lee').slice(0, 120);
      return joined([...lines, swapped, b.start(tip, Buffer.byteLength(torn)), ...b.stop()]);
    },
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 3],
      ['fragment-unexplained', 3],
      ['writer-crashed', 2],
    ],
  },
  {
    name: 'a planted first line whose chain id is no UUID: fragment-unexplained',
    text: () => {
      const a = new TestChain();
      const b = new TestChain({ id: 'decade-faded-facade-beef-cafe-added-dead-bead-fade-babe-face' });
      return `${joined(a.life(1))}${b.start(a.tip).slice(0, 330)}`;
    },
    verdict: 'unsealed',
    exitCode: 3,
    findings: [
      ['torn-fragment', 4],
      ['fragment-unexplained', 4],
    ],
  },
  {
    name: 'the cut first line of a new writer after a clean stop (killed in its first write): a note',
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      return `${joined(a.life(1))}${b.start(a.tip).slice(0, 140)}`;
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [['torn-fragment', 4]],
  },
  {
    name: 'a fragment the next writer found at the end of the file (torn_bytes): a note',
    text: () => {
      const a = new TestChain();
      const b = new TestChain();
      const lines = [a.start(), a.request('/1')];
      const tip = tipOf(a);
      const torn = a.request('/2', 'crashed-mid-write').slice(0, 150);
      return joined([...lines, torn, b.start(tip, Buffer.byteLength(torn)), ...b.stop()]);
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [
      ['torn-fragment', 3],
      ['writer-crashed', 2],
    ],
  },
  {
    name: "a fragment at the file's end (a line being written, or a crash nobody restarted after): a note",
    text: () => {
      const a = new TestChain();
      return `${joined([a.start(), a.request('/1')])}${a.request('/2').slice(0, 90)}`;
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [
      ['torn-fragment', 3],
      ['chain-open', 2],
    ],
  },
  { name: 'an empty file', text: () => '', verdict: 'cannot-verify', exitCode: 2, findings: [['empty-input', undefined]] },
  {
    name: 'blank lines only',
    text: () => '\n\n\n',
    verdict: 'cannot-verify',
    exitCode: 2,
    findings: [['empty-input', undefined]],
  },
  {
    name: 'a fragment only',
    text: () => `${new TestChain().start().slice(0, 30)}`,
    verdict: 'cannot-verify',
    exitCode: 2,
    findings: [
      ['torn-fragment', 1],
      ['empty-input', undefined],
    ],
  },
  {
    name: 'an HMAC log without its key',
    text: () => joined(new TestChain({ hashKey: 'k3y' }).life(3)),
    verdict: 'cannot-verify',
    exitCode: 2,
    findings: [['hash-key-missing', 1]],
  },
  {
    name: 'an HMAC log without its key, with an entry removed',
    text: () => joined(new TestChain({ hashKey: 'k3y' }).life(3).filter((_, i) => i !== 2)),
    verdict: 'cannot-verify',
    exitCode: 2,
    findings: [
      ['hash-key-missing', 1],
      ['sequence-gap', 3],
    ],
  },
  {
    name: 'a plain SHA-256 chain checked with a hashKey',
    options: { hashKey: 'k3y' },
    text: () => joined(new TestChain().life(2)),
    verdict: 'unsealed',
    exitCode: 3,
    findings: [['chain-unkeyed', 1]],
  },
  {
    name: 'a signed chain, closed',
    options: withPub,
    text: () => joined(signed().life(12)),
    verdict: 'intact',
    exitCode: 0,
    findings: [],
    entries: 17,
    status: { 0: 'closed' },
  },
  {
    // start(1) r1-r5(2-6) cp(7, covers 6) r6-r10(8-12) cp(13, covers 12) r11 r12(14, 15) stop(16) final(17)
    name: 'a signed chain cut after its last checkpoint',
    options: withPub,
    text: () => joined(signed().life(12).slice(0, 15)),
    verdict: 'unsealed',
    exitCode: 3,
    findings: [['chain-unsealed', 15]],
    status: { 0: 'unsealed' },
  },
  {
    name: 'a signed chain cut before its final checkpoint only',
    options: withPub,
    text: () => joined(signed().life(12).slice(0, 16)),
    verdict: 'unsealed',
    exitCode: 3,
    findings: [['chain-unsealed', 16]],
  },
  {
    name: 'a signed chain cut, checked without the public key',
    text: () => joined(signed().life(12).slice(0, 15)),
    verdict: 'intact',
    exitCode: 0,
    findings: [
      ['chain-open', 15],
      ['signatures-unchecked', undefined],
    ],
  },
  {
    name: 'a signed chain that crashed, witnessed by the next signed writer',
    options: withPub,
    text: () => {
      const a = signed();
      const b = signed();
      // start(1) r1-r5(2-6) cp(7) r6 r7(8, 9) | stop(10) final(11): crashed after r7.
      const lines = a.life(7).slice(0, 9);
      return joined([...lines, ...b.life(2, 5, tipOfLine(lines[8] as string))]);
    },
    verdict: 'intact',
    exitCode: 0,
    findings: [['writer-crashed', 9]],
    status: { 0: 'witnessed', 1: 'closed' },
  },
  {
    name: 'a checkpoint signed by another key',
    options: { publicKey: otherKeys.publicKey },
    text: () => joined(signed().life(5)),
    verdict: 'tampered',
    exitCode: 1,
    findings: [
      ['checkpoint-key', 7],
      ['checkpoint-key', 9],
      ['chain-unsealed', 9],
    ],
  },
  {
    name: 'an unsigned chain in a log checked with the public key',
    options: withPub,
    text: () => joined(new TestChain().life(2)),
    verdict: 'unsealed',
    exitCode: 3,
    findings: [['chain-unsealed', 4]],
  },
  {
    name: 'an entry after the end of its chain',
    text: () => {
      const a = new TestChain();
      const lines = a.life(2);
      return joined([...lines, a.request('/late')]);
    },
    verdict: 'tampered',
    exitCode: 1,
    findings: [['entry-after-end', 5]],
  },
  {
    name: 'a foreign line',
    text: () => withLine('hello world'),
    verdict: 'tampered',
    exitCode: 1,
    findings: [['not-an-entry', 3]],
  },
  {
    name: 'a JSON line that is not an entry',
    text: () => withLine('{"@timestamp":"2026-03-01T10:00:00.000Z","message":"hi"}'),
    verdict: 'tampered',
    exitCode: 1,
    findings: [['not-an-entry', 3]],
  },
  {
    name: 'CRLF line ends and blank lines',
    text: () => `\r\n${new TestChain().life(2).join('\r\n\r\n')}\r\n`,
    verdict: 'intact',
    exitCode: 0,
    findings: [],
  },
  {
    name: 'an unknown hash algorithm',
    text: () => joined(new TestChain().life(1).map((l) => l.replace('"alg":"sha256"', '"alg":"sha3"'))),
    verdict: 'cannot-verify',
    exitCode: 2,
    findings: [['unknown-algorithm', 1]],
  },
];

describe('verifyAuditLog: verdicts', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const r = await verifyAuditLog(logFile(c.text()), c.options);
      assert.deepEqual(codes(r), c.findings, JSON.stringify(r.findings, null, 1));
      assert.equal(r.verdict, c.verdict);
      assert.equal(r.exitCode, c.exitCode);
      assert.equal(r.ok, c.verdict === 'intact');
      for (const f of r.findings) assert.equal(f.severity, VerifySeverities[f.code]);
      if (c.entries !== undefined) assert.equal(r.entries, c.entries);
      for (const [i, status] of Object.entries(c.status ?? {})) assert.equal(r.chainSummaries[Number(i)]?.status, status);
      if (c.verdict !== 'intact') {
        const severity = { tampered: 'tampered', unsealed: 'unsealed', 'cannot-verify': 'error' }[c.verdict];
        const first = r.findings.find((f) => f.severity === severity);
        assert.equal(r.reason, first?.message);
        assert.equal(r.firstBadLine, first?.line);
      } else assert.equal(r.reason, undefined);
    });
  }

  it('unsealed says how many entries the last checkpoint proves and how many follow unproven', async () => {
    const r = await verifyAuditLog(logFile(joined(signed().life(12).slice(0, 15))), withPub);
    const f = r.findings[0];
    assert.equal(f?.proven, 12);
    assert.equal(f?.unproven, 3);
    assert.match(f?.message ?? '', /proves 12 entries, 3 follow unproven/);
    assert.deepEqual(
      { proven: r.chainSummaries[0]?.proven, unproven: r.chainSummaries[0]?.unproven, checkpoints: r.checkpoints },
      { proven: 12, unproven: 3, checkpoints: 2 },
    );
  });

  it('a crashed and witnessed signed chain: keyed, every entry proven; signed only, those after its last checkpoint unproven', async () => {
    for (const [hashKey, expected] of [
      [undefined, 6],
      ['k3y', 9],
    ] as const) {
      const a = new TestChain({ signingKey: keys.privateKey, hashKey });
      const b = new TestChain({ signingKey: keys.privateKey, hashKey });
      const lines = a.life(7).slice(0, 9);
      const r = await verifyAuditLog(logFile(joined([...lines, ...b.life(2, 5, tipOfLine(lines[8] as string))])), {
        ...withPub,
        hashKey,
      });
      assert.equal(r.verdict, 'intact');
      assert.deepEqual(
        r.chainSummaries.map((c) => [c.status, c.proven, c.unproven]),
        [
          ['witnessed', expected, 9 - expected],
          ['closed', 5, 0],
        ],
      );
    }
  });

  // Someone who can write the file but holds no key cuts a stopped writer's tail and appends a made-up writer
  // (plain SHA-256, unsigned) whose start names the cut point; then the app restarts as usual and its genuine
  // start entry names the made-up writer's last line.
  const forged = (hashKey?: string, signing = true) => {
    const a = new TestChain({ signingKey: signing ? keys.privateKey : undefined, hashKey });
    const lines = a.life(12).slice(0, 9); // (its final checkpoint and stop cut away)
    const fake = new TestChain().life(1, 5, tipOfLine(lines[8] as string));
    const g = new TestChain({ signingKey: signing ? keys.privateKey : undefined, hashKey });
    return logFile(joined([...lines, ...fake, ...g.life(2, 5, tipOfLine(fake[fake.length - 1] as string))]));
  };

  it('a made-up writer between a cut tail and a restart proves nothing: with hashKey and the public key, unsealed', async () => {
    const r = await verifyAuditLog(forged('k3y'), { ...withPub, hashKey: 'k3y' });
    assert.equal(r.verdict, 'unsealed');
    assert.deepEqual(
      r.chainSummaries.map((c) => [c.status, c.proven, c.unproven]),
      [
        ['unsealed', 6, 3],
        ['witnessed', 0, 3],
        ['closed', 5, 0],
      ],
    );
    assert.ok(r.findings.some((f) => f.code === 'chain-unkeyed' && f.chain === r.chainSummaries[1]?.id));
    const cut = r.findings.find((f) => f.code === 'chain-unsealed');
    assert.match(cut?.message ?? '', /names its last line, but is a chain without the hashKey/);
  });

  it('… with the public key alone: the made-up writer has no checkpoint over its start, so the cut chain is unsealed', async () => {
    const r = await verifyAuditLog(forged(), withPub);
    assert.equal(r.verdict, 'unsealed');
    assert.deepEqual(
      r.chainSummaries.map((c) => c.status),
      ['unsealed', 'witnessed', 'closed'],
    );
    assert.equal(r.chainSummaries[1]?.proven, 0, 'nothing signed proves the made-up entries');
    const cut = r.findings.find((f) => f.code === 'chain-unsealed' && f.chain === r.chainSummaries[0]?.id);
    assert.match(cut?.message ?? '', /names its last line, but is a chain no signed checkpoint covers there/);
  });

  it('… with the hashKey alone: the made-up writer is unkeyed (unsealed), and the cut chain reads open', async () => {
    const r = await verifyAuditLog(forged('k3y', false), { hashKey: 'k3y' });
    assert.equal(r.verdict, 'unsealed');
    assert.deepEqual(
      r.chainSummaries.map((c) => c.status),
      ['open', 'closed', 'closed'],
    );
    assert.ok(r.findings.some((f) => f.code === 'chain-unkeyed' && f.chain === r.chainSummaries[1]?.id));
  });

  it('a witness must be in the same file: a chain named from another file is missing', async () => {
    const a = new TestChain();
    const b = new TestChain();
    const one = logFile(joined(a.life(2)));
    const two = logFile(joined(b.life(2, 5, tipOf(a))));
    const r = await verifyAuditLog([one, two]);
    assert.deepEqual(codes(r), [['witness-missing', 1]]);
    assert.equal(r.findings[0]?.source, two);
    assert.equal(r.verdict, 'tampered');
  });

  it('rotated files, oldest first and gzip-compressed, verify together; the newest alone cannot be verified', async () => {
    const a = new TestChain();
    const old = [a.start(), a.request('/1'), a.request('/2')];
    const fresh = [a.reopen(), a.request('/3'), ...a.stop()];
    const oldGz = tmpFile('audit.jsonl.1.gz');
    writeFileSync(oldGz, gzipSync(joined(old)));
    const cur = logFile(joined(fresh));
    const both = await verifyAuditLog([oldGz, cur]);
    assert.equal(both.verdict, 'intact', JSON.stringify(both.findings));
    assert.equal(both.entries, 6);
    const alone = await verifyAuditLog(cur);
    assert.deepEqual(codes(alone), [['head-not-given', 1]]);
    assert.equal(alone.exitCode, 2);
    const reversed = await verifyAuditLog([cur, oldGz]);
    assert.equal(reversed.verdict, 'cannot-verify');
  });

  it('an unreadable file cannot be verified, and the files after it are still read', async () => {
    const good = logFile(joined(new TestChain().life(1)));
    const r = await verifyAuditLog(['/nonexistent/audit.jsonl', good]);
    assert.equal(r.verdict, 'cannot-verify');
    assert.equal(r.exitCode, 2);
    assert.equal(r.findings[0]?.code, VerifyCodes.UNREADABLE);
    assert.equal(r.findings[0]?.source, '/nonexistent/audit.jsonl');
    assert.equal(r.entries, 3);
  });

  it('a corrupt gzip file cannot be verified', async () => {
    const gz = gzipSync(joined(new TestChain().life(50)));
    const f = tmpFile('bad.gz');
    writeFileSync(f, gz.subarray(0, gz.length - 30));
    const r = await verifyAuditLog(f);
    assert.equal(r.verdict, 'cannot-verify');
    assert.ok(r.findings.some((x) => x.code === 'unreadable'));
  });

  it('a witness further back than the window is a note when its chain passed there, tampered when not', async () => {
    const a = new TestChain();
    const c = new TestChain();
    const b = new TestChain();
    const lines = [a.start(), a.request('/1')];
    const named = tipOf(a);
    lines.push(a.request('/2'), c.start());
    for (let i = 0; i < 6; i++) lines.push(c.request(`/c${i}`));
    lines.push(...b.life(1, 5, named), ...a.stop(), ...c.stop());
    const far = await verifyAuditLog(logFile(joined(lines)), { witnessWindow: 3 });
    assert.deepEqual(codes(far), [['witness-unchecked', 11]]);
    assert.equal(far.verdict, 'intact');
    const near = await verifyAuditLog(logFile(joined(lines)));
    assert.deepEqual(codes(near), []);
    const forged = lines.map((l) => l.replace(named.hash, 'f'.repeat(64)));
    const bad = await verifyAuditLog(logFile(joined(forged)), { witnessWindow: 100 });
    assert.equal(bad.verdict, 'tampered');
    assert.ok(bad.findings.some((f) => f.code === 'witness-missing'));
  });

  it('keeps at most maxFindings findings, the worst ones first, and counts them all', async () => {
    const a = new TestChain();
    const lines = [a.start()];
    for (let i = 0; i < 20; i++) lines.push(a.request(`/${i}`).slice(0, 50));
    lines.push(a.request('/x').replace('/x', '/y'));
    const r = await verifyAuditLog(logFile(joined(lines)), { maxFindings: 5 });
    assert.equal(r.findings.length, 5);
    assert.equal(
      r.findingsTotal,
      20 + 20 + 2 + 1,
      'each fragment a note and, unexplained, tampered; a gap, a chain open; an edit',
    );
    assert.ok(r.findings.some((f) => f.code === 'hash-mismatch'));
    assert.ok(r.findings.some((f) => f.code === 'sequence-gap'));
    assert.equal(r.verdict, 'tampered');
    assert.equal(r.fragments, 20);
  });

  it('rejects bad arguments with a TypeError', async () => {
    await assert.rejects(verifyAuditLog([]), TypeError);
    await assert.rejects(verifyAuditLog(42 as unknown as string), TypeError);
    await assert.rejects(verifyAuditLog('x', { maxFindings: 0 }), TypeError);
    await assert.rejects(verifyAuditLog('x', { publicKey: generateKeyPairSync('x25519').publicKey }), TypeError);
    await assert.rejects(verifyAuditLog('x', { publicKey: 'not a key' }), TypeError);
  });
});

describe('Verifier: one line at a time', () => {
  const where = (line: number) => ({ source: 'mem', line });

  it('returns each whole entry with its parsed object and whether it verified; nothing for blanks and fragments', () => {
    const a = new TestChain();
    const b = new TestChain();
    const a1 = a.start();
    const b1 = b.start(a.tip);
    const a2 = a.request('/a');
    const b2 = b.request('/b');
    const v = new Verifier();
    assert.deepEqual(v.line('', where(1)), []);
    const [one] = v.line(a1, where(2));
    assert.equal(one?.entry.event.action, 'audit-log-started');
    assert.equal(one?.text, a1);
    assert.equal(one?.ok, true);
    assert.equal(v.line(b1, where(3))[0]?.ok, true);
    const glued = v.line(a2.slice(0, 90) + b2, where(4));
    assert.deepEqual(
      glued.map((e) => [e.text, e.ok, e.entry.audit.chain]),
      [[b2, true, b.id]],
    );
    assert.deepEqual(v.line(a2.slice(0, 90), where(5)), []);
    const [edited] = v.line(a2.replace('/a', '/z'), where(6));
    assert.equal(edited?.ok, false, 'an edited entry is returned, flagged');
    assert.equal(edited?.entry.url && (edited.entry.url as { path: string }).path, '/z');
    const r = v.end();
    assert.equal(r.verdict, 'tampered');
    assert.deepEqual(codes(r), [
      ['torn-fragment', 4],
      ['torn-fragment', 5],
      ['hash-mismatch', 6],
      ['chain-open', 6],
      ['chain-open', 4],
    ]);
    assert.throws(() => v.line(a1, where(7)), /after end/);
  });

  it('two whole entries glued together are both returned and verified', () => {
    const a = new TestChain();
    const [l1, l2, l3] = a.life(1);
    const v = new Verifier();
    const got = v.line(`${l1}${l2}`, where(1));
    assert.deepEqual(
      got.map((e) => [e.entry.event.sequence, e.ok]),
      [
        [1, true],
        [2, true],
      ],
    );
    v.line(l3 as string, where(2));
    assert.equal(v.end().verdict, 'intact');
  });

  it('an HMAC entry without the key is returned not ok, its structure still checked', () => {
    const a = new TestChain({ hashKey: 'k' });
    const v = new Verifier();
    const [e] = v.line(a.start(), where(1));
    assert.equal(e?.ok, false);
    assert.equal(v.end().exitCode, 2);
  });

  it('endSource: a whole entry without its newline is a note; a witness never crosses sources', () => {
    const a = new TestChain();
    const b = new TestChain();
    const v = new Verifier();
    for (const [i, l] of a.life(1).entries()) v.line(l, { source: 'one', line: i + 1 });
    v.endSource('one', { endsWithNewline: false });
    v.line(b.start(a.tip), { source: 'two', line: 1 });
    const r = v.end();
    assert.deepEqual(
      r.findings.map((f) => [f.code, f.source, f.line]),
      [
        ['missing-newline', 'one', 3],
        ['witness-missing', 'two', 1],
        ['chain-open', 'two', 1],
      ],
    );
  });

  it('validates its options', () => {
    assert.throws(() => new Verifier({ witnessWindow: 0 }), TypeError);
    assert.throws(() => new Verifier({ maxFindings: 1.5 }), TypeError);
    assert.throws(() => new Verifier({ hashKey: 5 as unknown as string }), TypeError);
    assert.throws(() => new Verifier(null as unknown as VerifyOptions), TypeError);
  });

  it('every code has a severity, and the codes are distinct', () => {
    const values = Object.values(VerifyCodes);
    assert.equal(new Set(values).size, values.length);
    assert.deepEqual(Object.keys(VerifySeverities).sort(), [...values].sort());
  });
});

describe('Verifier: properties', () => {
  const a = new TestChain({ signingKey: keys.privateKey });
  const b = new TestChain({ signingKey: keys.privateKey });
  const aLines = a.life(6);
  const bLines = b.life(6, 5, a.tip);
  const text = joined([...aLines, ...bLines]);

  it('a file cut at any byte is never tampered: intact without the key, unsealed with it unless only whole chains are left', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Buffer.byteLength(text) }), (cut) => {
        const v = new Verifier(withPub);
        const w = new Verifier();
        const lines = Buffer.from(text).subarray(0, cut).toString('utf8').split('\n');
        lines.forEach((l, i) => {
          v.line(l, { source: 'f', line: i + 1 });
          w.line(l, { source: 'f', line: i + 1 });
        });
        const signedResult = v.end();
        const plainResult = w.end();
        const expected = signedResult.entries === 0 ? 'cannot-verify' : undefined;
        assert.ok(['intact', 'unsealed', expected].includes(signedResult.verdict), JSON.stringify(signedResult.findings));
        assert.ok(['intact', expected].includes(plainResult.verdict), JSON.stringify(plainResult.findings));
        // Intact with the key only where the cut left nothing but whole chains (A alone, or all of it).
        if (signedResult.verdict === 'intact') assert.ok(signedResult.chainSummaries.every((c) => c.status === 'closed'));
        else if (signedResult.entries > 0) assert.ok(signedResult.chainSummaries.some((c) => c.status === 'unsealed'));
      }),
      { numRuns: 200 },
    );
  });

  it('a cut near any line boundary is never tampered either', () => {
    const bytes = Buffer.from(text);
    const cuts = new Set<number>();
    for (let at = 0; at >= 0 && at < bytes.length; at = bytes.indexOf(0x0a, at) + 1 || -1) {
      for (let k = -3; k <= 20; k++) if (at + k >= 0 && at + k <= bytes.length) cuts.add(at + k);
    }
    for (const cut of cuts) {
      const v = new Verifier(withPub);
      bytes
        .subarray(0, cut)
        .toString('utf8')
        .split('\n')
        .forEach((l, i) => {
          v.line(l, { source: 'f', line: i + 1 });
        });
      const r = v.end();
      assert.ok(['intact', 'unsealed', 'cannot-verify'].includes(r.verdict), `cut at ${cut}: ${JSON.stringify(r.findings)}`);
    }
  });

  it("a new writer's first line cut at any byte after a clean stop is a note", async () => {
    const file = tmpFile();
    for (let i = 0; i < 2; i++) {
      const log = createAuditLog({ filename: file, signingKey: keys.privateKey });
      log.write({ category: 'web', action: 'http-request', outcome: 'success', path: '/a' });
      await log.close();
    }
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    const second = lines.findIndex((l, i) => i > 0 && l.includes('"action":"audit-log-started"'));
    const closed = lines.slice(0, second);
    const first = lines[second] as string;
    const request = lines[second + 1] as string; // the writer's next line: no first line
    for (let k = 1; k < first.length; k++) {
      const v = new Verifier(withPub);
      [...closed, first.slice(0, k)].forEach((l, i) => {
        v.line(l, { source: 'f', line: i + 1 });
      });
      const r = v.end();
      assert.equal(r.verdict, 'intact', `cut at ${k}: ${JSON.stringify(r.findings)}`);
    }
    // Cut past its action, a line that is no writer's first is not excused so.
    const v = new Verifier(withPub);
    [...lines, request.slice(0, 120)].forEach((l, i) => {
      v.line(l, { source: 'f', line: i + 1 });
    });
    const r = v.end();
    assert.equal(r.verdict, 'unsealed');
    assert.deepEqual(codes(r), [
      ['torn-fragment', lines.length + 1],
      ['fragment-unexplained', lines.length + 1],
    ]);
  });

  it("a fragment of any length glued before another writer's line is never tampered", () => {
    const x = new TestChain();
    const y = new TestChain();
    const x1 = x.start();
    const y1 = y.start(x.tip);
    const x2 = x.request('/x/ärzt€');
    const y2 = y.request('/y');
    const rest = [x2, ...x.stop(), ...y.stop()];
    const piece = Buffer.from(x2);
    for (let k = 0; k <= piece.length; k++) {
      const v = new Verifier();
      const physical = [
        x1,
        y1,
        Buffer.concat([piece.subarray(0, k), Buffer.from(y2)]).toString('utf8'),
        ...(k === piece.length ? rest.slice(1) : rest),
      ];
      physical.forEach((l, i) => {
        v.line(l, { source: 'f', line: i + 1 });
      });
      const r = v.end();
      assert.equal(r.verdict, 'intact', `cut at ${k}: ${JSON.stringify(r.findings)}`);
      assert.equal(r.entries, 6);
      assert.equal(r.fragments, k === 0 || k === piece.length ? 0 : 1);
    }
  });

  it('never throws, whatever the text', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.string(),
            fc.constantFrom(...aLines),
            fc.string().map((s) => `{"@timestamp":"${s}`),
          ),
        ),
        (lines) => {
          const v = new Verifier({ hashKey: 'k' });
          lines.forEach((l, i) => {
            v.line(l, { source: 'f', line: i + 1 });
          });
          const r = v.end();
          assert.ok(['intact', 'unsealed', 'tampered', 'cannot-verify'].includes(r.verdict));
        },
      ),
      { numRuns: 300 },
    );
  });
});
