// A batch as the data of `COPY … FROM STDIN` (PostgreSQL's text format): one row per line, columns separated
// by tabs, NULL as \N, and a backslash, tab, newline or carriage return inside a value written as \\, \t, \n
// or \r (https://www.postgresql.org/docs/current/sql-copy.html, "Text Format").
import type { Row } from './row.js';
import { COLUMNS } from './row.js';

const SPECIAL = /[\\\t\n\r]/;
const SPECIALS = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** One value in COPY's text format. */
function field(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'number') return String(v);
  return SPECIAL.test(v) ? v.replace(SPECIALS, (c) => ESCAPES[c] as string) : v;
}

/** The COPY data of `rows`: the columns of {@link COLUMNS}, then `line` and `source`. */
export function copyData(rows: readonly Row[], source: string): Buffer {
  const tail = `\t${field(source)}\n`;
  let out = '';
  for (const r of rows) {
    for (const [key] of COLUMNS) out += `${field(r[key] as string | number | null)}\t`;
    out += field(r.line) + tail;
  }
  return Buffer.from(out);
}
