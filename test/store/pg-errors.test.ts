import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCodes } from '../../src/index.js';
import { storeError } from '../../src/store/pg-errors.js';

/** An error as node-postgres or node:net gives it: a message and the members they set. */
const failure = (message: string, members: Record<string, unknown> = {}) => Object.assign(new Error(message), members);

describe('storeError: what a failure of PostgreSQL or the network means', () => {
  // The cases the tests against a real PostgreSQL cannot make (pg-init.test.ts makes the others).
  const cases = [
    {
      name: 'the server is starting up',
      err: failure('the database system is starting up', { code: '57P03' }),
      code: ErrorCodes.AUDIT_STORE_UNAVAILABLE,
      says: /takes no connection now/,
    },
    {
      name: 'too many connections',
      err: failure('sorry, too many clients already', { code: '53300' }),
      code: ErrorCodes.AUDIT_STORE_UNAVAILABLE,
      says: /takes no connection now/,
    },
    {
      name: 'a host name that does not resolve',
      err: failure('getaddrinfo ENOTFOUND db.example', { code: 'ENOTFOUND', hostname: 'db.example' }),
      code: ErrorCodes.AUDIT_STORE_ACCESS,
      says: /does not resolve/,
    },
    {
      name: 'DNS not answering',
      err: failure('getaddrinfo EAI_AGAIN db.example', { code: 'EAI_AGAIN' }),
      code: ErrorCodes.AUDIT_STORE_UNAVAILABLE,
      says: /does not resolve/,
    },
    {
      name: 'an untrusted certificate',
      err: failure('self-signed certificate', { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
      code: ErrorCodes.AUDIT_STORE_ACCESS,
      says: /certificate is not trusted.*sslrootcert/,
    },
    {
      name: 'a certificate for another host name',
      err: failure("Hostname/IP does not match certificate's altnames", { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }),
      code: ErrorCodes.AUDIT_STORE_ACCESS,
      says: /certificate is not trusted/,
    },
    {
      name: "the pool's timeout, whose cause is the client's",
      err: failure('Connection terminated due to connection timeout', { cause: failure('timeout expired') }),
      code: ErrorCodes.AUDIT_STORE_UNAVAILABLE,
      says: /no answer within the connection timeout/,
    },
    {
      name: 'a login refused by pg_hba.conf (not about TLS)',
      err: failure('pg_hba.conf rejects connection for host "10.0.0.9", user "app", database "ehr", SSL encryption', {
        code: '28000',
        routine: 'ClientAuthentication',
      }),
      code: ErrorCodes.AUDIT_STORE_ACCESS,
      says: /no pg_hba.conf rule admits/,
    },
    {
      name: 'no such schema',
      err: failure('schema "audit" does not exist', { code: '3F000' }),
      code: ErrorCodes.AUDIT_STORE_ACCESS,
      says: /no such schema/,
    },
    {
      name: 'anything else',
      err: failure('Connection terminated unexpectedly'),
      code: ErrorCodes.AUDIT_STORE_UNAVAILABLE,
      says: /^PostgreSQL unavailable: Connection terminated unexpectedly$/,
    },
    { name: 'not an Error', err: 'boom', code: ErrorCodes.AUDIT_STORE_UNAVAILABLE, says: /^PostgreSQL unavailable: boom$/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const e = storeError(c.err, 'pg-init') as Error & { code: string };
      assert.equal(e.code, c.code);
      assert.match(e.message, c.says);
      assert.equal(e.cause, c.err);
    });
  }

  it('a permission denied says what to grant for what was being done', () => {
    const denied = failure('permission denied for table audit_log', { code: '42501' });
    const says = {
      'pg-init': /run pg-init as the owner/,
      ship: /pg-init --app-role ROLE/,
      verify: /SELECT on the table and its raw table/,
    } as const;
    for (const [action, re] of Object.entries(says)) {
      const e = storeError(denied, action as keyof typeof says) as Error & { code: string };
      assert.equal(e.code, ErrorCodes.AUDIT_STORE_ACCESS, action);
      assert.match(e.message, re, action);
    }
  });

  it("errors with the package's own codes pass as they are", () => {
    const own = failure('no audit table', { code: ErrorCodes.AUDIT_STORE_SCHEMA });
    assert.equal(storeError(own, 'ship'), own);
  });
});
