// Batches as PostgreSQL array literals, made by hand: pg's own array serialisation measured 57-90 us per row
// of 16 columns against 19 us for this (micro-measurement of 50,000 rows of bench/store.mjs's file), most
// of it spent escaping the line, which therefore travels separately (joined by newlines, which no line holds).

const NEEDS_ESCAPE = /["\\]/;
const ESCAPE = /["\\]/g;

/** `{…}` for a text/inet/number array; null elements are NULL. */
export function arrayLiteral(values: readonly (string | number | null)[]): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) parts[i] = 'NULL';
    else if (typeof v === 'number') parts[i] = String(v);
    else parts[i] = `"${NEEDS_ESCAPE.test(v) ? v.replace(ESCAPE, '\\$&') : v}"`;
  }
  return `{${parts.join(',')}}`;
}
