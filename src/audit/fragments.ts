// What a torn fragment (a line cut short) can be the beginning of: the verifier's rules for telling a write a
// writer was cut off in from text put there by hand. Pure functions of the fragment's text.

/** Every line starts with these bytes. */
const MARKER = '{"@timestamp":"';

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

// A writer's first line, as src/audit/audit-log.ts and src/audit/chain.ts write it (the test `a new writer's
// first line cut at any byte after a clean stop is a note` reads a real writer's): each step matches a piece
// of it, and a fragment may end inside any step. What a made-up fragment could carry is then the names of
// the log's own services and a host name.
type Step =
  | { lit: string }
  | { any: readonly string[] }
  | { chars: RegExp; min: number; max: number }
  | { json: 'service' | 'host' }
  | { optional: readonly Step[] };

const HEX64: Step = { chars: /[0-9a-f]/, min: 64, max: 64 };
const ID: Step = { chars: /[0-9a-f-]/, min: 1, max: 64 };
const DIGITS: Step = { chars: /[0-9]/, min: 1, max: 16 };
const FIRST_LINE: readonly Step[] = [
  { chars: /[0-9TZ:.+-]/, min: 20, max: 40 }, // the timestamp
  {
    lit: '","event":{"kind":"state","category":"configuration","action":"audit-log-started","outcome":"success","sequence":1},"service":{"name":',
  },
  { json: 'service' },
  { lit: '},"host":{"name":' },
  { json: 'host' },
  { lit: '},"audit":{"chain":"' },
  ID,
  { lit: '","alg":"' },
  { any: ['sha256', 'hmac-sha256'] },
  { lit: `","prev":"${'0'.repeat(64)}","pid":` },
  DIGITS,
  { optional: [{ lit: ',"key_fingerprint":"' }, HEX64, { lit: '"' }] },
  {
    optional: [
      { lit: ',"previous":{"chain":"' },
      ID,
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

/** A host name as Node or an option gives it (RFC 1123 letters, digits, dots, hyphens; underscores seen too). */
const HOST_CHARS = /^[A-Za-z0-9._-]{0,255}$/;

/**
 * Whether a torn fragment can be the beginning of a writer's first line (its start entry, cut short): every
 * piece of it as the writer writes it, its service one of `services` (the JSON text of the services of the
 * log's writers), its host a host name.
 */
export function firstLinePrefix(fragment: string, services: ReadonlySet<string>): boolean {
  if (!fragment.startsWith(MARKER)) return MARKER.startsWith(fragment);
  // (all of a first line and more is no cut first line)
  return run(FIRST_LINE, fragment, MARKER.length, services) === ENDED;
}

const FAIL = -1;
/** The fragment ended inside the steps. */
const ENDED = -2;

/** Matches `steps` from `p`: the position after them, ENDED (the fragment ended inside them), or FAIL. */
function run(steps: readonly Step[], s: string, p: number, services: ReadonlySet<string>): number {
  for (const step of steps) {
    if (p >= s.length) return ENDED;
    let q: number;
    if ('optional' in step) {
      q = run(step.optional, s, p, services);
      if (q === ENDED) return ENDED;
      if (q === FAIL) continue; // not there: the next step
    } else q = one(step, s, p, services);
    if (q < 0) return q;
    p = q;
  }
  return p;
}

function one(step: Exclude<Step, { optional: readonly Step[] }>, s: string, p: number, services: ReadonlySet<string>): number {
  if ('lit' in step) return literal(step.lit, s, p);
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
  // A JSON string: the service's must be one of the log's; a host's a host name.
  const end = stringEnd(s, p);
  if (end === FAIL) return FAIL;
  if (step.json === 'service') {
    const text = s.slice(p, end === ENDED ? s.length : end);
    for (const known of services) {
      if (end === ENDED ? known.startsWith(text) : known === text) return end;
    }
    return FAIL;
  }
  const name = s.slice(p + 1, end === ENDED ? s.length : end - 1);
  return HOST_CHARS.test(name) ? end : FAIL;
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

const SERVICE_AT = ',"service":{"name":';

/** The JSON text of a whole line's service name (`"ehr-api"`), for {@link firstLinePrefix}; undefined without one. */
export function serviceOf(line: string): string | undefined {
  const at = line.indexOf(SERVICE_AT);
  if (at < 0) return undefined;
  const p = at + SERVICE_AT.length;
  const end = stringEnd(line, p);
  return end < 0 ? undefined : line.slice(p, end);
}
