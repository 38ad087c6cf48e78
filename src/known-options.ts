// One check of an options object's shape, for the options a typo would silently weaken: a mistyped
// `trustedProxie` or `signingkey` must not mean "trust every peer" or "sign nothing". TypeScript catches it
// only for object literals.

/** Every option of `T`, for {@link checkOptions}: a missing one fails to compile. */
export type Known<T> = { readonly [K in keyof Required<T>]: true };

/**
 * Throws a `TypeError` when `options` is given but is not a plain object, or names an option that `known`
 * does not list (with the nearest known name, when one is close).
 */
export function checkOptions(options: unknown, known: Known<object>, who: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${who}: options must be an object`);
  }
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(known, key)) continue;
    const near = Object.keys(known).find((k) => distance(k.toLowerCase(), key.toLowerCase()) <= Math.max(2, key.length >> 2));
    throw new TypeError(`${who}: unknown option ${JSON.stringify(key)}${near ? ` (did you mean ${near}?)` : ''}`);
  }
}

/**
 * Throws a `TypeError` for a key of `options` that is not `name` but close to it (`proxyprotocol`,
 * `proxy_protocol`): for an object whose other keys belong to someone else (Node's server options) and cannot
 * all be listed.
 */
export function checkNear(options: object, name: string, who: string): void {
  const folded = name.toLowerCase();
  for (const key of Object.keys(options)) {
    if (key === name) continue;
    const k = key.toLowerCase().replace(/[-_]/g, '');
    if (distance(k, folded) <= 2) throw new TypeError(`${who}: unknown option ${JSON.stringify(key)} (did you mean ${name}?)`);
  }
}

/** Levenshtein distance (short names only: a typo's suggestion). */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        (row[j] as number) + 1,
        (next[j - 1] as number) + 1,
        (row[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length] as number;
}
