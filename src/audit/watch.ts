// The connection level of a server, in the audit log: connections the PROXY layer rejected, requests Node's
// HTTP server rejected before any app code ran, and (optionally) every accepted connection.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server, Socket } from 'node:net';
import { isAudited } from '../audited.js';
import { type ConnectionEnds, connectionEnds, getProxyInfo } from '../connection/socket-info.js';
import { MAX_PATH, pathOf } from '../http-objects.js';
import type { ProxyProtocolError } from '../protocol/errors.js';
import { unmapIPv4 } from '../trust.js';
import type { AuditFields } from './entry.js';

/** Options of `AuditLog.watch`. */
export interface WatchOptions {
  /** Also write an entry for every accepted connection. Default false. */
  accepted?: boolean;
}

/** What `watch` needs of the log. */
interface Writer {
  write(fields: AuditFields, whenWritten?: (written: boolean) => void): boolean;
}

// Node's own answers to a request it rejects (lib/_http_server.js), sent by its default 'clientError'
// handling, which a listener replaces: the watch sends them itself, once the entry is written.
const ANSWERS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Payload Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
};

function answerOf(code: string | undefined): [number, string] {
  return (code !== undefined && ANSWERS[code]) || [400, 'Bad Request'];
}

/** The entry of a request Node rejected before the app saw it: its connection's ends and what was rejected. */
function rejected(ends: ConnectionEnds, what: Partial<AuditFields>): AuditFields {
  return {
    category: 'network',
    action: 'http-request-rejected',
    outcome: 'failure',
    clientIp: ends.clientIp,
    clientPort: ends.clientPort,
    peerAddress: ends.peerIp,
    peerPort: ends.peerPort,
    ...what,
  };
}

/** Starts watching; returns the function that stops it. */
export function watchServer(log: Writer, server: Server, options: WatchOptions = {}): () => void {
  if (server === null || typeof server !== 'object' || typeof server.on !== 'function') {
    throw new TypeError('watch: expected a server (net, tls, http, https or http2)');
  }
  const stops: (() => void)[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: listeners of several events, each typed where it is written
  const on = (event: string, listener: (...args: any[]) => void) => {
    server.on(event, listener);
    stops.push(() => server.removeListener(event, listener));
  };

  on('proxyError', (err: ProxyProtocolError) => {
    log.write({
      category: 'network',
      action: 'connection-rejected',
      outcome: 'failure',
      peerAddress: err.peer ? unmapIPv4(err.peer.address) : undefined,
      peerPort: err.peer?.port,
      errorType: 'proxy_protocol',
      errorCode: err.code,
      errorMessage: err.message,
    });
  });

  // HTTP servers only (net.Server never emits it).
  on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const ends = connectionEnds(socket);
    const [status, text] = answerOf(err.code);
    // Node answers only while no byte of the response in flight (if any) was sent; otherwise it just destroys
    // the socket. `_httpMessage` is the response Node attached to the socket: read as Node's own check reads it.
    const inFlight = (socket as Socket & { _httpMessage?: { _headerSent?: boolean; req?: { complete?: boolean } } | null })
      ._httpMessage;
    const answer = socket.writable && !(inFlight?._headerSent === true);
    const respond = (written: boolean) => {
      // Another 'clientError' listener of the app decides what happens to the socket, as without us.
      if (server.listenerCount('clientError') > 1) return;
      if (answer && written && !socket.destroyed) socket.write(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\n\r\n`);
      socket.destroy(err);
    };
    // Not a request Node rejected: the network failed under the connection (a reset of an idle keep-alive
    // connection, a broken pipe: a system call's error), or the request reached the app and its own entry
    // records the end (a `requestTimeout` while its body was read: `timeout`, 408). Bytes that follow a
    // complete request are a request of their own. A TLS connection that closed before its handshake ended
    // (`ECONNRESET` "socket hang up", no system call: a port probe or a health check through a balancer, which
    // sends the PROXY header and closes) sent no request either.
    if (
      typeof err.syscall === 'string' ||
      err.code === 'ECONNRESET' ||
      (isAudited(inFlight) && inFlight?.req?.complete !== true)
    ) {
      respond(true); // (what Node answers, if anything)
      return;
    }
    log.write(
      rejected(ends, {
        status: answer ? status : undefined,
        errorType: err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'timeout' : 'client_error',
        errorCode: typeof err.code === 'string' ? err.code : undefined,
        errorMessage: err.message,
      }),
      respond,
    );
  });

  // A request whose `Expect` is not `100-continue`: Node answers 417 itself, before any listener of the app,
  // unless the server has a 'checkExpectation' listener. This one answers as Node would when it is the only one
  // (after the entry is written; a request that has an entry of its own, from auditRequests, waits for that).
  on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    if (server.listenerCount('checkExpectation') > 1) return;
    const answer = (written: boolean) => {
      if (!written) {
        res.destroy();
        return;
      }
      res.writeHead(417);
      res.end();
    };
    if (isAudited(res)) {
      answer(true);
      return;
    }
    log.write(
      rejected(connectionEnds(req.socket), {
        method: req.method,
        path: pathOf(req.url ?? '/').slice(0, MAX_PATH),
        status: 417,
        errorType: 'client_error',
        errorMessage: 'Expect header other than 100-continue',
      }),
      answer,
    );
  });

  if (options.accepted) {
    on('connection', (socket: Socket) => {
      if (!getProxyInfo(socket)) return; // not a connection the PROXY layer handled
      const ends = connectionEnds(socket);
      log.write({
        category: 'network',
        action: 'connection-accepted',
        outcome: 'success',
        clientIp: ends.clientIp,
        clientPort: ends.clientPort,
        peerAddress: ends.peerIp,
        peerPort: ends.peerPort,
      });
    });
  }
  return () => {
    for (const s of stops) s();
  };
}
