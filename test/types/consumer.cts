// The same through CommonJS (`require` resolution) with strict + nodenext.
import express = require('express');
import ppa = require('proxy-protocol-audit');
import ppaExpress = require('proxy-protocol-audit/express');
import ppaKoa = require('proxy-protocol-audit/koa');
import Koa = require('koa');

const app = express();
app.use(ppaExpress.clientIp());
app.get('/', (req, res) => {
  const ip: string = req.clientIp;
  res.send(ip);
});
const koa = new Koa();
koa.use(ppaKoa.clientIp());
koa.use((ctx) => {
  const ip: string = ctx.clientIp;
  ctx.body = ip;
});
const server = ppa.createServer({ proxyProtocol: { requireHeader: true } });
void server;
import Fastify = require('fastify');
import ppaFastify = require('proxy-protocol-audit/fastify');

const fastify = Fastify.default();
fastify.register(ppaFastify.clientIp);
fastify.register(ppaFastify.auditLog, { log: ppa.createAuditLog({ filename: 'audit.jsonl' }) });
fastify.get('/', async (request) => {
  const ip: string = request.clientIp;
  return ip;
});
ppa.auditUpgrades(ppa.withProxyProtocol(fastify.server), { log: ppa.createAuditLog({ filename: 'audit.jsonl' }) });
