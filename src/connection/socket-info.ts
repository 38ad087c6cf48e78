// Where the connection layer keeps what it learned about a socket, and the one place that touches a
// private Node field.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ProxyHeader } from '../protocol/types.js';
import { unmapIPv4 } from '../trust.js';

/** A TCP or header address. */
export interface Endpoint {
  address: string;
  port: number;
  family: string;
}

/** What the connection layer knows about one connection. */
export interface ProxyInfo {
  /** The parsed header; undefined for a connection served without one (`requireHeader: false`). */
  header: ProxyHeader | undefined;
  /**
   * The TCP peer: the load balancer's own address. Like `socket.remoteAddress`, it is asked of the operating
   * system when first read (one `getpeername` call that most connections never need); first read after the
   * connection closed, it is unknown: `address` `''`, `port` 0. The audit middleware reads it when a request
   * starts.
   */
  readonly peer: Endpoint;
  /**
   * The client: the header's source for a PROXY command over IPv4/IPv6, else the TCP peer (LOCAL health
   * checks, UNKNOWN, UNIX, direct connections).
   */
  client: Endpoint;
}

// A registry symbol, so that the ESM and CommonJS entry points (and two copies of the package) agree, and so
// that lookups pass through the Proxy objects http2 hands out as `req.socket`. While the header is being
// read the same slot holds the reader's state (one property per socket, not two: every property added to a
// socket costs on the connection path).
export const kInfo = Symbol.for('proxy-protocol-audit.info');

type Carrier = { [kInfo]?: ConnectionInfo | { reading: true } };

/**
 * The PROXY information of a connection: pass `req.socket` (plain or TLS, HTTP/1 or HTTP/2) or the
 * socket of a `'connection'`/`'secureConnection'` event. Undefined for sockets the layer did not handle.
 *
 * @example
 * ```ts
 * const info = getProxyInfo(req.socket);
 * console.log(info?.client.address, 'via', info?.peer.address);
 * ```
 */
export function getProxyInfo(socket: Socket | object | null | undefined): ProxyInfo | undefined {
  return infoOf(socket);
}

function infoOf(socket: Socket | object | null | undefined): ConnectionInfo | undefined {
  const v = socket ? (socket as Carrier)[kInfo] : undefined;
  return v !== undefined && 'client' in v ? v : undefined;
}

/** The client IP of a connection as an app sees it (from the PROXY header, else the TCP peer), IPv4-mapped IPv6 unmapped. */
export function clientIpOf(socket: Socket | null | undefined): string {
  const info = infoOf(socket);
  return unmapIPv4(info ? info.client.address : (socket?.remoteAddress ?? ''));
}

/** The client port of a connection, the companion of {@link clientIpOf}. */
export function clientPortOf(socket: Socket | null | undefined): number | undefined {
  const info = infoOf(socket);
  return info ? info.client.port : socket?.remotePort;
}

/** The two ends of a connection as an audit sees them: IPv4-mapped IPv6 unmapped. */
export interface ConnectionEnds {
  /** Undefined when unknown (a socket without a PROXY header, first asked after it closed). */
  clientIp: string | undefined;
  clientPort: number | undefined;
  /** Undefined when unknown (first asked after the connection closed). */
  peerIp: string | undefined;
  peerPort: number | undefined;
}

/**
 * The client (from the PROXY header, else the TCP peer) and the TCP peer (the balancer) of a socket. The one
 * function the middleware and the audit log use, so they never disagree about an address.
 */
export function connectionEnds(socket: Socket | null | undefined): ConnectionEnds {
  const info = infoOf(socket);
  if (info) {
    const { peer, client } = info;
    return {
      clientIp: unmapIPv4(client.address),
      clientPort: client.port,
      peerIp: peer.address === '' ? undefined : unmapIPv4(peer.address),
      peerPort: peer.address === '' ? undefined : peer.port,
    };
  }
  const address = socket?.remoteAddress;
  if (address === undefined) return { clientIp: undefined, clientPort: undefined, peerIp: undefined, peerPort: undefined };
  const ip = unmapIPv4(address);
  const port = socket?.remotePort;
  return { clientIp: ip, clientPort: port, peerIp: ip, peerPort: port };
}

type PeerCache = { _peername?: { address?: string; port?: number; family?: string } | null; _getpeername?: unknown };

/** The peer an unused socket reports through Node's public getters (one `getpeername` call, then cached). */
export function socketPeer(socket: Socket): Endpoint | undefined {
  const address = socket.remoteAddress;
  if (address === undefined) return undefined;
  return { address, port: socket.remotePort ?? 0, family: socket.remoteFamily ?? (address.includes(':') ? 'IPv6' : 'IPv4') };
}

const UNKNOWN: Endpoint = Object.freeze({ address: '', port: 0, family: '' });

/**
 * The info of one connection. The TCP peer is read from the socket only when first asked for: one
 * `getpeername` system call per connection measured ~3% of the cost of a new connection, and most
 * connections never need the balancer's port.
 */
export class ConnectionInfo implements ProxyInfo {
  readonly header: ProxyHeader | undefined;
  readonly client: Endpoint;
  /** Whether the client came from the header (and so differs from the peer). */
  readonly proxied: boolean;
  #peer: Endpoint | undefined;
  #socket: Socket | undefined;
  /** Set when the socket reports the client through the `_peername` cache: the peer is read under it. */
  #cached = false;

  /** `client` undefined: the client is the peer, which must then be known. */
  constructor(socket: Socket, header: ProxyHeader | undefined, client: Endpoint | undefined, peer: Endpoint | undefined) {
    this.header = header;
    this.proxied = client !== undefined;
    this.#peer = peer;
    this.#socket = peer === undefined ? socket : undefined;
    this.client = client ?? peer ?? UNKNOWN;
  }

  get peer(): Endpoint {
    if (this.#peer === undefined) {
      const socket = this.#socket as Socket;
      this.#peer = (this.#cached ? peerUnderCache(socket) : socketPeer(socket)) ?? UNKNOWN;
      this.#socket = undefined;
    }
    return this.#peer;
  }

  /** @internal `socket` now reports the client from Node's peer cache */
  markCached(socket: Socket): void {
    if (socket === this.#socket) this.#cached = true;
  }

  toJSON(): { header: ProxyHeader | undefined; peer: Endpoint; client: Endpoint } {
    return { header: this.header, peer: this.peer, client: this.client };
  }
}

/** Stores `info` on a socket and, when asked, makes the socket report the client as its remote end. */
export function attachInfo(socket: Socket, info: ConnectionInfo, override: boolean): void {
  (socket as Carrier)[kInfo] = info;
  if (override && info.proxied) reportClient(socket, info);
}

/**
 * Makes `socket.remoteAddress`, `remotePort` and `remoteFamily` report the client, so that every reader
 * (`req.ip`, morgan, …) sees the client without any change of theirs.
 *
 * Fast path (private Node field): net.Socket's getters read the peer that `_getpeername()` caches in
 * `_peername`; filling that cache with the client changes no object shape, where three own properties measured
 * several microseconds per connection in the HTTP code that touches the socket afterwards, and it costs no
 * system call. test/connection/socket-info.test.ts fails loudly if a Node release drops the cache; the
 * fallback below (public defineProperty) keeps working meanwhile.
 */
export function reportClient(socket: Socket, info: ConnectionInfo): void {
  const s = socket as unknown as PeerCache;
  const { client } = info;
  if (typeof s._getpeername === 'function') {
    // Same key order as the object Node fills in (address, family, port): one shape for every cache.
    s._peername = { address: client.address, family: client.family, port: client.port };
    if (socket.remoteAddress === client.address && socket.remotePort === client.port) {
      info.markCached(socket);
      return;
    }
    s._peername = null;
  }
  void info.peer; // read before the getters are shadowed
  Object.defineProperty(socket, 'remoteAddress', { value: client.address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: client.port, configurable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: client.family, configurable: true });
}

/** The TCP peer of a socket whose `_peername` cache holds the client: read with the cache set aside. */
function peerUnderCache(socket: Socket): Endpoint | undefined {
  const s = socket as unknown as PeerCache;
  const saved = s._peername;
  s._peername = null;
  try {
    return socketPeer(socket);
  } finally {
    s._peername = saved;
  }
}

/**
 * The raw TCP socket under a server-side TLSSocket. Node has no public API for this; `_parent` is set by
 * `tls.Server` (lib/_tls_wrap.js) when it wraps an accepted socket. test/socket-info.test.ts fails loudly if
 * a Node release renames it.
 */
export function rawSocketOf(tlsSocket: TLSSocket): Socket | undefined {
  const parent = (tlsSocket as unknown as { _parent?: unknown })._parent;
  return parent && typeof parent === 'object' ? (parent as Socket) : undefined;
}

/** Copies the info of the raw socket under `tlsSocket` onto it. */
export function inheritInfo(tlsSocket: TLSSocket, override: boolean): void {
  const info = infoOf(rawSocketOf(tlsSocket));
  if (info) attachInfo(tlsSocket, info, override);
}
