// queryAuditLog: files → lines → verify → filter, as an async iterable of matching entries.

import type { KeyObject } from 'node:crypto';
import { Verifier, type VerifyResult } from '../audit/verifier.js';
import { checkOptions, type Known } from '../known-options.js';
import { queryStore, type StoreSource } from '../store/query-store.js';
import { type AuditEntry, type EntryView, view } from './entry.js';
import { type CompiledFilter, compileFilter, type QueryFilters } from './filter.js';
import { orderFiles, readLines } from './sources.js';

/** Options of {@link queryAuditLog} and {@link auditReport}. */
export interface QueryOptions {
  /** The `hashKey` the log was written with (HMAC chains). Default: none. */
  hashKey?: string | Buffer;
  /** The Ed25519 public key: checkpoints are checked and cut tails found. Default: none. */
  publicKey?: KeyObject | string | Buffer;
  /**
   * At most this many matches are yielded. Reading (and verifying) goes on to the end of the sources, so
   * the verdict still covers everything. Default: no limit.
   */
  limit?: number;
  /** "Now" for relative times (`7d`). Default: `Date.now()` when the query is made. */
  now?: number;
}

/** One matching entry. */
export interface QueryMatch {
  /** The entry's text, exactly as in the file (without newline). */
  line: string;
  entry: AuditEntry;
  /** Its fields, read defensively. */
  fields: EntryView;
  /** Where it was read. */
  source: string;
  /** 1-based physical line within `source`. */
  lineNumber: number;
  /** Whether it verified (hash, link, checkpoint); a chain's ending is judged in the result. */
  verified: boolean;
}

/** What a finished query found: the verification of everything read, and counts. */
export interface QueryResult extends VerifyResult {
  /** Entries that matched the filters (also those past `limit`). */
  matched: number;
  /** Matches yielded (at most `limit`). */
  yielded: number;
  /** Matches that did not verify. */
  unverifiedMatches: number;
  /** False when the caller stopped iterating before the end of the sources (then the verdict covers less). */
  complete: boolean;
}

/**
 * A running query: iterate it (once) for the matches; {@link AuditQuery.result} resolves when the
 * iteration has ended, with the verification verdict over every line read.
 */
export interface AuditQuery extends AsyncIterable<QueryMatch> {
  readonly result: Promise<QueryResult>;
  /** The filters as understood (times made absolute), for the record of who asked what. */
  readonly filters: Record<string, string[]>;
  /** The files, in the order they are read. */
  readonly sources: string[];
}

const KNOWN: Known<QueryOptions> = { hashKey: true, publicKey: true, limit: true, now: true };

function checkQueryOptions(options: QueryOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  checkOptions(options, KNOWN, 'queryAuditLog');
  const { limit } = options;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0))
    throw new TypeError('limit must be a non-negative integer');
}

/**
 * Reads audit files, verifies every chain in them while filtering, and yields the entries that match every
 * filter given. Files may be named in any order: each rotated set is read oldest first, `.gz` files are
 * decompressed. Configuration errors (a bad filter, a bad key) throw a `TypeError` at once; a missing or
 * unreadable file is a finding (`unreadable`, verdict `cannot-verify`), not an exception.
 *
 * @example
 * ```ts
 * const q = queryAuditLog(['audit.jsonl', 'audit.jsonl.1.gz'], { ip: '203.0.113.7', from: '24h' });
 * for await (const m of q) console.log(m.fields.timestamp, m.fields.path, m.verified);
 * const r = await q.result; // r.verdict: 'intact' | 'tampered' | 'cannot-verify' | 'unsealed'
 * ```
 */
export function queryAuditLog(files: string | readonly string[], filters?: QueryFilters, options?: QueryOptions): AuditQuery;
/**
 * The same query over a PostgreSQL audit table made by `pg-init` (see {@link queryStore}): answered from its
 * indexes, each answered row's hash recomputed (whole chains: `verifyAuditLog({ postgres })`).
 *
 * @example
 * ```ts
 * const q = queryAuditLog({ postgres: process.env.AUDIT_DB }, { user: 'dr-lee', from: '30d' });
 * ```
 */
export function queryAuditLog(store: StoreSource, filters?: QueryFilters, options?: QueryOptions): AuditQuery;
/** Files or a store, as decided at run time. */
export function queryAuditLog(
  source: string | readonly string[] | StoreSource,
  filters?: QueryFilters,
  options?: QueryOptions,
): AuditQuery;
export function queryAuditLog(
  files: string | readonly string[] | StoreSource,
  filters: QueryFilters = {},
  options: QueryOptions = {},
): AuditQuery {
  if (files !== null && typeof files === 'object' && !Array.isArray(files)) {
    checkQueryOptions(options);
    return queryStore(filters, { ...options, ...(files as StoreSource) });
  }
  const list = typeof files === 'string' ? [files] : (files as readonly string[]);
  if (!Array.isArray(list) || list.length === 0 || !list.every((f) => typeof f === 'string' && f !== '')) {
    throw new TypeError('queryAuditLog: give one or more file names');
  }
  checkQueryOptions(options);
  const filter = compileFilter(filters, options.now ?? Date.now());
  const verifier = new Verifier({ hashKey: options.hashKey, publicKey: options.publicKey });
  return runQuery(orderFiles(list), filter, verifier, options.limit ?? Number.POSITIVE_INFINITY);
}

function runQuery(files: string[], filter: CompiledFilter, verifier: Verifier, limit: number): AuditQuery {
  let settle!: (r: QueryResult) => void;
  let fail!: (e: unknown) => void;
  const result = new Promise<QueryResult>((res, rej) => {
    settle = res;
    fail = rej;
  });
  // A caller that never awaits the result must not see an unhandled rejection: the error also ends the loop.
  result.catch(() => {});
  let started = false;
  const counts = { matched: 0, yielded: 0, unverifiedMatches: 0 };

  async function* matches(): AsyncGenerator<QueryMatch> {
    if (started) throw new Error('queryAuditLog: a query can be iterated only once');
    started = true;
    let complete = false;
    try {
      for await (const batch of readLines(files)) {
        if ('error' in batch) {
          verifier.endSource(batch.file);
          verifier.unreadable(batch.file, batch.error);
          continue;
        }
        if ('endsWithNewline' in batch) {
          verifier.endSource(batch.file, { endsWithNewline: batch.endsWithNewline });
          continue;
        }
        const { file, first, lines } = batch;
        for (let i = 0; i < lines.length; i++) {
          const text = lines[i] as string;
          const found = verifier.line(text, { source: file, line: first + i });
          // Cheap test first: most lines of a large log are ruled out without parsing them whole (the verifier
          // parses an entry in full only when `entry` is read; parsing every line was 60% of the time of
          // bench/query.mjs).
          if (found.length === 0 || !filter.mayMatch(text)) continue;
          for (const { entry, text: line, ok } of found) {
            const fields = view(entry as AuditEntry);
            if (!filter.match(fields)) continue;
            counts.matched++;
            if (!ok) counts.unverifiedMatches++;
            if (counts.yielded >= limit) continue;
            counts.yielded++;
            yield { line, entry: entry as AuditEntry, fields, source: file, lineNumber: first + i, verified: ok };
          }
        }
      }
      complete = true;
    } catch (err) {
      fail(err);
      throw err;
    } finally {
      settle({ ...verifier.end(), ...counts, complete });
    }
  }

  return {
    result,
    filters: filter.description,
    sources: files,
    [Symbol.asyncIterator]: matches,
  };
}
