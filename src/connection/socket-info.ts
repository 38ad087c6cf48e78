// Where the connection layer keeps what it learned about a socket, and the one place that touches a
// private Node field.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ProxyHeader } from '../protocol/types.js';
import { unmapIPv4 } from '../trust.js';

/** What the connection layer knows about one connection. */
export interface ProxyInfo {
  /** The parsed header; undefined for a connection served without one (`requireHeader: false`). */
  header: ProxyHeader | undefined;
  /** The TCP peer: the load balancer's own address. */
  peer: { address: string; port: number; family: string };
  /**
   * The client: the header's source for a PROXY command over IPv4/IPv6, else the TCP peer (LOCAL health
   * checks, UNKNOWN, UNIX, direct connections).
   */
  client: { address: string; port: number; family: string };
}

// A registry symbol, so that the ESM and CommonJS entry points (and two copies of the package) agree, and so
// that lookups pass through the Proxy objects http2 hands out as `req.socket`. While the header is being
// read the same slot holds the reader's state (one property per socket, not two: every property added to a
// socket costs on the connection path).
export const kInfo = Symbol.for('proxy-protocol-audit.info');

type Carrier = { [kInfo]?: ProxyInfo | { reading: true } };

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
  const v = socket ? (socket as Carrier)[kInfo] : undefined;
  return v !== undefined && 'client' in v ? v : undefined;
}

/** The two ends of a connection as an audit or an app sees them: IPv4-mapped IPv6 unmapped. */
export interface ConnectionEnds {
  clientIp: string;
  clientPort: number | undefined;
  peerIp: string;
  peerPort: number | undefined;
}

/**
 * The client (from the PROXY header, else the TCP peer) and the TCP peer (the balancer) of a socket. The one
 * function the middleware and the audit log use, so they never disagree about an address.
 */
export function connectionEnds(socket: Socket | null | undefined): ConnectionEnds {
  const info = getProxyInfo(socket);
  if (info) {
    return {
      clientIp: unmapIPv4(info.client.address),
      clientPort: info.client.port,
      peerIp: unmapIPv4(info.peer.address),
      peerPort: info.peer.port,
    };
  }
  const ip = unmapIPv4(socket?.remoteAddress ?? '');
  const port = socket?.remotePort;
  return { clientIp: ip, clientPort: port, peerIp: ip, peerPort: port };
}

/** Stores `info` on a socket and, when asked, makes the socket report the client as its remote end. */
export function attachInfo(socket: Socket, info: ProxyInfo, override: boolean): void {
  (socket as Carrier)[kInfo] = info;
  if (override && info.client !== info.peer) reportClient(socket, info.client);
}

type PeerCache = { _peername?: { address?: string; port?: number; family?: string } | null; _getpeername?: unknown };

/**
 * Makes `socket.remoteAddress`, `remotePort` and `remoteFamily` report `client`, so that every reader
 * (`req.ip`, morgan, …) sees the client without any change of theirs.
 *
 * Fast path (private Node field): net.Socket's getters read the peer that `_getpeername()` caches in
 * `_peername`; replacing the cached value changes no object shape, where three own properties measured
 * several microseconds per connection in the HTTP code that touches the socket afterwards.
 * test/connection/socket-info.test.ts fails loudly if a Node release drops the cache; the fallback below
 * (public defineProperty) keeps working meanwhile.
 */
export function reportClient(socket: Socket, client: ProxyInfo['client']): void {
  const s = socket as unknown as PeerCache;
  if (typeof s._getpeername === 'function') {
    if (s._peername == null) void socket.remoteAddress; // fills the cache
    if (s._peername != null && typeof s._peername === 'object' && socket.remoteAddress === s._peername.address) {
      // Same key order as the object Node fills in (address, family, port): one shape for every cache.
      s._peername = { address: client.address, family: client.family, port: client.port };
      return;
    }
  }
  Object.defineProperty(socket, 'remoteAddress', { value: client.address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: client.port, configurable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: client.family, configurable: true });
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
  const info = getProxyInfo(rawSocketOf(tlsSocket));
  if (info) attachInfo(tlsSocket, info, override);
}
