// Reading Node's request and response objects cheaply.
//
// Express gives every request and response a hidden class of its own (Object.setPrototypeOf, then properties
// added per request): each property looked up on them misses V8's caches, and one found on a prototype walks
// the chain first. So the accessors and methods of Node's own prototypes are looked up once, here, and called
// directly; other objects (HTTP/2 compatibility requests and responses) take the plain path.
import { EventEmitter } from 'node:events';
import { IncomingMessage, OutgoingMessage, type ServerResponse } from 'node:http';

function accessor(proto: object, name: string): ((this: unknown) => unknown) | undefined {
  const get = Object.getOwnPropertyDescriptor(proto, name)?.get;
  return typeof get === 'function' ? get : undefined;
}
const outgoingFinished = accessor(OutgoingMessage.prototype, 'writableFinished');
const outgoingHeadersSent = accessor(OutgoingMessage.prototype, 'headersSent');
const incomingHeaders = accessor(IncomingMessage.prototype, 'headers');
const outgoingGetHeader = OutgoingMessage.prototype.getHeader;
export const addListener = EventEmitter.prototype.on;

export function writableFinished(res: ServerResponse): boolean {
  return outgoingFinished !== undefined && res instanceof OutgoingMessage
    ? (outgoingFinished.call(res) as boolean)
    : res.writableFinished;
}

export function headersSent(res: ServerResponse): boolean {
  return outgoingHeadersSent !== undefined && res instanceof OutgoingMessage
    ? (outgoingHeadersSent.call(res) as boolean)
    : res.headersSent;
}

export function headersOf(req: IncomingMessage): IncomingMessage['headers'] {
  return incomingHeaders !== undefined && req instanceof IncomingMessage
    ? (incomingHeaders.call(req) as IncomingMessage['headers'])
    : req.headers;
}

export function responseHeader(res: ServerResponse, name: string): ReturnType<ServerResponse['getHeader']> {
  return res instanceof OutgoingMessage ? outgoingGetHeader.call(res, name) : (res as ServerResponse).getHeader(name);
}

/** The longest `url.path` an entry holds. */
export const MAX_PATH = 2048;
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * The path of a request target, without query. A fragment is never part of a request (RFC 9110 §7.1): one a
 * client sent anyway is not logged either.
 */
export function pathOf(url: string): string {
  // The absolute form (`GET http://user:pass@host/path`, RFC 9112 §3.2.2), which Node accepts: its scheme,
  // user information and authority are not the path (and a password is never logged).
  if (url.charCodeAt(0) !== 0x2f && ABSOLUTE.test(url)) {
    const at = url.indexOf('/', url.indexOf('//') + 2);
    const q = url.search(/[?#]/);
    if (at < 0 || (q >= 0 && q < at)) return '/';
    url = url.slice(at);
  }
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 0x3f || c === 0x23) return url.slice(0, i); // ? #
  }
  return url;
}
