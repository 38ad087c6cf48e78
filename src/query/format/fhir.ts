// HL7 FHIR R4 AuditEvent, following the IHE Basic Audit Log Patterns (BALP) for RESTful interactions.
import type { EntryView } from '../entry.js';
import type { QueryMatch } from '../query.js';
import type { Formatter } from './table.js';

/** A FHIR resource as JSON. */
export type FhirResource = { resourceType: string } & Record<string, unknown>;

interface Coding {
  system: string;
  code: string;
  display: string;
}

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const REST: Coding = {
  system: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
  code: 'rest',
  display: 'Restful Operation',
};
const INTERACTION = 'http://hl7.org/fhir/restful-interaction';
// BALP: the client is the Source Role ID and the server the Destination Role ID (the DICOM/IHE direction of
// the request, although the data flows the other way).
const SOURCE_ROLE: Coding = { system: DCM, code: '110153', display: 'Source Role ID' };
const DESTINATION_ROLE: Coding = { system: DCM, code: '110152', display: 'Destination Role ID' };
// BALP UserAgentTypes: IRCP for query/retrieve, AGNT for push/create/update/delete.
const RECIPIENT: Coding = {
  system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType',
  code: 'IRCP',
  display: 'information recipient',
};
const AGENT: Coding = { system: 'http://terminology.hl7.org/CodeSystem/v3-RoleClass', code: 'AGNT', display: 'agent' };
const APPLICATION_SERVER: Coding = {
  system: 'http://terminology.hl7.org/CodeSystem/security-source-type',
  code: '4',
  display: 'Application Server',
};
const REQUEST_ID: Coding = {
  system: 'https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType',
  code: 'XrequestId',
  display: 'XRequestId',
};
const SYSTEM_OBJECT: Coding = {
  system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type',
  code: '2',
  display: 'System Object',
};

/** HTTP method → FHIR restful interaction and AuditEvent action (C/R/U/D/E). */
const METHODS: Record<string, { interaction: string; action: string }> = {
  GET: { interaction: 'read', action: 'R' },
  HEAD: { interaction: 'read', action: 'R' },
  POST: { interaction: 'create', action: 'C' },
  PUT: { interaction: 'update', action: 'U' },
  PATCH: { interaction: 'patch', action: 'U' },
  DELETE: { interaction: 'delete', action: 'D' },
  OPTIONS: { interaction: 'capabilities', action: 'E' },
};

/** Entries that are not requests: DICOM audit event ids (and subtypes) of the same meaning. */
const ACTIONS: Record<string, { type: Coding; subtype?: Coding }> = {
  'connection-rejected': { type: { system: DCM, code: '110113', display: 'Security Alert' } },
  'audit-log-started': {
    type: { system: DCM, code: '110100', display: 'Application Activity' },
    subtype: { system: DCM, code: '110120', display: 'Application Start' },
  },
  'audit-log-stopped': {
    type: { system: DCM, code: '110100', display: 'Application Activity' },
    subtype: { system: DCM, code: '110121', display: 'Application Stop' },
  },
  'audit-query': { type: { system: DCM, code: '110112', display: 'Query' } },
};
const APPLICATION_ACTIVITY: Coding = { system: DCM, code: '110100', display: 'Application Activity' };

/** audit-event-outcome: 0 success, 4 minor failure (a 4xx), 8 serious failure (a 5xx or no answer). */
function outcome(f: EntryView): string | undefined {
  if (f.outcome === 'success') return '0';
  if (f.outcome !== 'failure') return undefined;
  if (f.status !== undefined && f.status < 500) return '4';
  return f.category === 'network' ? '4' : '8';
}

function outcomeDesc(f: EntryView): string | undefined {
  const parts = [f.status === undefined ? undefined : `HTTP ${f.status}`, f.errorType, f.errorCode].filter(
    (p) => p !== undefined,
  );
  return parts.length === 0 ? undefined : parts.join(' ');
}

/** FHIR ids: 1–64 of [A-Za-z0-9.-]. Chain (a UUID) and sequence name an entry uniquely. */
function resourceId(f: EntryView): string | undefined {
  if (f.chain === undefined || f.sequence === undefined) return undefined;
  const id = `${f.chain}.${f.sequence}`;
  return /^[A-Za-z0-9.-]{1,64}$/.test(id) ? id : undefined;
}

function clean<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined || o[k] === '') delete o[k];
  return o;
}

/**
 * One audit entry as an HL7 FHIR R4 AuditEvent, after the IHE BALP RESTful pattern: `type` rest with the
 * interaction from the method as `subtype` and `action`; `recorded`; `outcome` (0 success, 4 a 4xx
 * failure, 8 a 5xx or unanswered one); an agent for the client (Source Role ID, `network.address` = the
 * client address, as known by the TCP connection through the PROXY header), one for the server
 * (Destination Role ID, service and host), one for the user (`user.id`, the requestor); `source.observer`
 * from service and host; an entity for the transaction id (`XrequestId`) and one for the path. Entries that
 * are not requests get the DICOM event id of their meaning (Security Alert for a refused connection,
 * Application Start/Stop, Query). `id` is `<chain>.<sequence>`.
 *
 * @example
 * ```ts
 * for await (const m of queryAuditLog(files, { user: 'dr-lee' })) out.write(`${JSON.stringify(toFhirAuditEvent(m.fields))}\n`);
 * ```
 */
export function toFhirAuditEvent(f: EntryView): FhirResource {
  const method = f.method === undefined ? undefined : METHODS[f.method.toUpperCase()];
  const isRequest = f.category === 'web';
  const known = f.action === undefined ? undefined : ACTIONS[f.action];
  const type = isRequest ? REST : (known?.type ?? APPLICATION_ACTIVITY);
  const subtype = isRequest
    ? method && [{ system: INTERACTION, code: method.interaction, display: method.interaction }]
    : known?.subtype && [known.subtype];
  const observer = [f.service, f.host].filter((p) => p !== undefined).join('@') || 'unknown';
  const user = f.userId;
  const client = f.clientIp ?? f.peerIp;
  const agent: Record<string, unknown>[] = [];
  if (client !== undefined) {
    agent.push({
      type: { coding: [SOURCE_ROLE] },
      who: { display: client },
      // Without a known user the client is the one that asked.
      requestor: user === undefined,
      network: { address: client, type: '2' },
    });
  }
  agent.push(
    clean({
      type: { coding: [DESTINATION_ROLE] },
      who: { display: f.service ?? observer },
      requestor: false,
      network: f.host === undefined ? undefined : { address: f.host, type: '1' },
    }),
  );
  if (user !== undefined) {
    agent.push({
      type: { coding: [method === undefined || method.action === 'R' ? RECIPIENT : AGENT] },
      who: { identifier: { value: user } },
      requestor: true,
    });
  }
  const entity: Record<string, unknown>[] = [];
  if (f.requestId !== undefined) entity.push({ what: { identifier: { value: f.requestId } }, type: REQUEST_ID });
  if (f.path !== undefined)
    entity.push(clean({ what: { display: f.path }, type: SYSTEM_OBJECT, name: f.route, description: f.domain }));
  return clean({
    resourceType: 'AuditEvent',
    id: resourceId(f),
    type,
    subtype,
    action: isRequest ? (method?.action ?? 'E') : 'E',
    recorded: f.timestamp,
    outcome: outcome(f),
    outcomeDesc: outcomeDesc(f),
    agent,
    source: clean({ site: f.host, observer: { display: observer }, type: [APPLICATION_SERVER] }),
    entity: entity.length === 0 ? undefined : entity,
  });
}

/**
 * NDJSON (FHIR bulk data): one AuditEvent per line.
 *
 * @example
 * ```ts
 * const f = createFhirNdjsonFormatter();
 * for await (const m of queryAuditLog(files, { user: 'dr-lee' })) out.write(f.row(m));
 * ```
 */
export function createFhirNdjsonFormatter(): Formatter {
  return {
    row: (m: QueryMatch) => `${JSON.stringify(toFhirAuditEvent(m.fields))}\n`,
    end: () => '',
  };
}

/**
 * One FHIR `collection` Bundle of AuditEvents, written as it goes (memory stays bounded). `now`: the Bundle's
 * `timestamp` (default: the time of the call).
 *
 * @example
 * ```ts
 * const f = createFhirBundleFormatter();
 * for await (const m of queryAuditLog(files, { user: 'dr-lee' })) out.write(f.row(m));
 * out.write(f.end());
 * ```
 */
export function createFhirBundleFormatter(now = new Date()): Formatter {
  let first = true;
  const head = `{"resourceType":"Bundle","type":"collection","timestamp":"${now.toISOString()}","entry":[`;
  return {
    row: function bundleRow(m: QueryMatch): string {
      const s = `${first ? head : ','}\n{"resource":${JSON.stringify(toFhirAuditEvent(m.fields))}}`;
      first = false;
      return s;
    },
    end: function bundleEnd(): string {
      // A bundle without entries has no `entry` member (FHIR: arrays are never empty).
      return first ? `{"resourceType":"Bundle","type":"collection","timestamp":"${now.toISOString()}"}\n` : '\n]}\n';
    },
  };
}
