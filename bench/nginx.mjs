// The deployment this package replaces, side by side with it: nginx terminating TLS behind a PROXY-protocol
// balancer (`listen … ssl proxy_protocol`, the `elb_format` access log AWS documents) and proxying to bare
// Express, against createServer() serving the same app over HTTPS itself with clientIp + auditLog (hash-chained
// entries, default durability). Keep-alive TLS connections with a PROXY v1 header from a load process on
// core 1; the whole server side on core 0 (nginx's worker and the Express process together, or our one
// process). The figure is capacity: requests per second of server-side CPU time (nginx worker + Express vs
// ours), which the machine's other load does not skew. Needs nginx (Debian's nginx-light).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import selfsigned from 'selfsigned';
import { comparePairs, median, startLoad, startServer, table } from './lib.mjs';

const PAIRS = Number(process.env.PAIRS ?? 9);
const MS = Number(process.env.MS ?? 800);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const HEADER = 'PROXY TCP4 203.0.113.7 10.0.0.5 51000 443\r\n';

function haveNginx() {
  try {
    execFileSync('nginx', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** CPU time (µs) of a process from /proc (user + system; clock ticks of 10 ms on Linux). */
function procCpu(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / 100;
}

async function startNginx(dir, upstreamPort) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = `daemon off;
worker_processes 1;
error_log ${dir}/error.log;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  log_format elb_format '$host $proxy_protocol_addr - $remote_user [$time_local] "$request" $status '
                        '$body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" $request_time';
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port} ssl proxy_protocol;
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;
    access_log ${dir}/access.log elb_format;
    keepalive_requests 100000;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_protocol_addr;
      proxy_set_header Host $host;
    }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const child = spawn('taskset', ['-c', '0', 'nginx', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
  const until = Date.now() + 5000;
  let worker;
  while (Date.now() < until && worker === undefined) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      const master = Number(fs.readFileSync(path.join(dir, 'nginx.pid'), 'utf8'));
      const kids = execFileSync('pgrep', ['-P', String(master)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .filter(Boolean);
      if (kids.length > 0) worker = Number(kids[0]);
    } catch {}
  }
  if (worker === undefined) throw new Error(`nginx did not start: ${fs.readFileSync(path.join(dir, 'error.log'), 'utf8')}`);
  return { port, worker, stop: () => child.kill('SIGQUIT') };
}

if (!haveNginx()) {
  console.log('\nnginx comparison SKIPPED: nginx is not installed (apt-get install nginx-light)');
} else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ppa-bench-nginx-'));
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], { keyType: 'ec', algorithm: 'sha256' });
  fs.writeFileSync(path.join(dir, 'tls.json'), JSON.stringify({ key: pems.private, cert: pems.cert }));
  fs.writeFileSync(path.join(dir, 'key.pem'), pems.private);
  fs.writeFileSync(path.join(dir, 'cert.pem'), pems.cert);
  const load = startLoad();
  const params = { mode: 'tls-keepalive', ms: MS, concurrency: 32, header: HEADER, path: '/patients/12', marker: '"id":"12"}' };
  const results = [];
  for (let r = 0; r < ROUNDS; r++) {
    const ours = await startServer('ppa-https-express-audit', dir);
    const express = await startServer('express', dir);
    const nginx = await startNginx(dir, express.port);
    const theirs = {
      kind: 'nginx + Express',
      port: nginx.port,
      cpu: async () => procCpu(nginx.worker) + (await express.cpu()),
    };
    results.push(await comparePairs(load, ours, theirs, { pairs: PAIRS, params }));
    nginx.stop();
    await ours.close();
    await express.close();
  }
  load.kill();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(
    `\nHTTPS with the audit in one process vs the nginx architecture (keep-alive TLS, 32 connections, PROXY v1; ${ROUNDS} rounds × ${PAIRS} pairs of ${MS} ms)\n`,
  );
  table([
    ['comparison', 'ours req/s', 'nginx+Express req/s', 'ratio (rate)', 'ratio (server CPU per request)', 'per round (CPU)'],
    [
      'createServer + Express + clientIp + auditLog vs nginx proxy_protocol ssl + elb_format log → bare Express',
      Math.round(median(results.map((x) => x.a))),
      Math.round(median(results.map((x) => x.b))),
      `${median(results.map((x) => x.ratio)).toFixed(3)}x`,
      `${median(results.map((x) => x.capacity)).toFixed(3)}x`,
      results.map((x) => x.capacity.toFixed(3)).join(' '),
    ],
  ]);
}
