// Where the connection layer keeps what it learned about a socket, and the one place that touches a
// private Node field.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ProxyHeader } from '../protocol/types.js';

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
// that lookups pass through the Proxy objects http2 hands out as `req.socket`.
const kInfo = Symbol.for('proxy-protocol-audit.info');

type Carrier = { [kInfo]?: ProxyInfo };

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
  return socket ? (socket as Carrier)[kInfo] : undefined;
}

/** Stores `info` on a socket and, when asked, makes the socket report the client as its remote end. */
export function attachInfo(socket: Socket, info: ProxyInfo, override: boolean): void {
  (socket as Carrier)[kInfo] = info;
  if (override && info.client !== info.peer) {
    // Own data properties shadow net.Socket's prototype getters, so every reader (req.ip, morgan, ...)
    // sees the client without any change of theirs.
    Object.defineProperties(socket, {
      remoteAddress: { value: info.client.address, configurable: true, enumerable: false },
      remotePort: { value: info.client.port, configurable: true, enumerable: false },
      remoteFamily: { value: info.client.family, configurable: true, enumerable: false },
    });
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
  const raw = rawSocketOf(tlsSocket);
  const info = raw && (raw as Carrier)[kInfo];
  if (info) attachInfo(tlsSocket, info, override);
}
