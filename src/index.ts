/**
 * proxy-protocol-audit: PROXY protocol v1/v2 for Node.js servers, the client address on every socket, and a
 * tamper-evident audit log. Framework adapters live in `proxy-protocol-audit/express`, `/koa` and `/fastify`;
 * `auditRequests` and `auditUpgrades` audit any node:http, https or http2 server without one.
 * @packageDocumentation
 */

export {
  AuditLog,
  type AuditLogOptions,
  type AuditLogState,
  type AuditStats,
  type CloseOptions,
  createAuditLog,
  type OpenEntry,
  type OpenOptions,
  type WatchOptions,
} from './audit/audit-log.js';
export { AccessLogTransport, formatElbLine } from './audit/elb-format.js';
export type { AuditFields } from './audit/entry.js';
export type { Durability } from './audit/file-sink.js';
export { type AuditFileOptions, AuditFileTransport } from './audit/file-transport.js';
export {
  type ChainStatus,
  type ChainSummary,
  type LineSource,
  type ParsedEntry,
  type Verdict,
  type VerifiedEntry,
  Verifier,
  type VerifyCode,
  VerifyCodes,
  type VerifyFinding,
  type VerifyOptions,
  type VerifyResult,
  VerifySeverities,
  type VerifySeverity,
  verifyAuditLog,
} from './audit/verify.js';
export { createHttpServer, createServer, type HttpServerOptions, type ServerOptions } from './connection/create-server.js';
export type { ProxyProtocolOptions } from './connection/options.js';
export { getProxyInfo, type ProxyInfo } from './connection/socket-info.js';
export { withProxyProtocol } from './connection/with-proxy-protocol.js';
export { type AuditRequestsOptions, auditRequests } from './middleware/audit-requests.js';
export type { AuditMiddlewareOptions } from './middleware/request-audit.js';
export { type AuditUpgradesOptions, auditUpgrades } from './middleware/upgrade-audit.js';
export * from './protocol/index.js';
export { type AuditEntry, type EntryView, view as entryFields } from './query/entry.js';
export { type CompiledFilter, compileFilter, type QueryFilters } from './query/filter.js';
export { createCsvFormatter, csvField } from './query/format/csv.js';
export {
  createFhirBundleFormatter,
  createFhirNdjsonFormatter,
  type FhirResource,
  toFhirAuditEvent,
} from './query/format/fhir.js';
export { formatReport } from './query/format/report-text.js';
export { createTableFormatter, type Formatter, type TableOptions } from './query/format/table.js';
export { type AuditQuery, type QueryMatch, type QueryOptions, type QueryResult, queryAuditLog } from './query/query.js';
export { type AuditReport, auditReport, type Tally } from './query/report.js';
export { orderFiles } from './query/sources.js';
export { parseTime } from './query/time.js';
export type { PgClient, PgPool, PostgresOption } from './store/pg.js';
export { type SqlStatement, type StoreQuerySqlOptions, storeQuerySql } from './store/query-sql.js';
export { queryStore, type StoreQueryOptions, type StoreSource } from './store/query-store.js';
export { type RawLine, type RawReason, RawReasons } from './store/raw.js';
export { type PgInitOptions, type PgInitResult, pgInit } from './store/schema.js';
export { PostgresShipper, type ShipperLag, type ShipperOptions, type ShipperStats } from './store/shipper.js';
export { type VerifyStoreOptions, verifyStore } from './store/verify-store.js';
export { compileTrust, type TrustList, unmapIPv4 } from './trust.js';
