import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ErrorCodes, ProxyProtocolError } from '../protocol/errors.js';
import { parseProxyHeader } from '../protocol/parse.js';
import type { ProxyHeader } from '../protocol/types.js';
import { type CompiledOptions, compileOptions, type ProxyProtocolOptions } from './options.js';
import { attachInfo, inheritInfo, type ProxyInfo } from './socket-info.js';

const kWrapped = Symbol.for('proxy-protocol-audit.wrapped');

type Emit = (this: NetServer, event: string | symbol, ...args: unknown[]) => boolean;

function noop(): void {}

function familyOf(address: string): string {
  return address.includes(':') ? 'IPv6' : 'IPv4';
}

/** Reads the header off one accepted socket, then hands the socket on, or rejects it. */
function accept(server: NetServer, socket: Socket, o: CompiledOptions, emit: Emit): void {
  const peerAddress = socket.remoteAddress;
  if (peerAddress === undefined) {
    // Already gone (reset before we ran): nothing to serve, nobody to blame.
    socket.on('error', noop);
    socket.destroy();
    return;
  }
  const peer = { address: peerAddress, port: socket.remotePort ?? 0, family: socket.remoteFamily ?? familyOf(peerAddress) };

  const serveDirect = (rest?: Uint8Array) => {
    attachInfo(socket, { header: undefined, peer, client: peer }, false);
    if (rest && rest.length > 0) socket.unshift(rest);
    emit.call(server, 'connection', socket);
  };

  let buffered: Buffer | undefined;
  let done = false;
  let timer: NodeJS.Timeout | undefined;

  function cleanup(): void {
    done = true;
    if (timer) clearTimeout(timer);
    socket.removeListener('readable', onReadable);
    socket.removeListener('end', onEnd);
    socket.removeListener('close', onClose);
  }

  function reject(err: ProxyProtocolError): void {
    cleanup();
    err.peer = { address: peer.address, port: peer.port };
    // Keep an error listener for good: a destroyed socket must never raise an unhandled 'error'.
    socket.on('error', noop);
    socket.removeListener('error', onError);
    try {
      emit.call(server, 'proxyError', err, socket);
    } finally {
      socket.destroy();
    }
  }

  function onReadable(): void {
    if (done) return;
    let chunk: Buffer | null;
    // biome-ignore lint/suspicious/noAssignInExpressions: the canonical stream read loop
    while ((chunk = socket.read()) !== null) buffered = buffered ? Buffer.concat([buffered, chunk]) : chunk;
    if (!buffered) return;
    const r = parseProxyHeader(buffered, o.parse);
    switch (r.status) {
      case 'incomplete':
        return;
      case 'invalid':
        reject(r.error);
        return;
      case 'none':
        if (o.requireHeader) {
          reject(new ProxyProtocolError(ErrorCodes.MISSING, 'connection does not start with a PROXY header'));
        } else {
          cleanup();
          socket.removeListener('error', onError);
          serveDirect(buffered);
        }
        return;
      case 'ok':
        cleanup();
        socket.removeListener('error', onError);
        handOver(r.header, buffered.subarray(r.length));
    }
  }

  function handOver(header: ProxyHeader, rest: Buffer): void {
    const src = header.source;
    const client =
      header.command === 'proxy' && src && (header.family === 'IPv4' || header.family === 'IPv6')
        ? { address: src.address, port: src.port, family: header.family }
        : peer;
    const info: ProxyInfo = { header, peer, client };
    attachInfo(socket, info, o.overrideRemoteAddress);
    // Whatever followed the header goes back to the front of the stream: the HTTP parser, the TLS layer or
    // the HTTP/2 session reads it before anything that arrives later.
    if (rest.length > 0) socket.unshift(rest);
    emit.call(server, 'connection', socket);
  }

  function onError(err: Error): void {
    if (done) return;
    reject(
      new ProxyProtocolError(ErrorCodes.INCOMPLETE, `connection failed before a complete PROXY header: ${err.message}`, {
        cause: err,
      }),
    );
  }

  function onEnd(): void {
    if (done) return;
    if (!buffered) {
      // Opened and closed without a byte: a TCP health check (ELB, HAProxy `check`). Not an attack, not an event.
      cleanup();
      socket.removeListener('error', onError);
      socket.on('error', noop);
      socket.destroy();
      return;
    }
    reject(new ProxyProtocolError(ErrorCodes.INCOMPLETE, 'connection closed before a complete PROXY header'));
  }

  function onClose(): void {
    if (done) return;
    if (buffered) reject(new ProxyProtocolError(ErrorCodes.INCOMPLETE, 'connection closed before a complete PROXY header'));
    else {
      cleanup();
      socket.removeListener('error', onError);
    }
  }

  function onTimeout(): void {
    timer = undefined;
    if (done) return;
    reject(new ProxyProtocolError(ErrorCodes.TIMEOUT, `no complete PROXY header within ${o.headerTimeout} ms`));
  }

  if (o.isTrusted && !o.isTrusted(peerAddress)) {
    if (o.requireHeader) reject(new ProxyProtocolError(ErrorCodes.UNTRUSTED, `connection from untrusted peer ${peerAddress}`));
    else serveDirect();
    return;
  }
  socket.on('error', onError);
  socket.on('end', onEnd);
  socket.on('close', onClose);
  socket.on('readable', onReadable);
  if (o.headerTimeout > 0) {
    timer = setTimeout(onTimeout, o.headerTimeout);
    timer.unref();
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
  target[kWrapped] = true;
  // Node announces accepted sockets only through emit('connection'); intercepting that one event on this
  // one server is the narrowest hook there is (no socket or prototype is patched).
  server.emit = function emitWithProxyProtocol(this: NetServer, event: string | symbol, a?: unknown, b?: unknown): boolean {
    if (event === 'connection') {
      accept(this, a as Socket, o, emit);
      return true;
    }
    if (event === 'secureConnection') inheritInfo(a as TLSSocket, o.overrideRemoteAddress);
    else if (event === 'tlsClientError' && b) inheritInfo(b as TLSSocket, o.overrideRemoteAddress);
    // `arguments` keeps this hot path (every 'request' event goes through it) free of array copies.
    // biome-ignore lint/complexity/noArguments: see above
    return Reflect.apply(emit, this, arguments);
  } as S['emit'];
  return server;
}
