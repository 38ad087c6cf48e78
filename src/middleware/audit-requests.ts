// Auditing a server whose handler the app writes itself (plain node:http, https, http2 compatibility
// servers, Next.js custom servers…): the same request lifecycle as the middleware, run by the server's
// 'request' event before any listener of the app.
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ClientAddress, type ClientIpOptions, compileClientIpOption } from '../client-ip.js';
import { type AuditMiddlewareOptions, type Begin, compileRequestAudit } from './request-audit.js';
import { interceptEvent } from './server-events.js';

/** Options of {@link auditRequests}: those of `auditLog`, with the request as the callbacks' argument. */
export type AuditRequestsOptions = AuditMiddlewareOptions<IncomingMessage> & {
  /**
   * Also decide the client address as `clientIp()` does (spoof-proof `X-Forwarded-For`, `trustForwardedFrom`)
   * before the app sees the request: `true`, or `clientIp()`'s options. Default false: the entry records the
   * connection's client (the PROXY header's source) and the headers stay as received.
   */
  clientIp?: boolean | ClientIpOptions;
};

/** The answer to a request refused before the app saw it (see `Begin`). */
export function refuse(req: IncomingMessage, res: ServerResponse, decision: Begin): void {
  res.statusCode = 503;
  // HTTP/2 forbids connection-specific headers (RFC 9113 §8.2.2): there the stream ends, the session stays.
  if (decision === 'closing') {
    if (req.httpVersionMajor !== 2) res.setHeader('connection', 'close');
  } else res.setHeader('retry-after', '5');
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.end(decision === 'closing' ? 'Service Unavailable: shutting down\n' : 'Service Unavailable: audit log unavailable\n');
}

/**
 * Audits every request of an `http`, `https` or `http2` server (its `'request'` event, and `'checkContinue'`
 * and `'checkExpectation'` for requests with an `Expect` header, so also an HTTP/2 server's compatibility API; streams served with the `'stream'` event are not requests of it): one entry per
 * request, written when the response ends (its last bytes wait until the line is written) or when the
 * connection closes first, exactly as the `auditLog` middleware of the Express and Koa adapters — without a
 * framework. It runs before every `'request'` listener, whenever they were added; while the log fails closed
 * or is closing, the app never sees the request and it is answered `503`. Returns the server. Throws a
 * `TypeError` for bad options or for a server audited twice.
 *
 * @param options.log the log from `createAuditLog` (required)
 * @param options.user `(req) => id`: opaque user id for `user.id`, read when the request ends
 * @param options.skip `(req) => boolean`: no entry (e.g. health checks)
 * @param options.path `'path'` (default) | `(req) => string`: what `url.path` holds (there is no route template)
 * @param options.queryKeys record query parameter names, never values (default false)
 * @param options.requestIdHeader default `x-request-id`
 * @param options.echoRequestId set the id on the response too (default false)
 * @param options.clientIp `true` or `clientIp()`'s options: spoof-proof `X-Forwarded-For` (default false)
 * @example
 * ```ts
 * const server = withProxyProtocol(http.createServer(handler));
 * auditRequests(server, { log, user: (req) => sessions.get(req.headers.cookie)?.userId });
 * log.watch(server);
 * ```
 */
export function auditRequests<S extends EventEmitter>(server: S, options: AuditRequestsOptions): S {
  const resolve = compileClientIpOption(options?.clientIp);
  // The decided address of each request, when the clientIp option is on (kept off the request object: no
  // property the app did not ask for).
  const decided = resolve === undefined ? undefined : new WeakMap<IncomingMessage, ClientAddress>();
  const begin = compileRequestAudit<IncomingMessage>(options, {
    route: () => undefined,
    client: (req) => decided?.get(req),
  });
  const auditRequest = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (resolve !== undefined) decided?.set(req, resolve(req));
    const decision = begin(req, req, res);
    if (decision === 'skip' || decision === 'serve') return true;
    if (decision !== 'drop') refuse(req, res, decision);
    return false;
  };
  // A request with an `Expect` header comes as 'checkContinue' (`100-continue`) or 'checkExpectation' (any other)
  // instead of 'request' when the server has a listener for it.
  for (const event of ['request', 'checkContinue', 'checkExpectation'])
    interceptEvent<IncomingMessage, ServerResponse>(server, event, auditRequest, 'auditRequests');
  return server;
}
