// Points in time for --from/--to: ISO-8601, or relative to now ("7d" is seven days ago).

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const RELATIVE = /^(\d{1,9})([smhdw])$/;
// Date, or date and time with an optional fraction and offset. Without an offset the time is UTC, as every
// `@timestamp` of the log is (Date.parse would read it as local time).
const ISO = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * Milliseconds since the epoch of `value`: a `Date`, a number of milliseconds, an ISO-8601 date
 * (`2024-03-01`, midnight UTC) or date-time (`2024-03-01T08:00`, UTC unless an offset is given), or a
 * duration before `now`: `30s`, `15m`, `12h`, `7d`, `2w`. Throws a `TypeError` for anything else.
 *
 * @example
 * ```ts
 * parseTime('7d', Date.parse('2024-03-08T00:00:00Z')); // Date.parse('2024-03-01T00:00:00Z')
 * ```
 */
export function parseTime(value: Date | number | string, now: number, name = 'time'): number {
  if (value instanceof Date) value = value.getTime();
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`${name}: not a finite number of milliseconds`);
    return value;
  }
  if (typeof value !== 'string') throw new TypeError(`${name}: expected a Date, a number or a string`);
  const rel = RELATIVE.exec(value);
  if (rel) return now - Number(rel[1]) * (UNITS[rel[2] as string] as number);
  const iso = ISO.exec(value);
  if (iso) {
    const [, date, time, zone] = iso;
    const offset = zone === undefined ? 'Z' : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone;
    const text = time === undefined ? `${date}T00:00:00Z` : `${date}T${time}${offset}`;
    const day = Date.parse(`${date}T00:00:00Z`);
    const ms = Date.parse(text);
    // Date.parse rolls 2024-02-30 over to March; a date that does not exist is a mistake.
    if (Number.isFinite(ms) && Number.isFinite(day) && new Date(day).toISOString().slice(0, 10) === date) return ms;
  }
  throw new TypeError(`${name}: ${JSON.stringify(value)} is neither ISO-8601 nor a duration like 7d or 12h`);
}
