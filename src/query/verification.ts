// The verification step of a query: the streaming verifier's interface, as the query uses it.
import type { KeyObject } from 'node:crypto';

export interface QueryVerifyResult {
  ok: boolean;
  verdict: 'intact' | 'unsealed' | 'tampered' | 'cannot-verify';
  exitCode: 0 | 1 | 2 | 3;
  entries: number;
  findings: { code: string; severity: string; message: string; source?: string; line?: number }[];
}

export interface LineVerifier {
  line(text: string, where: { source: string; line: number }): readonly { entry: unknown; text: string; ok: boolean }[];
  endSource(source: string, info: { endsWithNewline?: boolean }): void;
  unreadable(source: string, err: Error): void;
  end(): QueryVerifyResult;
}

/** Interim: parses lines without verifying them (every verdict is cannot-verify). */
export function createLineVerifier(_options: {
  hashKey?: string | Buffer;
  publicKey?: KeyObject | string | Buffer;
}): LineVerifier {
  let entries = 0;
  const findings: QueryVerifyResult['findings'] = [];
  return {
    line(text) {
      try {
        const entry = JSON.parse(text);
        entries++;
        return [{ entry, text, ok: false }];
      } catch {
        return [];
      }
    },
    endSource() {},
    unreadable(source, err) {
      findings.push({ code: 'unreadable', severity: 'error', message: `${source}: ${err.message}`, source });
    },
    end() {
      return { ok: false, verdict: 'cannot-verify', exitCode: 2, entries, findings };
    },
  };
}
