// A TypeScript ESM consumer with strict + nodenext: the published types must give req.clientIp and
// ctx.clientIp as plain strings, with no cast.
import express from 'express';
import Koa from 'koa';
import {
  auditReport,
  createAuditLog,
  getProxyInfo,
  type ParseResult,
  type ProxyInfo,
  parseProxyHeader,
  type QueryMatch,
  queryAuditLog,
  withProxyProtocol,
} from 'proxy-protocol-audit';
import { auditLog as expressAudit, clientIp as expressClientIp } from 'proxy-protocol-audit/express';
import { auditLog as koaAudit, clientIp as koaClientIp } from 'proxy-protocol-audit/koa';

const app = express();
app.use(expressClientIp());
app.get('/', (req, res) => {
  const ip: string = req.clientIp;
  const port: number | undefined = req.clientPort;
  // @ts-expect-error clientIp is a string, not a number
  const wrong: number = req.clientIp;
  res.json({ ip, port, wrong });
});

const koa = new Koa();
koa.use(koaClientIp());
koa.use((ctx) => {
  const ip: string = ctx.clientIp;
  const fromRequest: string = ctx.request.clientIp;
  // @ts-expect-error clientIp is a string
  const wrong: boolean = ctx.clientIp;
  ctx.body = { ip, fromRequest, wrong };
});

const log = createAuditLog({ filename: 'audit.jsonl' });
app.use(expressAudit({ log, user: (req) => req.get('x-user') }));
koa.use(koaAudit({ log, user: (ctx) => ctx.state.user as string | undefined }));
app.use(expressAudit({ log, clientIp: { trustForwardedFrom: ['10.0.0.0/8'] } }));
koa.use(koaAudit({ log, clientIp: true }));
// @ts-expect-error clientIp takes true or clientIp()'s options
app.use(expressAudit({ log, clientIp: 'yes' }));

const server = withProxyProtocol(app.listen(0), { trustedProxies: ['10.0.0.0/8'] });
server.on('connection', (socket) => {
  const info: ProxyInfo | undefined = getProxyInfo(socket);
  void info?.peer?.address; // undefined when first read after the connection closed
});
// @ts-expect-error getProxyInfo takes a socket, not a server
getProxyInfo(server);
const r: ParseResult = parseProxyHeader(new Uint8Array());
if (r.status === 'invalid') {
  const code: `ERR_PROXY_${string}` = r.error.code;
  void code;
}

// Fastify: request.clientIp typed through declaration merging; the plugins' options checked.
import Fastify from 'fastify';
import { auditRequests, auditUpgrades } from 'proxy-protocol-audit';
import { auditLog as fastifyAudit, clientIp as fastifyClientIp } from 'proxy-protocol-audit/fastify';

const fastify = Fastify();
fastify.register(fastifyClientIp, { trustForwardedFrom: ['10.0.0.0/8'] });
fastify.register(fastifyAudit, { log, path: 'route', user: (request) => request.headers['x-user'] as string | undefined });
// @ts-expect-error path takes 'path', 'route' or a function
fastify.register(fastifyAudit, { log, path: 'template' });
fastify.get('/', async (request) => {
  const ip: string = request.clientIp;
  const port: number | undefined = request.clientPort;
  // @ts-expect-error clientIp is a string
  const wrong: number = request.clientIp;
  return { ip, port, wrong };
});
withProxyProtocol(fastify.server);

// Plain servers and upgrades: the same server comes back.
import http from 'node:http';

const plain: http.Server = auditUpgrades(auditRequests(http.createServer(), { log, clientIp: true }), {
  log,
  user: (req) => req.headers['x-user'] as string | undefined,
  startEntry: true,
});
// @ts-expect-error an upgrade has no route template
auditUpgrades(plain, { log, path: 'route' });

// The auditor's API: an async iterable of typed matches, and a verdict.
async function auditorQuestions(): Promise<number> {
  const q = queryAuditLog(['audit.jsonl.1.gz', 'audit.jsonl'], { ip: '10.0.0.0/8', status: '4xx', from: '7d' }, { limit: 10 });
  for await (const m of q) {
    const match: QueryMatch = m;
    const user: string | undefined = match.fields.userId;
    const verified: boolean = match.verified;
    void user;
    void verified;
  }
  const { verdict, exitCode } = await q.result;
  const v: 'intact' | 'unsealed' | 'tampered' | 'cannot-verify' = verdict;
  void v;
  // @ts-expect-error an unknown filter
  queryAuditLog('audit.jsonl', { client: '10.0.0.1' });
  const report = await auditReport('audit.jsonl', { user: 'dr-lee' });
  const first: string | undefined = report.perUser[0]?.first;
  void first;
  return exitCode;
}
void auditorQuestions;
