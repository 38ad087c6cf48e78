// Where the connection layer keeps what it learned about a socket, and the one place that touches Node's
// private socket fields (reportClient, realPeer, rawSocketOf).
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { decodeTlvs } from '../protocol/tlv.js';
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
  readonly header: ProxyHeader | undefined;
  /**
   * The TCP peer: the load balancer's own address. Like `socket.remoteAddress`, it is asked of the operating
   * system when first read (one `getpeername` call that most connections never need); undefined when first
   * read after the connection closed. The audit middleware reads it when a request starts.
   */
  readonly peer: Endpoint | undefined;
  /**
   * The client: the header's source for a PROXY command over IPv4/IPv6, else the TCP peer (LOCAL health
   * checks, UNKNOWN, UNIX, direct connections). Undefined only for such a connection to a server listening on
   * a UNIX-domain socket, whose peer has no address.
   */
  readonly client: Endpoint | undefined;
}

// A registry symbol, so that the ESM and CommonJS entry points (and two copies of the package) agree, and so
// that lookups pass through the Proxy objects http2 hands out as `req.socket`. While the header is being
// read the same slot holds the reader's state (one property per socket, not two: every property added to a
// socket costs on the connection path).
export const kInfo = Symbol.for('proxy-protocol-audit.info');

type Carrier = { [kInfo]?: ConnectionInfo | { reading: true } };

/**
 * The PROXY information of a connection: pass `req.socket` (plain or TLS, HTTP/1 or HTTP/2), the socket of
 * a `'connection'`/`'secureConnection'` event, or a TLS socket made over one of them (a hand-off to another
 * server, STARTTLS). Undefined for sockets the layer did not handle.
 *
 * @example
 * ```ts
 * const info = getProxyInfo(req.socket);
 * console.log(info?.client.address, 'via', info?.peer?.address);
 * ```
 */
export function getProxyInfo(socket: Socket | null | undefined): ProxyInfo | undefined {
  return infoOf(socket);
}

function infoOf(socket: Socket | null | undefined): ConnectionInfo | undefined {
  if (!socket) return undefined;
  const v = (socket as Carrier)[kInfo];
  if (v !== undefined) return 'client' in v ? v : undefined;
  // A TLS socket made over a handled socket by a server or code that knows nothing of this layer.
  const raw = rawSocketOf(socket as TLSSocket);
  const info = raw === undefined ? undefined : (raw as Carrier)[kInfo];
  return info !== undefined && 'client' in info ? info : undefined;
}

/** The client IP of a connection as an app sees it (from the PROXY header, else the TCP peer), IPv4-mapped IPv6 unmapped. */
export function clientIpOf(socket: Socket | null | undefined): string | undefined {
  const info = infoOf(socket);
  const address = info ? info.client?.address : socket?.remoteAddress;
  return address === undefined ? undefined : unmapIPv4(address);
}

/** The client port of a connection, the companion of {@link clientIpOf}. */
export function clientPortOf(socket: Socket | null | undefined): number | undefined {
  const info = infoOf(socket);
  return info ? info.client?.port : socket?.remotePort;
}

/** The two ends of a connection as an audit sees them: IPv4-mapped IPv6 unmapped. */
export interface ConnectionEnds {
  /**
   * Undefined when unknown (a socket without a PROXY header, first asked after it closed; a UNIX-socket
   * connection whose header names no IP client).
   */
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
      clientIp: client === undefined ? undefined : unmapIPv4(client.address),
      clientPort: client?.port,
      peerIp: peer === undefined ? undefined : unmapIPv4(peer.address),
      peerPort: peer?.port,
    };
  }
  const address = socket?.remoteAddress;
  if (address === undefined) return { clientIp: undefined, clientPort: undefined, peerIp: undefined, peerPort: undefined };
  const ip = unmapIPv4(address);
  const port = socket?.remotePort;
  return { clientIp: ip, clientPort: port, peerIp: ip, peerPort: port };
}

/**
 * What the balancer said about a connection in its v2 TLVs, for the audit entry. Every member is absent when
 * the header did not carry it.
 */
export interface BalancerFacts {
  /**
   * The client's TLS session, when TLS ended at the balancer (SSL TLV with the client-connected-over-SSL flag
   * and a version): `version` in OpenSSL's spelling, as `tlsSocket.getProtocol()` gives it (`'TLSv1.3'`);
   * `cipher` the OpenSSL cipher name; `clientCn` the client certificate's common name, when one was sent.
   */
  readonly tls?: { readonly version: string; readonly cipher?: string; readonly clientCn?: string };
  /**
   * The UNIQUE_ID TLV (HAProxy's `unique-id`, up to 128 bytes; an empty one is absent): its bytes as text when
   * every byte is visible ASCII (0x21–0x7e), else lowercase hex.
   */
  readonly uniqueId?: string;
  /** The AUTHORITY TLV: the host name the client asked for (TLS SNI at the balancer), as UTF-8. */
  readonly authority?: string;
}

const NO_FACTS: BalancerFacts = Object.freeze({});

/**
 * The balancer's facts about the connection of `socket` (plain or TLS, also a TLS socket made over a handled
 * one), decoded from the header's TLVs when first asked for and then kept with the connection: later calls
 * for any request of the connection return the same frozen object. A socket the layer did not handle, and a
 * header without TLVs (v1, most v2), give one shared empty object.
 *
 * @example
 * ```ts
 * const { tls, uniqueId } = balancerFacts(req.socket);
 * ```
 */
export function balancerFacts(socket: Socket | null | undefined): BalancerFacts {
  const info = infoOf(socket);
  return info === undefined ? NO_FACTS : info.facts;
}

function decodeFacts(header: ProxyHeader | undefined): BalancerFacts {
  if (header === undefined || header.tlvs.length === 0) return NO_FACTS;
  const { ssl, uniqueId, authority } = decodeTlvs(header);
  const facts: { tls?: BalancerFacts['tls']; uniqueId?: string; authority?: string } = {};
  if (ssl?.ssl && ssl.version) {
    const tls: { version: string; cipher?: string; clientCn?: string } = { version: ssl.version };
    if (ssl.cipher) tls.cipher = ssl.cipher;
    if (ssl.cn) tls.clientCn = ssl.cn;
    facts.tls = Object.freeze(tls);
  }
  if (uniqueId !== undefined && uniqueId.length > 0) facts.uniqueId = idText(uniqueId);
  if (authority) facts.authority = authority;
  return Object.freeze(facts);
}

function idText(bytes: Uint8Array): string {
  for (const b of bytes) if (b < 0x21 || b > 0x7e) return Buffer.from(bytes).toString('hex');
  return Buffer.from(bytes).toString('latin1');
}

/**
 * Whether `socket` came over a UNIX-domain socket (or a Windows named pipe): a peer without an address, as
 * opposed to a TCP socket that no longer knows its peer because it was reset. Private Node field: a socket's
 * `_handle` is a Pipe for those, which, unlike a TCP handle, has no `getpeername`; a destroyed socket has no
 * handle. test/connection/socket-info.test.ts fails loudly if a Node release changes this.
 */
export function isLocalSocket(socket: Socket): boolean {
  const handle = (socket as unknown as NodeSocket)._handle;
  return handle != null && typeof handle.getpeername !== 'function';
}

/** The peer an unused socket reports through Node's public getters (one `getpeername` call, then cached). */
export function socketPeer(socket: Socket): Endpoint | undefined {
  const address = socket.remoteAddress;
  if (address === undefined) return undefined;
  return { address, port: socket.remotePort ?? 0, family: socket.remoteFamily ?? (address.includes(':') ? 'IPv6' : 'IPv4') };
}

/**
 * The info of one connection. The TCP peer is read from the socket only when first asked for: one
 * `getpeername` system call per connection measured ~3% of the cost of a new connection, and most
 * connections never need the balancer's port.
 */
export class ConnectionInfo implements ProxyInfo {
  readonly header: ProxyHeader | undefined;
  readonly client: Endpoint | undefined;
  /** Whether the client came from the header (and so differs from the peer). */
  readonly proxied: boolean;
  #peer: Endpoint | undefined;
  #socket: Socket | undefined;
  /** Set when the socket's handle reports the client: the peer is then read from the handle's own method. */
  #reported = false;
  #facts: BalancerFacts | undefined;

  /**
   * `client` undefined: the client is the peer, which must then be known, except over a UNIX-domain socket
   * (no address: both stay undefined).
   */
  constructor(socket: Socket, header: ProxyHeader | undefined, client: Endpoint | undefined, peer: Endpoint | undefined) {
    this.header = header;
    this.proxied = client !== undefined;
    this.#peer = peer;
    this.#socket = peer === undefined ? socket : undefined;
    this.client = client ?? peer;
  }

  get peer(): Endpoint | undefined {
    const socket = this.#socket;
    if (socket !== undefined) {
      this.#peer = this.#reported ? realPeer(socket) : socketPeer(socket);
      this.#socket = undefined;
    }
    return this.#peer;
  }

  /** @internal The balancer's TLV facts, decoded once. */
  get facts(): BalancerFacts {
    this.#facts ??= decodeFacts(this.header);
    return this.#facts;
  }

  /** @internal `socket`'s handle now reports the client */
  markReported(socket: Socket): void {
    if (socket === this.#socket) this.#reported = true;
  }

  toJSON(): { header: ProxyHeader | undefined; peer: Endpoint | undefined; client: Endpoint | undefined } {
    return { header: this.header, peer: this.peer, client: this.client };
  }
}

/** Stores `info` on a socket and, when asked, makes the socket report the client as its remote end. */
export function attachInfo(socket: Socket, info: ConnectionInfo, override: boolean): void {
  (socket as Carrier)[kInfo] = info;
  if (override && info.proxied) reportClient(socket, info);
}

type PeerOut = { address?: string; port?: number; family?: string };
type Handle = { getpeername?: (out: PeerOut) => number };
type NodeSocket = { _handle?: Handle | null; _peername?: PeerOut | null };

/**
 * Makes `socket.remoteAddress`, `remotePort` and `remoteFamily` report the client, so that every reader
 * (`req.ip`, morgan, …) sees the client without any change of theirs — also on any TLS socket later made
 * over this one, whichever server or code makes it (a hand-off with `emit('connection')`, STARTTLS).
 *
 * Private Node fields: net.Socket's getters ask `_handle.getpeername()` once and cache the answer in
 * `_peername`; a TLS socket over it asks its own handle, which forwards `getpeername` to the TCP handle
 * underneath (lib/_tls_wrap.js, "Proxy HandleWrap, PipeWrap and TCPWrap methods"). So the TCP handle gets a
 * `getpeername` of its own that answers with the client: one property on the handle, no system call, no
 * change to the socket's shape (three own properties on the socket measured several microseconds per
 * connection in the HTTP code that touches it afterwards). test/connection/socket-info.test.ts fails loudly if
 * a Node release changes this; the fallback below (public defineProperty, this socket only) keeps working
 * meanwhile.
 */
export function reportClient(socket: Socket, info: ConnectionInfo): void {
  const s = socket as unknown as NodeSocket;
  const handle = s._handle;
  const { address, port, family } = info.client as Endpoint; // (proxied: the header's source)
  if (handle && typeof handle.getpeername === 'function') {
    handle.getpeername = function getpeernameOfClient(out: PeerOut): number {
      out.address = address;
      out.family = family;
      out.port = port;
      return 0;
    };
    s._peername = null; // a trust list may have read the balancer already
    if (socket.remoteAddress === address && socket.remotePort === port) {
      info.markReported(socket);
      return;
    }
    delete handle.getpeername;
  }
  void info.peer; // read before the getters are shadowed
  Object.defineProperty(socket, 'remoteAddress', { value: address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: port, configurable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: family, configurable: true });
}

/** The TCP peer of a socket whose handle reports the client: asked of the handle's own class method. */
function realPeer(socket: Socket): Endpoint | undefined {
  const handle = (socket as unknown as NodeSocket)._handle;
  const original = handle ? (Object.getPrototypeOf(handle) as Handle).getpeername : undefined;
  if (!handle || typeof original !== 'function') return undefined;
  const out: PeerOut = {};
  if (original.call(handle, out) !== 0 || out.address === undefined) return undefined;
  return { address: out.address, port: out.port ?? 0, family: out.family ?? (out.address.includes(':') ? 'IPv6' : 'IPv4') };
}

/**
 * The TCP socket under a TLSSocket. Node has no public API for this; `_parent` is set by the TLSSocket
 * constructor when it wraps a net.Socket (lib/_tls_wrap.js): by `tls.Server` for an accepted socket, and by
 * `new tls.TLSSocket(socket)`. test/connection/socket-info.test.ts fails loudly if a Node release renames it.
 */
export function rawSocketOf(tlsSocket: TLSSocket): Socket | undefined {
  const parent = (tlsSocket as unknown as { _parent?: unknown })._parent;
  return parent && typeof parent === 'object' ? (parent as Socket) : undefined;
}

/** Copies the info of the raw socket under `tlsSocket` onto it (the layer's own TLS servers). */
export function inheritInfo(tlsSocket: TLSSocket, override: boolean): void {
  const info = infoOf(rawSocketOf(tlsSocket));
  if (info === undefined) return;
  (tlsSocket as Carrier)[kInfo] = info;
  // The TLS socket asks the TCP handle, which already answers with the client (reportClient); only when
  // that hook was not available does the TLS socket need its own override.
  if (override && info.proxied && tlsSocket.remoteAddress !== info.client?.address) reportClient(tlsSocket, info);
}
