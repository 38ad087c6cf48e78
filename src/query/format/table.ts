// The terminal view of a query: one aligned row per entry.
import type { QueryMatch } from '../query.js';
import { printable } from './text.js';

interface Column {
  title: string;
  /** Widest a value may make the column. */
  max: number;
  /** Narrowest it is. */
  min?: number;
  value(m: QueryMatch): string;
  right?: boolean;
}

const COLUMNS: Column[] = [
  // '!' marks an entry that did not verify.
  // Always one wide, so rows keep their places when a damaged entry comes after the widths are fixed.
  { title: '', max: 1, min: 1, value: (m) => (m.verified ? '' : '!') },
  { title: 'TIME', max: 30, value: (m) => m.fields.timestamp ?? '' },
  { title: 'CLIENT', max: 39, value: (m) => m.fields.clientIp ?? m.fields.peerIp ?? '' },
  { title: 'USER', max: 24, value: (m) => m.fields.userId ?? '' },
  { title: 'METHOD', max: 7, value: (m) => m.fields.method ?? '' },
  // Requests show their path (or route); other entries their action (connection-rejected, audit-log-started…).
  { title: 'PATH', max: 60, value: (m) => m.fields.path ?? m.fields.route ?? m.fields.action ?? '' },
  { title: 'STATUS', max: 6, value: (m) => (m.fields.status === undefined ? '' : String(m.fields.status)), right: true },
  { title: 'OUTCOME', max: 12, value: (m) => m.fields.outcome ?? '' },
];

/** Options of {@link createTableFormatter}. */
export interface TableOptions {
  /** Rows read before column widths are fixed (wider values after that are cut with `…`). Default 200. */
  sample?: number;
}

/** A streaming formatter: `row` returns text to write now (rows wait until the widths are known), `end` the rest. */
export interface Formatter {
  row(m: QueryMatch): string;
  end(): string;
}

function fit(s: string, width: number, right = false): string {
  const t = s.length > width ? `${s.slice(0, Math.max(0, width - 1))}…` : s;
  return right ? t.padStart(width) : t.padEnd(width);
}

/**
 * An aligned table: time, client, user, method, path (route, or action for non-request entries), status,
 * outcome; `-` for an unknown value; a leading `!` marks an entry that did not verify. Widths come from the
 * first `sample` rows; control characters are shown escaped, never sent to the terminal.
 *
 * @example
 * ```ts
 * const t = createTableFormatter();
 * for await (const m of queryAuditLog(files, filters)) process.stdout.write(t.row(m));
 * process.stdout.write(t.end());
 * ```
 */
export function createTableFormatter(options: TableOptions = {}): Formatter {
  const { sample = 200 } = options;
  if (!Number.isSafeInteger(sample) || sample < 1) throw new TypeError('sample must be a positive integer');
  let pending: string[][] | undefined = [];
  let widths: number[] = [];

  const cells = (m: QueryMatch) => COLUMNS.map((c) => printable(c.value(m)) || (c.title === '' ? '' : '-'));
  const render = (row: string[]) =>
    `${row
      .map((v, i) => fit(v, widths[i] as number, COLUMNS[i]?.right))
      .join('  ')
      .trimEnd()}\n`;
  const flush = (): string => {
    const rows = pending ?? [];
    pending = undefined;
    widths = COLUMNS.map((c, i) =>
      Math.min(c.max, Math.max(c.min ?? 0, c.title.length, ...rows.map((r) => (r[i] as string).length))),
    );
    return render(COLUMNS.map((c) => c.title)) + rows.map(render).join('');
  };

  return {
    row: function tableRow(m: QueryMatch): string {
      if (pending === undefined) return render(cells(m));
      pending.push(cells(m));
      return pending.length >= sample ? flush() : '';
    },
    end: function tableEnd(): string {
      return pending === undefined ? '' : flush();
    },
  };
}
