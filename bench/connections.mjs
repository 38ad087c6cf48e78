// Connection layer cost, side by side: each pair measures the two servers back to back under the same load,
// from a separate load process; the ratio of each pair is kept and the median reported.
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import selfsigned from 'selfsigned';
import { median, startLoad, table } from './lib.mjs';

const require = createRequire(import.meta.url);
const { withProxyProtocol, createServer } = require('../dist/cjs/index.js');
const proxywrap = require('findhit-proxywrap');

const PAIRS = Number(process.env.PAIRS ?? 15);
const MS = Number(process.env.MS ?? 600);
const HEADER = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 80\r\n';
const handler = (_req, res) => {
  res.setHeader('content-length', '2');
  res.end('ok');
};

const load = startLoad();
async function measure(port, mode, header, concurrency) {
  const cpu0 = process.cpuUsage();
  load.send({ mode, port, ms: MS, concurrency, header, path: '/', marker: '\r\n\r\nok' });
  const [r] = await once(load, 'message');
  const cpu = process.cpuUsage(cpu0);
  if (r.errors > r.n / 100) throw new Error(`${r.errors} errors in ${r.n} requests`);
  // Server CPU time per operation: its inverse is the capacity of one core, independent of how busy the
  // load generator or the machine's neighbours happened to be.
  return { rate: r.rate, capacity: (r.n * 1e6) / (cpu.user + cpu.system) };
}

async function listen(server) {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server.address().port;
}

/** Alternates A and B (B first every other pair), returns rates and the median ratio A/B. */
async function pairs(name, a, b) {
  const pa = await listen(a.server);
  const pb = await listen(b.server);
  await measure(pa, a.mode, a.header, a.concurrency); // warm-up
  await measure(pb, b.mode, b.header, b.concurrency);
  const ratios = [];
  const capRatios = [];
  const ra = [];
  const rb = [];
  for (let i = 0; i < PAIRS; i++) {
    let x;
    let y;
    if (i % 2 === 0) {
      x = await measure(pa, a.mode, a.header, a.concurrency);
      y = await measure(pb, b.mode, b.header, b.concurrency);
    } else {
      y = await measure(pb, b.mode, b.header, b.concurrency);
      x = await measure(pa, a.mode, a.header, a.concurrency);
    }
    ra.push(x.rate);
    rb.push(y.rate);
    ratios.push(x.rate / y.rate);
    capRatios.push(x.capacity / y.capacity);
  }
  a.server.close();
  b.server.close();
  a.server.closeAllConnections?.();
  b.server.closeAllConnections?.();
  return {
    name,
    a: median(ra),
    b: median(rb),
    ratio: median(ratios),
    capacity: median(capRatios),
    a_label: a.label,
    b_label: b.label,
  };
}

const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', algorithm: 'sha256' });
const tlsOptions = { key: pems.private, cert: pems.cert };

const results = [];
results.push(
  await pairs(
    'new connections/s, v1 header vs plain http (no header)',
    {
      label: 'withProxyProtocol',
      server: withProxyProtocol(http.createServer(handler)),
      mode: 'conn',
      header: HEADER,
      concurrency: 32,
    },
    { label: 'http', server: http.createServer(handler), mode: 'conn', header: '', concurrency: 32 },
  ),
);
// The floor of any JS-level PROXY reader on public Node APIs: read the first chunk, strip the header line,
// unshift the rest, hand the socket on. No parsing, no checks: shows what the mechanism itself costs.
function minimalReader() {
  const s = http.createServer(handler);
  const emit = s.emit;
  s.emit = function (event, socket) {
    // biome-ignore lint/complexity/noArguments: forwards every other event unchanged
    if (event !== 'connection') return Reflect.apply(emit, this, arguments);
    socket.on('readable', function onReadable() {
      const chunk = socket.read();
      if (chunk === null) return;
      socket.removeListener('readable', onReadable);
      const rest = chunk.subarray(chunk.indexOf(10) + 1);
      if (rest.length > 0) socket.unshift(rest);
      emit.call(s, 'connection', socket);
    });
    return true;
  };
  return s;
}
results.push(
  await pairs(
    'new connections/s, reference: minimal read+unshift, no checks, vs plain http',
    { label: 'minimal reader', server: minimalReader(), mode: 'conn', header: HEADER, concurrency: 32 },
    { label: 'http', server: http.createServer(handler), mode: 'conn', header: '', concurrency: 32 },
  ),
);
results.push(
  await pairs(
    'new connections/s, v1 header vs findhit-proxywrap',
    {
      label: 'withProxyProtocol',
      server: withProxyProtocol(http.createServer(handler)),
      mode: 'conn',
      header: HEADER,
      concurrency: 32,
    },
    {
      label: 'proxywrap',
      server: proxywrap.proxy(http, { strict: true }).createServer(handler),
      mode: 'conn',
      header: HEADER,
      concurrency: 32,
    },
  ),
);
results.push(
  await pairs(
    'TLS handshakes/s, v1 header vs plain https.createServer',
    { label: 'createServer', server: createServer(tlsOptions, handler), mode: 'tls', header: HEADER, concurrency: 16 },
    { label: 'https', server: https.createServer(tlsOptions, handler), mode: 'tls', header: '', concurrency: 16 },
  ),
);
results.push(
  await pairs(
    'keep-alive requests/s vs plain http',
    {
      label: 'withProxyProtocol',
      server: withProxyProtocol(http.createServer(handler)),
      mode: 'keepalive',
      header: HEADER,
      concurrency: 32,
    },
    { label: 'http', server: http.createServer(handler), mode: 'keepalive', header: '', concurrency: 32 },
  ),
);
load.kill();

console.log(`\nConnection layer (load from a separate process; median of ${PAIRS} alternating pairs of ${MS} ms)\n`);
table([
  ['measure', 'ours', 'baseline', 'ratio (rate)', 'ratio (server CPU per op)'],
  ...results.map((r) => [
    r.name,
    `${Math.round(r.a)}/s`,
    `${Math.round(r.b)}/s (${r.b_label})`,
    `${r.ratio.toFixed(3)}x`,
    `${r.capacity.toFixed(3)}x`,
  ]),
]);
console.log('\nratio (rate): ours/baseline requests per second, median of the pairs;');
console.log('ratio (server CPU per op): baseline/ours server CPU time per operation (capacity of one core).');
export default results;
