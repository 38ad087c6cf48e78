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
