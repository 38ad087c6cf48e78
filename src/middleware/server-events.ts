// Running code before a server's own listeners of one event, whenever those listeners were added, and keeping
// the event from them when that code says so. Node emits 'request' and 'upgrade' through `server.emit`, so an
// own `emit` on this one server sees every one (the same hook `withProxyProtocol` uses for 'connection').
// A listener of ours would not do: it cannot withhold the event from the app's listeners, and an 'upgrade'
// listener changes what Node does (with none, Node hands upgrade requests to 'request').
import type { EventEmitter } from 'node:events';

type Emit = (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;

/** What an intercepted event's two first arguments are (a request and its response or socket). */
export type Before<A, B> = (a: A, b: B, c: unknown) => boolean;

const kIntercepted = Symbol('proxy-protocol-audit.intercepted');

/**
 * Makes `server.emit(event, a, b, c)` call `before(a, b, c)` first; the server's listeners get the event only
 * when it returns true. Throws a `TypeError` when `what` intercepts `event` on this server already (audited twice).
 */
export function interceptEvent<A, B>(server: EventEmitter, event: string, before: Before<A, B>, what: string): void {
  if (!server || typeof server.emit !== 'function' || typeof server.on !== 'function')
    throw new TypeError(`${what}: expected an http, https or http2 server`);
  // (by one kind of audit: another kind may see the same events, and a request still gets one entry)
  const s = server as EventEmitter & { [kIntercepted]?: Set<string> };
  const seen = s[kIntercepted] ?? new Set<string>();
  const key = `${what}\0${event}`;
  if (seen.has(key)) throw new TypeError(`${what}: this server's '${event}' events are audited already`);
  seen.add(key);
  s[kIntercepted] = seen;
  const emit = server.emit as Emit;
  server.emit = function auditedEmit(this: EventEmitter, name: string | symbol, a?: unknown, b?: unknown, c?: unknown): boolean {
    if (name === event) {
      if (!before(a as A, b as B, c)) return false;
      return c === undefined ? emit.call(this, name, a, b) : emit.call(this, name, a, b, c);
    }
    // biome-ignore lint/complexity/noArguments: every other event is forwarded unchanged
    return Reflect.apply(emit, this, arguments);
  } as EventEmitter['emit'];
}
