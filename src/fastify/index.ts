/**
 * Fastify adapter: the `clientIp` and `auditLog` plugins.
 * @packageDocumentation
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyPluginCallback, FastifyPluginOptions, FastifyReply, FastifyRequest } from 'fastify';
import { isAudited } from '../audited.js';
import { type ClientAddress, type ClientIpOptions, compileClientIp, compileClientIpOption } from '../client-ip.js';
import { clientIpOf, clientPortOf } from '../connection/socket-info.js';
import { type AuditMiddlewareOptions, compileRequestAudit } from '../middleware/request-audit.js';
import { interceptEvent } from '../middleware/server-events.js';

export type { ClientIpOptions } from '../client-ip.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The client IP from the PROXY header (or the socket), set by the `clientIp` plugin. IPv4-mapped IPv6 is unmapped. */
    clientIp: string;
    /** The client port, when known (not when the address came from `X-Forwarded-For`). */
    clientPort: number | undefined;
  }
}

// Fastify's conventions for a plugin that applies to the app that registers it rather than to a context of
// its own (what the fastify-plugin package sets): no runtime dependency needed for three symbols.
const kSkipOverride = Symbol.for('skip-override');
const kDisplayName = Symbol.for('fastify.display-name');
const kMeta = Symbol.for('plugin-meta');

/**
 * A plugin from its setup function: bad options reach Fastify as the error of `register` (a throw inside a
 * plugin escapes avvio as an uncaught exception).
 */
function appWide<O extends FastifyPluginOptions>(
  name: string,
  setup: (fastify: FastifyInstance, options: O) => void,
): FastifyPluginCallback<O> {
  const plugin: FastifyPluginCallback<O> = (fastify, options, done) => {
    try {
      setup(fastify, options);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  };
  return Object.assign(plugin, { [kSkipOverride]: true, [kDisplayName]: name, [kMeta]: { name } });
}

/** An address the plugin took from `X-Forwarded-For` (or the app assigned); null: the connection's client. */
const kDecided = Symbol('proxy-protocol-audit.fastify.clientIp');

type Req = FastifyRequest & { [kDecided]?: ClientAddress | { ip: string; port: number | undefined } | null };

/**
 * `request.clientIp` and `request.clientPort` as accessors of Fastify's request prototype (declared once per
 * app, so every request has the same shape): they read the connection's client (what the PROXY header said)
 * unless an address from `X-Forwarded-For` or an assignment was stored. `request.ip` reports the same address
 * — unless Fastify's `trustProxy` is set, which defines its own `ip`.
 */
function decorate(fastify: FastifyInstance): void {
  if (fastify.hasRequestDecorator('clientIp')) return;
  fastify.decorateRequest(kDecided as unknown as string, null);
  fastify.decorateRequest('clientIp', {
    getter(this: FastifyRequest): string {
      return (this as Req)[kDecided]?.ip ?? clientIpOf(this.raw.socket) ?? '';
    },
    setter(this: FastifyRequest, ip: string) {
      (this as Req)[kDecided] = { ip, port: this.clientPort };
    },
  });
  fastify.decorateRequest('clientPort', {
    getter(this: FastifyRequest): number | undefined {
      const d = (this as Req)[kDecided];
      return d ? d.port : clientPortOf(this.raw.socket);
    },
    setter(this: FastifyRequest, port: number | undefined) {
      (this as Req)[kDecided] = { ip: this.clientIp, port };
    },
  });
  try {
    fastify.decorateRequest('ip', {
      getter(this: FastifyRequest): string {
        return this.clientIp;
      },
    });
  } catch (err) {
    // With `trustProxy`, Fastify defines `ip` itself (proxy-addr over the rewritten X-Forwarded-For).
    if ((err as { code?: string }).code !== 'FST_ERR_DEC_ALREADY_PRESENT') throw err;
  }
}

/** What the `clientIp` plugin does to one request (also run by `auditLog` with `clientIp`). */
function setClientIp(resolve: (req: IncomingMessage) => ClientAddress, request: FastifyRequest): void {
  const decided = resolve(request.raw as IncomingMessage);
  (request as Req)[kDecided] = decided.forwarded ? decided : null;
}

/**
 * A plugin's options without those of `register()` itself (`prefix`, `logLevel`, `logSerializers`), which
 * Fastify hands the plugin too: the rest is checked by name.
 */
function ownOptions<T extends object>(options: T): T {
  if (options === null || typeof options !== 'object') return options;
  if (!('prefix' in options || 'logLevel' in options || 'logSerializers' in options)) return options;
  const { prefix: _p, logLevel: _l, logSerializers: _s, ...own } = options as T & Record<string, unknown>;
  return own as T;
}

/**
 * Sets `request.clientIp` and `request.clientPort` from the PROXY header of the connection (or the socket
 * peer), makes `request.ip` agree, and makes `X-Forwarded-For` spoof-proof — for the whole app (the plugin
 * does not open a context of its own).
 *
 * @param options.forwardedFor `'replace'` (default) | `'append'` | `'preserve'`
 * @param options.trustForwardedFrom layer-7 hops whose `X-Forwarded-For` entries are followed (default none)
 * @example
 * ```ts
 * import { clientIp } from 'proxy-protocol-audit/fastify';
 * app.register(clientIp);
 * app.get('/', async (request) => request.clientIp);
 * ```
 */
export const clientIp: FastifyPluginCallback<ClientIpOptions> = appWide(
  'proxy-protocol-audit-client-ip',
  function clientIpPlugin(fastify, options: ClientIpOptions) {
    const resolve = compileClientIp(ownOptions(options));
    decorate(fastify);
    fastify.addHook('onRequest', function clientIp(request, _reply, next) {
      setClientIp(resolve, request);
      next();
    });
  },
);

/** Options of the Fastify `auditLog` plugin (the callbacks receive the request). */
export type FastifyAuditOptions = AuditMiddlewareOptions<FastifyRequest> & {
  /** Also do what the `clientIp` plugin does, first, in the same hook: `true`, or its options. Default false. */
  clientIp?: boolean | ClientIpOptions;
};

/** A response of the server under Fastify (HTTP/1 or HTTP/2 compatibility). */
type RawResponse = { end: (...args: unknown[]) => unknown; req?: IncomingMessage };

/** The response class's own `end()`. */
function realEnd(res: RawResponse): RawResponse['end'] {
  return (Object.getPrototypeOf(res) as RawResponse).end;
}

/** A callback of the options, given the request where the shared code holds the reply. */
function onRequestOf<R>(fn: ((request: FastifyRequest) => R) | undefined): ((reply: FastifyReply) => R) | undefined {
  return typeof fn === 'function' ? (reply) => fn(reply.request) : fn;
}

/**
 * One audit entry per request of the whole app, written when the reply is sent (its last bytes wait until
 * the line is written) or when the connection closes first; `http.route` is the route's URL template. While
 * the log fails closed, requests are answered 503. Register it before your routes' plugins.
 *
 * @param options.log the log from `createAuditLog` (required)
 * @param options.user `(request) => id`: opaque user id for `user.id`, read when the request ends
 * @param options.skip `(request) => boolean`: no entry (e.g. health checks)
 * @param options.path `'path'` (default) | `'route'` (the URL template, e.g. `/patients/:id`) | `(request) => string`
 * @param options.queryKeys record query parameter names, never values (default false)
 * @param options.requestIdHeader default `x-request-id`
 * @param options.echoRequestId set the id on the response too (default false)
 * @param options.clientIp `true` or the `clientIp` plugin's options: set the client address in the same hook
 * @example
 * ```ts
 * app.register(clientIp);
 * app.register(auditLog, { log, path: 'route', user: (request) => request.user?.id });
 * ```
 */
export const auditLog: FastifyPluginCallback<FastifyAuditOptions> = appWide(
  'proxy-protocol-audit-audit-log',
  function auditLogPlugin(fastify, given: FastifyAuditOptions) {
    const options = ownOptions(given);
    const resolve = compileClientIpOption(options?.clientIp);
    const path = options?.path;
    const begin = compileRequestAudit<FastifyReply>(
      {
        ...(options as AuditMiddlewareOptions<unknown>),
        user: onRequestOf(options?.user),
        skip: onRequestOf(options?.skip),
        path: typeof path === 'function' ? onRequestOf(path) : path,
      } as AuditMiddlewareOptions<FastifyReply>,
      {
        route: (reply) => reply.request.routeOptions?.url,
        client(reply) {
          const r = reply.request as Partial<Req>;
          return r.clientIp === undefined ? undefined : { ip: r.clientIp, port: r.clientPort };
        },
        // Fastify sends its headers with writeHead(status, headers), which getHeader() does not see.
        bytes(reply) {
          const v = reply.getHeader('content-length');
          return v === undefined ? undefined : Number(v);
        },
      },
    );
    // Fastify answers some requests itself before any hook runs: a URL it cannot decode (400), a parameter
    // longer than maxParamLength (414), every request once app.close() began (503, return503OnClosing). Their
    // responses get an entry too: the server's 'request' event (before Fastify's router) gives each response
    // an `end` of ours, which the hook below puts back; when Fastify ends the response without the hook
    // having run, that `end` opens the request's entry then (the connection's client, no route, no user:
    // the callbacks take a Fastify request, which there is none of) and the answer waits for its line.
    const beginRaw = compileRequestAudit<IncomingMessage>(
      {
        ...(options as AuditMiddlewareOptions<unknown>),
        user: undefined,
        skip: undefined,
        path: typeof path === 'function' ? 'path' : path,
      } as AuditMiddlewareOptions<IncomingMessage>,
      { route: () => undefined, client: () => undefined },
    );
    /** Responses whose `end` someone else wrapped between Fastify's router and the hook (see ownEnd). */
    const hooked = new WeakSet<object>();
    function selfAnswered(this: RawResponse, ...args: unknown[]): unknown {
      const real = realEnd(this);
      if (hooked.has(this)) return real.apply(this, args); // the hook ran: its entry is open
      this.end = real;
      const req = this.req;
      if (req === undefined || beginRaw(req, req, this as never) === 'drop') return this;
      return (this.end as typeof real).apply(this, args);
    }
    interceptEvent<IncomingMessage, RawResponse>(
      fastify.server,
      'request',
      (_req, res) => {
        // (a response another audit of the server opened an entry for is left to it: see auditRequests)
        if (!isAudited(res)) res.end = selfAnswered;
        return true;
      },
      'auditLog',
    );
    /** Puts the response's own `end` back before the entry opens (unless another hook wrapped ours). */
    function ownEnd(res: RawResponse): void {
      if (res.end === selfAnswered) res.end = realEnd(res);
      else hooked.add(res);
    }
    if (resolve !== undefined) decorate(fastify);
    fastify.addHook('onRequest', function auditLog(request, reply, next) {
      if (resolve !== undefined) setClientIp(resolve, request);
      ownEnd(reply.raw as unknown as RawResponse);
      const decision = begin(reply, request.raw as IncomingMessage, reply.raw as never);
      if (decision === 'skip' || decision === 'serve') {
        next();
        return;
      }
      if (decision === 'drop') {
        reply.hijack();
        return;
      }
      reply.code(503).type('text/plain; charset=utf-8');
      // HTTP/2 forbids connection-specific headers (RFC 9113 §8.2.2).
      if (decision === 'closing') {
        if (request.raw.httpVersionMajor !== 2) reply.header('connection', 'close');
      } else reply.header('retry-after', '5');
      reply.send(
        decision === 'closing' ? 'Service Unavailable: shutting down\n' : 'Service Unavailable: audit log unavailable\n',
      );
    });
  },
);
