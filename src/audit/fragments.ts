// What a torn fragment (a line cut short) can be the beginning of: the verifier's rules for telling a write a
// writer was cut off in from text put there by hand. Pure functions of the fragment's text.

/** Every line starts with these bytes, and no valid line holds them anywhere else (quotes are escaped). */
export const MARKER = '{"@timestamp":"';

/**
 * Whether the whole line `text` is `fragment` written again whole. A write cut inside a character reads with
 * U+FFFD for its bytes, as the file's text: the fragment then matches up to them.
 */
export function rewrites(text: string, fragment: string): boolean {
  if (text.startsWith(fragment)) return true;
  const cut = fragment.replace(/\uFFFD{1,3}$/, '');
  return cut.length < fragment.length && text.startsWith(cut);
}

/**
 * What the fragment shows of its entry's `event.sequence` and `audit.chain`: the digits or characters there
 * (possibly cut short, then `cut` is true), or undefined when the fragment ends before them.
 */
export interface Shown {
  sequence: { text: string; cut: boolean } | undefined;
  chain: { text: string; cut: boolean } | undefined;
}

const SEQUENCE = /"sequence":(\d*)(.?)/;
const CHAIN = /,"audit":\{"chain":"([0-9a-f-]*)(.?)/;

export function shown(fragment: string): Shown {
  // (the event object comes right after the timestamp; its last member is the sequence)
  const eventEnd = fragment.indexOf('}', MARKER.length);
  const s = SEQUENCE.exec(eventEnd < 0 ? fragment : fragment.slice(0, eventEnd + 1));
  const c = CHAIN.exec(fragment);
  return {
    sequence: s ? { text: s[1] as string, cut: s[2] === '' } : undefined,
    chain: c ? { text: c[1] as string, cut: c[2] === '' } : undefined,
  };
}

/** Whether what a fragment shows (see {@link shown}) can be `actual`. */
export function fits(part: { text: string; cut: boolean } | undefined, actual: string): boolean {
  if (part === undefined) return true;
  return part.cut ? actual.startsWith(part.text) : actual === part.text;
}

// Entries as src/audit/entry.ts, src/audit/audit-log.ts and src/audit/chain.ts write them (the test `a new
// writer's first line cut at any byte after a clean stop is a note` reads a real writer's): each step matches
// a piece of a line, and a fragment may end inside any step. What a made-up fragment could then carry is
// names the log's writers use, a host name, an action name, and hex.
type Step =
  | { lit: string }
  | { any: readonly string[] }
  | { chars: RegExp; min: number; max: number }
  | { json: keyof Names }
  | { uuid: true }
  | { rest: true }
  | { optional: readonly Step[] };

/** What the log's own lines name, as JSON text (`"ehr-api"`): a fragment's names must be among them, or look like one. */
export interface Names {
  services: ReadonlySet<string>;
  hosts: ReadonlySet<string>;
  actions: ReadonlySet<string>;
}

const TIMESTAMP: Step = { chars: /[0-9TZ:.+-]/, min: 20, max: 40 };
const HEX64: Step = { chars: /[0-9a-f]/, min: 64, max: 64 };
const UUID: Step = { uuid: true };
const DIGITS: Step = { chars: /[0-9]/, min: 1, max: 16 };

const FIRST_LINE: readonly Step[] = [
  TIMESTAMP,
  {
    lit: '","event":{"kind":"state","category":"configuration","action":"audit-log-started","outcome":"success","sequence":1},"service":{"name":',
  },
  { json: 'services' },
  { lit: '},"host":{"name":' },
  { json: 'hosts' },
  { lit: '},"audit":{"chain":"' },
  UUID,
  { lit: '","alg":"' },
  { any: ['sha256', 'hmac-sha256'] },
  { lit: `","prev":"${'0'.repeat(64)}","pid":` },
  DIGITS,
  { optional: [{ lit: ',"key_fingerprint":"' }, HEX64, { lit: '"' }] },
  {
    optional: [
      { lit: ',"previous":{"chain":"' },
      UUID,
      { lit: '","sequence":' },
      DIGITS,
      { lit: ',"hash":"' },
      HEX64,
      { lit: '"}' },
    ],
  },
  { optional: [{ lit: ',"torn_bytes":' }, DIGITS] },
  { lit: ',"hash":"' },
  HEX64,
  { lit: '"}}' },
];

/** Any entry up to its sequence; what follows depends on the entry (and the sequence must fit its writer). */
const ENTRY_HEAD: readonly Step[] = [
  TIMESTAMP,
  { lit: '","event":{"kind":"' },
  { any: ['event', 'state'] },
  { lit: '","category":"' },
  { any: ['web', 'network', 'configuration'] },
  { lit: '","action":' },
  { json: 'actions' },
  { lit: ',"outcome":"' },
  { any: ['success', 'failure', 'unknown'] },
  { lit: '"' },
  { optional: [{ lit: ',"duration":' }, DIGITS] },
  { lit: ',"sequence":' },
  DIGITS,
  { rest: true },
];

/** What a name not among the log's may look like: a host name (RFC 1123, up to 253), an action (a token). */
const LOOKS_LIKE: Record<keyof Names, RegExp | undefined> = {
  services: undefined,
  hosts: /^[A-Za-z0-9._-]{1,253}$/,
  actions: /^[A-Za-z0-9._-]{1,128}$/,
};

/**
 * Whether a torn fragment can be the beginning of a writer's first line (its start entry, cut short): every
 * piece of it as the writer writes it, its service one of the log's, its host one of the log's or a host name.
 */
export function firstLinePrefix(fragment: string, names: Names): boolean {
  if (!fragment.startsWith(MARKER)) return MARKER.startsWith(fragment);
  // (all of a first line and more is no cut first line)
  return run(FIRST_LINE, fragment, MARKER.length, names) === ENDED;
}

/**
 * Whether a torn fragment can be the beginning of an entry as the log's writers write them, up to its
 * sequence (whether that sequence fits a writer is for the caller to say: see {@link shown}).
 */
export function entryPrefix(fragment: string, names: Names): boolean {
  if (!fragment.startsWith(MARKER)) return MARKER.startsWith(fragment);
  return run(ENTRY_HEAD, fragment, MARKER.length, names) === ENDED;
}

const FAIL = -1;
/** The fragment ended inside the steps. */
const ENDED = -2;

/** Matches `steps` from `p`: the position after them, ENDED (the fragment ended inside them), or FAIL. */
function run(steps: readonly Step[], s: string, p: number, names: Names): number {
  for (const step of steps) {
    if (p >= s.length) return ENDED;
    let q: number;
    if ('optional' in step) {
      q = run(step.optional, s, p, names);
      if (q === ENDED) return ENDED;
      if (q === FAIL) continue; // not there: the next step
    } else q = one(step, s, p, names);
    if (q < 0) return q;
    p = q;
  }
  return p;
}

function one(step: Exclude<Step, { optional: readonly Step[] }>, s: string, p: number, names: Names): number {
  if ('lit' in step) return literal(step.lit, s, p);
  if ('rest' in step) return ENDED;
  if ('any' in step) {
    for (const option of step.any) {
      const q = literal(option, s, p);
      if (q !== FAIL) return q;
    }
    return FAIL;
  }
  if ('chars' in step) {
    let q = p;
    while (q < s.length && q - p < step.max && step.chars.test(s[q] as string)) q++;
    if (q === s.length) return ENDED;
    return q - p >= step.min ? q : FAIL;
  }
  if ('uuid' in step) {
    // 8-4-4-4-12 lowercase hex, as randomUUID() makes chain ids
    let q = p;
    while (q < s.length && q - p < 36) {
      const i = q - p;
      const c = s[q] as string;
      if (i === 8 || i === 13 || i === 18 || i === 23 ? c !== '-' : !/[0-9a-f]/.test(c)) break;
      q++;
    }
    if (q === s.length) return ENDED;
    return q - p === 36 ? q : FAIL;
  }
  // A JSON string: one of the log's names, or (hosts, actions) one that looks like such a name.
  const end = stringEnd(s, p);
  if (end === FAIL) return FAIL;
  const cut = end === ENDED;
  // (a write cut inside a character reads with U+FFFD for its bytes)
  const text = cut ? s.slice(p).replace(/\uFFFD+$/, '') : s.slice(p, end);
  for (const known of names[step.json]) if (cut ? known.startsWith(text) : known === text) return end;
  const looks = LOOKS_LIKE[step.json];
  const name = cut ? text.slice(1) : text.slice(1, -1);
  return looks !== undefined && (looks.test(name) || (cut && name === '')) ? end : FAIL;
}

function literal(lit: string, s: string, p: number): number {
  const part = s.slice(p, p + lit.length);
  if (part === lit) return p + lit.length;
  return p + part.length === s.length && lit.startsWith(part) ? ENDED : FAIL;
}

/** The end (after the closing quote) of the JSON string at `p`, ENDED when the fragment ends inside it, or FAIL. */
function stringEnd(s: string, p: number): number {
  if (s[p] !== '"') return FAIL;
  for (let q = p + 1; q < s.length; q++) {
    const c = s.charCodeAt(q);
    if (c === 0x22) return q + 1;
    if (c < 0x20) return FAIL;
    if (c === 0x5c) q++; // (an escape: the next character is part of it)
  }
  return ENDED;
}

/** The JSON text of a whole line's string member that follows `at` (`"ehr-api"`), or undefined. */
function stringAfter(line: string, at: string): string | undefined {
  const i = line.indexOf(at);
  if (i < 0) return undefined;
  const p = i + at.length;
  const end = stringEnd(line, p);
  return end < 0 ? undefined : line.slice(p, end);
}

/** The JSON text of a whole line's service name, host name and action, for {@link Names}. */
export function namesOf(line: string): { service?: string; host?: string; action?: string } {
  return {
    service: stringAfter(line, ',"service":{"name":'),
    host: stringAfter(line, '},"host":{"name":'),
    action: stringAfter(line, '","action":'),
  };
}
