// The one client-address function the Express and Koa adapters share.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { clientIpOf, clientPortOf } from './connection/socket-info.js';
import { headersOf } from './http-objects.js';
import { checkOptions, type Known } from './known-options.js';
import { canonicalIp, compileTrust, type TrustFn, type TrustList, unmapIPv4 } from './trust.js';

/** Options of the `clientIp` middleware (Express and Koa). */
export interface ClientIpOptions {
  /**
   * What the app sees in `X-Forwarded-For`:
   * - `'replace'` (default): exactly the client IP, as nginx's `proxy_set_header X-Forwarded-For
   *   $proxy_protocol_addr`; `X-Real-IP` likewise, and other client-IP headers (`X-Client-IP`,
   *   `True-Client-IP`, `CF-Connecting-IP`, `Fastly-Client-IP`, `X-Cluster-Client-IP`, `Forwarded`) removed,
   *   so no client-supplied value can spoof it;
   * - `'append'`: the received list plus the client IP (nginx `$proxy_add_x_forwarded_for`); the list's
   *   earlier entries are whatever the client sent;
   * - `'preserve'`: headers untouched.
   */
  forwardedFor?: 'replace' | 'append' | 'preserve';
  /**
   * Layer-7 hops in front (IPs, CIDRs, `loopback`/`linklocal`/`uniquelocal`): while the current address is
   * one of them, the next address is taken from `X-Forwarded-For`, right to left, as proxy-addr does.
   * Default: none — the PROXY header (or the socket) is the final word.
   */
  trustForwardedFrom?: TrustList;
}

/** What the middleware decided for one request. */
export interface ClientAddress {
  ip: string;
  /** Undefined when the address came from `X-Forwarded-For`, which carries no port. */
  port: number | undefined;
  /** True when the address came from `X-Forwarded-For` (else it is the connection's client). */
  forwarded: boolean;
}

const SPOOFABLE = ['x-client-ip', 'true-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'x-cluster-client-ip', 'forwarded'];
const REPLACED = new Set(['x-forwarded-for', 'x-real-ip', ...SPOOFABLE]);

/** Whether the request carries a header that `replace` removes (Node's headers object has lower-case names). */
function hasReplaced(h: IncomingHttpHeaders): boolean {
  if (h['x-forwarded-for'] !== undefined || h['x-real-ip'] !== undefined) return true;
  for (const name of SPOOFABLE) if (h[name] !== undefined) return true;
  return false;
}

/** `raw` without the headers `replace` removes, then the client IP headers. */
function rewriteRaw(raw: string[], ip: string, found: boolean): string[] {
  if (!found) {
    // The common case: nothing to remove, the client IP headers are appended in place.
    raw.push('X-Forwarded-For', ip, 'X-Real-IP', ip);
    return raw;
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (!REPLACED.has(name.toLowerCase())) out.push(name, raw[i + 1] as string);
  }
  out.push('X-Forwarded-For', ip, 'X-Real-IP', ip);
  return out;
}

function forwardedList(headers: IncomingHttpHeaders): string[] {
  const v = headers['x-forwarded-for'];
  if (!v) return [];
  return (Array.isArray(v) ? v.join(',') : v).split(',').map((s) => s.trim());
}

const KNOWN: Known<ClientIpOptions> = { forwardedFor: true, trustForwardedFrom: true };

/**
 * Compiles the options once and returns the per-request function: it decides the client address and
 * rewrites the forwarding headers of `req` as configured. Throws a `TypeError` for bad options.
 */
export function compileClientIp(options: ClientIpOptions = {}): (req: IncomingMessage) => ClientAddress {
  checkOptions(options, KNOWN, 'clientIp');
  const { forwardedFor = 'replace', trustForwardedFrom } = options;
  if (forwardedFor !== 'replace' && forwardedFor !== 'append' && forwardedFor !== 'preserve') {
    throw new TypeError("clientIp: forwardedFor must be 'replace', 'append' or 'preserve'");
  }
  const trusted: TrustFn | undefined =
    trustForwardedFrom === undefined ? undefined : compileTrust(trustForwardedFrom, 'clientIp.trustForwardedFrom');

  return function resolveClientAddress(req: IncomingMessage): ClientAddress {
    // '' when the connection's address is unknown (a plain socket that closed before the request was read):
    // the adapters' address is a string, as Koa's `ctx.ip` is.
    const connectionIp = clientIpOf(req.socket) ?? '';
    let ip = connectionIp;
    let port = clientPortOf(req.socket);
    if (trusted?.(ip)) {
      const hops = forwardedList(headersOf(req));
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = canonicalIp(hops[i] as string);
        if (hop === undefined) break; // garbage ends the walk: never trust past it
        ip = hop;
        port = undefined;
        if (!trusted(hop)) break;
      }
    }
    if (ip !== connectionIp) ip = unmapIPv4(ip);
    if (forwardedFor === 'replace') {
      const h = headersOf(req);
      const found = hasReplaced(h);
      const raw = req.rawHeaders;
      const rewritten = rewriteRaw(raw, ip, found);
      if (found) for (const name of SPOOFABLE) if (h[name] !== undefined) delete h[name];
      h['x-forwarded-for'] = ip;
      h['x-real-ip'] = ip;
      if (rewritten !== raw) {
        // In place: an HTTP/2 request's rawHeaders has a getter only (the array it holds).
        raw.splice(0, raw.length, ...rewritten);
      }
    } else if (forwardedFor === 'append') {
      const h = headersOf(req);
      const prior = h['x-forwarded-for'];
      h['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${connectionIp}` : connectionIp;
      // The raw headers say the same: one more X-Forwarded-For line, which readers join to the list above.
      req.rawHeaders.push('X-Forwarded-For', connectionIp);
    }
    return { ip, port, forwarded: ip !== connectionIp };
  };
}

/** The `clientIp` option of the `auditLog` middleware: `true`, `clientIp()`'s options, or off. */
export function compileClientIpOption(
  option: boolean | ClientIpOptions | undefined,
): ((req: IncomingMessage) => ClientAddress) | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return compileClientIp({});
  if (typeof option !== 'object' || option === null)
    throw new TypeError('auditLog: clientIp must be a boolean or clientIp options');
  return compileClientIp(option);
}
