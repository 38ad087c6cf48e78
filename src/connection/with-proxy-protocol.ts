import { Server as HttpServer } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { type TLSSocket, Server as TlsServer } from 'node:tls';
import { append, type List, remove } from '../list.js';
import { ErrorCodes, ProxyProtocolError } from '../protocol/errors.js';
import { parseProxyHeader } from '../protocol/parse.js';
import type { ProxyHeader } from '../protocol/types.js';
import { type CompiledOptions, compileOptions, type ProxyProtocolOptions } from './options.js';
import { attachInfo, ConnectionInfo, type Endpoint, inheritInfo, isLocalSocket, kInfo, socketPeer } from './socket-info.js';

const kWrapped = Symbol.for('proxy-protocol-audit.wrapped');

type Emit = (this: NetServer, event: string | symbol, ...args: unknown[]) => boolean;

/** What one server needs while reading headers: compiled options and the connections still reading. */
interface Layer {
  server: NetServer;
  options: CompiledOptions;
  emit: Emit;
  /**
   * Connections reading their header, oldest first (one timeout for all, so deadlines are in order), as an
   * intrusive doubly linked list: a connection leaves it the moment its header is read, so nothing here keeps
   * a finished socket alive until the next sweep (under load that retention was what the GC paid for). Kept
   * also without a timeout, for closeAllConnections().
   */
  pending: List<Pending>;
  sweeper: NodeJS.Timeout | undefined;
  sweepEvery: number;
  /** A sweep that reached its per-turn bound continues in the next turn (setImmediate). */
  sweepAgain: NodeJS.Immediate | undefined;
  /**
   * Read in flowing mode ('data'): for http.Server, whose parser takes the rest after 'connection' (see
   * handOver), and for TLS servers, whose TLS socket takes the raw socket over and reads what is buffered on
   * it. Every other server gets its socket in paused mode ('readable'), as it would without this layer. For
   * TLS, flowing instead of paused measured 1.025x handshakes per server CPU second head to head (bench/README.md,
   * 2026-12-01 connection section).
   */
  flowing: boolean;
  /** http.Server: the rest is unshifted after 'connection' (see handOver). */
  http: boolean;
}

/** Per-connection state, kept on the socket: the listeners below are shared functions, not closures. */
interface Pending {
  reading: true;
  socket: PendingSocket;
  layer: Layer;
  /** The TCP peer, once read: at once when a trust list needs it, else when a header takes more than one read. */
  peer: Endpoint | undefined;
  buffered: Buffer | undefined;
  deadline: number;
  /** Neighbours in the layer's list. */
  prev: Pending | undefined;
  next: Pending | undefined;
}

type PendingSocket = Socket & { [kInfo]?: Pending | ConnectionInfo };

function pendingOf(socket: PendingSocket): Pending | undefined {
  const v = socket[kInfo];
  return v !== undefined && 'reading' in v ? v : undefined;
}

function noop(): void {}

function stopReading(socket: PendingSocket, st: Pending): void {
  socket[kInfo] = undefined;
  if (st.layer.flowing) {
    socket.removeListener('data', onData);
    // A TLS server's socket is taken over (and its buffer read) a tick after 'connection': paused, no byte
    // flows out of the buffer to nobody meanwhile.
    if (!st.layer.http) socket.pause();
  } else socket.removeListener('readable', onReadable);
  socket.removeListener('end', onEnd);
  socket.removeListener('error', onError);
  // The sweeper stops itself once nothing is pending (stopping it here would restart it for nearly every
  // connection under load).
  remove(st.layer.pending, st);
  st.buffered = undefined;
}

/** Closes a connection that sent nothing: a TCP health check (ELB, HAProxy `check`), not an event. */
function dropSilently(socket: PendingSocket, st: Pending): void {
  stopReading(socket, st);
  socket.on('error', noop);
  socket.destroy();
}

function reject(socket: PendingSocket, st: Pending | undefined, layer: Layer, err: ProxyProtocolError): void {
  // Read before the socket is gone (a reset socket no longer knows its peer; see received()).
  const peer = st?.peer ?? socketPeer(socket);
  if (st) stopReading(socket, st);
  if (peer) err.peer = { address: peer.address, port: peer.port };
  // An error listener for good: a destroyed socket must never raise an unhandled 'error'.
  socket.on('error', noop);
  try {
    layer.emit.call(layer.server, 'proxyError', err, socket);
  } finally {
    socket.destroy();
  }
}

function handOver(socket: PendingSocket, layer: Layer, info: ConnectionInfo, override: boolean, rest: Buffer | undefined): void {
  attachInfo(socket, info, override);
  if (rest === undefined || rest.length === 0) {
    layer.emit.call(layer.server, 'connection', socket);
  } else if (layer.http) {
    // http.Server: its connection listener attaches its 'data' listener at once, on a socket already
    // flowing; unshifting after it hands the bytes that followed the header straight to the HTTP parser, in
    // this same call, before anything that arrives later (which the parser then reads natively).
    layer.emit.call(layer.server, 'connection', socket);
    if (!socket.destroyed) socket.unshift(rest);
  } else {
    // TLS, HTTP/2 and net servers look for bytes already buffered on the socket when they take it over: the
    // rest goes back to the front of the stream first.
    socket.unshift(rest);
    layer.emit.call(layer.server, 'connection', socket);
  }
}

/** Flowing mode (http.Server): every chunk is handed to us as it arrives. */
function onData(this: PendingSocket, chunk: Buffer): void {
  const st = pendingOf(this);
  if (!st) return;
  st.buffered = st.buffered === undefined ? chunk : Buffer.concat([st.buffered, chunk]);
  received(this, st, st.buffered);
}

/** Paused mode (every other server): read what is buffered. */
function onReadable(this: PendingSocket): void {
  const st = pendingOf(this);
  if (!st) return;
  let chunk: Buffer | null = this.read();
  while (chunk !== null) {
    st.buffered = st.buffered === undefined ? chunk : Buffer.concat([st.buffered, chunk]);
    chunk = this.read();
  }
  if (st.buffered !== undefined) received(this, st, st.buffered);
}

/** Tries the bytes received so far: waits for more, rejects, or hands the connection over. */
function received(socket: PendingSocket, st: Pending, buffered: Buffer): void {
  const { layer } = st;
  const o = layer.options;
  const r = parseProxyHeader(buffered, o.parse);
  switch (r.status) {
    case 'incomplete':
      // A header in several reads: learn the peer now, while the socket surely still knows it, so that a
      // connection reset mid-header is reported with its peer.
      st.peer ??= socketPeer(socket);
      return;
    case 'invalid':
      reject(socket, st, layer, r.error);
      return;
    case 'none':
      if (o.requireHeader) {
        reject(socket, st, layer, new ProxyProtocolError(ErrorCodes.MISSING, 'connection does not start with a PROXY header'));
      } else {
        const peer = st.peer ?? socketPeer(socket);
        if (peer === undefined && !isLocalSocket(socket)) {
          dropSilently(socket, st); // reset under us: the socket no longer knows its peer
          return;
        }
        stopReading(socket, st);
        handOver(socket, layer, new ConnectionInfo(socket, undefined, undefined, peer), false, buffered);
      }
      return;
    case 'ok': {
      const header: ProxyHeader = r.header;
      const src = header.source;
      // The client from the header; LOCAL, UNKNOWN and UNIX headers leave the peer as the client.
      const proxied = header.command === 'proxy' && src !== undefined && (header.family === 'IPv4' || header.family === 'IPv6');
      const peer = proxied ? st.peer : (st.peer ?? socketPeer(socket));
      // (Over a UNIX-domain socket the peer has no address: served with no client address.)
      if (!proxied && peer === undefined && !isLocalSocket(socket)) {
        dropSilently(socket, st); // reset under us: the socket no longer knows its peer, the client
        return;
      }
      stopReading(socket, st);
      const info = proxied
        ? new ConnectionInfo(socket, header, { address: src.address, port: src.port, family: header.family }, peer)
        : new ConnectionInfo(socket, header, undefined, peer);
      const rest = r.length < buffered.length ? buffered.subarray(r.length) : undefined;
      handOver(socket, layer, info, o.overrideRemoteAddress, rest);
    }
  }
}

function onError(this: PendingSocket, err: Error): void {
  const st = pendingOf(this);
  if (!st) return;
  if (st.buffered === undefined) {
    // Reset before a byte arrived: like a close without a byte (onEnd), a probe, not an event.
    dropSilently(this, st);
    return;
  }
  const e = new ProxyProtocolError(ErrorCodes.INCOMPLETE, `connection failed before a complete PROXY header: ${err.message}`, {
    cause: err,
  });
  reject(this, st, st.layer, e);
}

function onEnd(this: PendingSocket): void {
  const st = pendingOf(this);
  if (!st) return;
  if (st.buffered === undefined) {
    dropSilently(this, st);
    return;
  }
  reject(this, st, st.layer, new ProxyProtocolError(ErrorCodes.INCOMPLETE, 'connection closed before a complete PROXY header'));
}

/**
 * A sweep closes at most this many timed-out connections per turn of the event loop, and stops early once it
 * has spent SWEEP_MS: each close costs a 'proxyError' and a destroy (30 µs on an idle machine, several times
 * that on a busy one: 5,000 stalled connections closed in one pass held the loop for ~100 ms). The rest follow
 * in the next turns, so requests on good connections are served in between (test/connection/sweep.test.ts).
 */
const CLOSES_PER_TURN = 64;
const SWEEP_MS = 5;

/**
 * One interval per server, running only while headers are awaited, instead of a timer per connection:
 * every connection shares the same timeout, so the list is in deadline order and the walk stops at the first
 * connection not yet due. Sockets destroyed under us without 'end' or 'error' leave the list when they come
 * due. While a sweep continues from turn to turn, the interval leaves the work to it (one batch per turn).
 */
function onSweepInterval(layer: Layer): void {
  if (layer.sweepAgain === undefined) sweep(layer);
}

function sweep(layer: Layer): void {
  layer.sweepAgain = undefined;
  const now = Date.now();
  const ms = layer.options.headerTimeout;
  const stopAt = performance.now() + SWEEP_MS;
  let budget = CLOSES_PER_TURN;
  let st = layer.pending.head;
  while (st !== undefined && st.deadline <= now) {
    if (budget === 0 || performance.now() >= stopAt) {
      layer.sweepAgain = setImmediate(sweep, layer);
      return;
    }
    const next = st.next;
    if (st.socket.destroyed) stopReading(st.socket, st);
    else {
      reject(st.socket, st, layer, new ProxyProtocolError(ErrorCodes.TIMEOUT, `no complete PROXY header within ${ms} ms`));
      budget--;
    }
    st = next;
  }
  if (layer.pending.head === undefined && layer.sweeper) {
    clearInterval(layer.sweeper);
    layer.sweeper = undefined;
  }
}

/**
 * Ends every connection still reading its header, without an event (as http.Server's own
 * closeAllConnections() ends its connections): they are part of the server's connections, and with
 * `headerTimeout: 0` nothing else would ever end a stalled one.
 */
function closePending(layer: Layer): void {
  for (let st = layer.pending.head; st !== undefined; st = layer.pending.head) dropSilently(st.socket, st);
}

/** Reads the header off one accepted socket, then hands the socket on, or rejects it. */
function accept(layer: Layer, socket: PendingSocket): void {
  if (socket.destroyed) {
    // Gone before we ran: nothing to serve, nobody to blame.
    socket.on('error', noop);
    return;
  }
  const o = layer.options;
  let peer: Endpoint | undefined;
  if (o.isTrusted !== undefined) {
    peer = socketPeer(socket);
    // A trust list names addresses, and a UNIX-domain socket's peer has none: never trusted (the socket file's
    // permissions decide who may connect there; leave the list out).
    if (peer === undefined && !isLocalSocket(socket)) {
      // Reset before we ran: the socket no longer knows its peer.
      socket.on('error', noop);
      socket.destroy();
      return;
    }
    if (peer === undefined || !o.isTrusted(peer.address)) {
      if (o.requireHeader)
        reject(
          socket,
          undefined,
          layer,
          new ProxyProtocolError(
            ErrorCodes.UNTRUSTED,
            peer === undefined
              ? 'connection over a UNIX-domain socket: its peer has no address to check against trustedProxies'
              : `connection from untrusted peer ${peer.address}`,
          ),
        );
      else handOver(socket, layer, new ConnectionInfo(socket, undefined, undefined, peer), false, undefined);
      return;
    }
  }
  const st: Pending = {
    reading: true,
    socket,
    layer,
    peer,
    buffered: undefined,
    deadline: 0,
    prev: undefined,
    next: undefined,
  };
  socket[kInfo] = st;
  socket.on('error', onError);
  socket.on('end', onEnd);
  if (layer.flowing) {
    socket.on('data', onData);
    // A server made with `pauseOnConnect` hands over sockets paused on purpose, which a 'data' listener
    // alone does not start (a 'readable' one does): the header must be read all the same.
    if (socket.readableFlowing === false) socket.resume();
  } else socket.on('readable', onReadable);
  append(layer.pending, st);
  if (o.headerTimeout > 0) {
    st.deadline = Date.now() + o.headerTimeout;
    if (layer.sweeper === undefined) {
      layer.sweeper = setInterval(onSweepInterval, layer.sweepEvery, layer);
      layer.sweeper.unref();
    }
  }
}

type Closer = { closeAllConnections?: () => void; closeIdleConnections?: () => void };

/**
 * http.Server (and https) end their connections in closeAllConnections() and, from server.close(), their idle
 * ones in closeIdleConnections(); a connection still reading its PROXY header has sent no request yet, so it
 * is idle for both. The two methods are wrapped on this one server.
 */
function installClose(server: NetServer, layer: Layer): void {
  const s = server as NetServer & Closer;
  const all = s.closeAllConnections;
  const idle = s.closeIdleConnections;
  if (typeof all === 'function') {
    s.closeAllConnections = function closeAllConnections(this: NetServer): void {
      closePending(layer);
      all.call(this);
    };
  }
  if (typeof idle === 'function') {
    s.closeIdleConnections = function closeIdleConnections(this: NetServer): void {
      closePending(layer);
      idle.call(this);
    };
  }
}

/**
 * Makes a server expect a PROXY protocol header (v1 or v2) at the start of every connection. Works for
 * `net`, `http`, `https`, `http2` (plain and secure) and `tls` servers, listening or not. The header is
 * read and stripped; every later byte reaches the server unchanged and in order; the client address is
 * attached to the socket (see {@link getProxyInfo}). Rejected connections emit `'proxyError'`
 * `(err: ProxyProtocolError, socket)` on the server and are destroyed.
 *
 * 'connection' listeners of the server, whenever added, see the socket after its header was read.
 *
 * @param options see {@link ProxyProtocolOptions}; validated here, a bad one throws a `TypeError`.
 * @example
 * ```ts
 * const server = withProxyProtocol(app.listen(443), { trustedProxies: ['10.0.0.0/8'] });
 * server.on('proxyError', (err) => console.warn(err.code, err.peer));
 * ```
 */
export function withProxyProtocol<S extends NetServer>(server: S, options: ProxyProtocolOptions = {}): S {
  if (!server || typeof (server as NetServer).listen !== 'function' || typeof server.emit !== 'function') {
    throw new TypeError('withProxyProtocol: expected a net, tls, http, https or http2 server');
  }
  const target = server as S & { [kWrapped]?: true };
  if (target[kWrapped]) throw new TypeError('withProxyProtocol: this server is already wrapped');
  const o = compileOptions(options);
  const emit = server.emit as Emit;
  const layer: Layer = {
    server,
    options: o,
    emit,
    pending: { head: undefined, tail: undefined },
    sweeper: undefined,
    sweepAgain: undefined,
    // Timeouts fire within a tenth of headerTimeout (at most 250 ms) after they are due.
    sweepEvery: Math.max(5, Math.min(250, Math.floor(o.headerTimeout / 10))),
    flowing: server instanceof HttpServer || server instanceof TlsServer,
    http: server instanceof HttpServer,
  };
  target[kWrapped] = true;
  installClose(server, layer);
  // Node announces accepted sockets only through emit('connection'); intercepting that one event on this
  // one server is the narrowest hook there is (no socket or prototype is patched).
  server.emit = function emitWithProxyProtocol(this: NetServer, event: string | symbol, a?: unknown, b?: unknown): boolean {
    if (event === 'connection') {
      accept(layer, a as PendingSocket);
      return true;
    }
    if (event === 'secureConnection') inheritInfo(a as TLSSocket, o.overrideRemoteAddress);
    else if (event === 'tlsClientError' && b) inheritInfo(b as TLSSocket, o.overrideRemoteAddress);
    // Every 'request' goes through here: fixed-arity calls for the common shapes, no array copies.
    // biome-ignore lint/complexity/noArguments: the argument count, without materialising an array
    const n = arguments.length;
    if (n === 3) return emit.call(this, event, a, b);
    if (n === 2) return emit.call(this, event, a);
    if (n === 1) return emit.call(this, event);
    // biome-ignore lint/complexity/noArguments: events with more arguments ('upgrade', 'connect')
    return Reflect.apply(emit, this, arguments);
  } as S['emit'];
  return server;
}
