// The load generator: a separate process that opens real connections (header first) and reports a rate.
// Usage (fork): message { mode: 'conn' | 'keepalive' | 'tls' | 'tls-keepalive', port, ms, concurrency, header, path }
import net from 'node:net';
import tls from 'node:tls';

function request(path, keepAlive) {
  return `GET ${path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: ppa-bench\r\n${keepAlive ? '' : 'Connection: close\r\n'}\r\n`;
}

/** One connection per request: header + request in one write, read until the server closes. */
function connLoop(o, until, counter) {
  return new Promise((resolve) => {
    const payload = Buffer.from((o.header ?? '') + request(o.path, false));
    const next = () => {
      if (Date.now() >= until) return resolve();
      const s = net.connect(o.port, '127.0.0.1');
      s.setNoDelay(true);
      s.on('connect', () => s.write(payload));
      // The response is small: once it is in, reset instead of closing, so that no TIME_WAIT piles up on
      // the loopback ports and the rate does not drift over a run.
      s.on('data', (d) => {
        if (d.includes('\r\n\r\nok')) s.resetAndDestroy();
      });
      s.on('error', () => counter.errors++);
      s.on('close', () => {
        counter.n++;
        next();
      });
    };
    next();
  });
}

/** TLS: header on the raw socket, then a full handshake (no session reuse) and one request. */
function tlsLoop(o, until, counter) {
  return new Promise((resolve) => {
    const next = () => {
      if (Date.now() >= until) return resolve();
      const raw = net.connect(o.port, '127.0.0.1');
      raw.setNoDelay(true);
      raw.on('error', () => {});
      raw.on('connect', () => {
        if (o.header) raw.write(o.header);
        const s = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' });
        s.on('secureConnect', () => s.write(request(o.path, false)));
        s.on('data', (d) => {
          if (d.includes('\r\n\r\nok')) raw.resetAndDestroy();
        });
        s.on('error', () => counter.errors++);
        s.on('close', () => {
          counter.n++;
          raw.destroy();
          next();
        });
      });
    };
    next();
  });
}

/**
 * Request after request on one connection: `write` sends, `stream` receives (the socket itself, or TLS over
 * it); counts complete responses by their terminating body marker (responses are small and fixed).
 */
function requestLoop(o, until, counter, stream, first, done) {
  const req = Buffer.from(request(o.path, true));
  let buf = '';
  stream.on('data', (d) => {
    buf += d.toString('latin1');
    let i = buf.indexOf(o.marker);
    while (i >= 0) {
      counter.n++;
      buf = buf.slice(i + o.marker.length);
      if (Date.now() >= until) return done();
      stream.write(req);
      i = buf.indexOf(o.marker);
    }
  });
  stream.on('error', () => {
    counter.errors++;
    done();
  });
  stream.on('close', done);
  return first === undefined ? req : Buffer.concat([first, req]);
}

/** Keep-alive: one connection, header once (with the first request), then request after request. */
function keepAliveLoop(o, until, counter) {
  return new Promise((resolve) => {
    const s = net.connect(o.port, '127.0.0.1');
    s.setNoDelay(true);
    const done = () => {
      s.destroy();
      resolve();
    };
    const first = requestLoop(o, until, counter, s, o.header ? Buffer.from(o.header) : undefined, done);
    s.on('connect', () => s.write(first));
  });
}

/** TLS keep-alive: header on the raw socket, one handshake, then request after request over it. */
function tlsKeepAliveLoop(o, until, counter) {
  return new Promise((resolve) => {
    const raw = net.connect(o.port, '127.0.0.1');
    raw.setNoDelay(true);
    raw.on('error', () => {});
    raw.on('connect', () => {
      if (o.header) raw.write(o.header);
      const s = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' });
      const done = () => {
        s.destroy();
        raw.destroy();
        resolve();
      };
      const first = requestLoop(o, until, counter, s, undefined, done);
      s.on('secureConnect', () => s.write(first));
    });
  });
}

const LOOPS = { tls: tlsLoop, keepalive: keepAliveLoop, 'tls-keepalive': tlsKeepAliveLoop, conn: connLoop };

process.on('message', async (o) => {
  const counter = { n: 0, errors: 0 };
  const loop = LOOPS[o.mode] ?? connLoop;
  const start = Date.now();
  const until = start + o.ms;
  await Promise.all(Array.from({ length: o.concurrency }, () => loop(o, until, counter)));
  const elapsed = (Date.now() - start) / 1000;
  process.send({ rate: counter.n / elapsed, n: counter.n, errors: counter.errors });
});
