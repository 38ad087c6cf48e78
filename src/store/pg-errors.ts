// What a failure of node-postgres (or of the network under it) means for the person who has to fix it: one
// mapping for pg-init, the shipper and verification from the store, so that each says the same thing and
// the sidecar's one-off mode knows which failures no retry clears.
import { ErrorCodes } from '../protocol/errors.js';

/** What the store was doing: the advice for a missing right depends on it. */
export type StoreAction = 'pg-init' | 'ship' | 'verify';

interface Failure {
  code?: unknown;
  routine?: unknown;
  message?: unknown;
  address?: unknown;
  port?: unknown;
  hostname?: unknown;
  cause?: unknown;
}

const RIGHTS: Record<StoreAction, string> = {
  'pg-init':
    'run pg-init as the owner of the schema (a role that may CREATE there and owns the table if it exists), not as the application role',
  ship: 'grant the shipping role its rights: run pg-init --app-role ROLE as the owner',
  verify: "grant the auditor's role SELECT on the table and its raw table",
};

/** TLS failures of node:tls whose cause is the server's certificate (not the network). */
const CERTIFICATE =
  /^(?:DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(?:_LOCALLY)?|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME_INVALID)$/;

/**
 * What to do about one failure, and whether it lasts (`access`: no retry clears it until someone changes the
 * URL, a password, a role, a right or pg_hba.conf) or may pass (`unavailable`). PostgreSQL's SQLSTATE and
 * `routine` (the server function that raised it) are read, never its message, which follows the server's
 * `lc_messages` — except for one English hint about TLS that is only added when it matches.
 */
function advise(err: Failure, action: StoreAction): { access: boolean; advice: string } | undefined {
  const code = typeof err.code === 'string' ? err.code : '';
  const text = typeof err.message === 'string' ? err.message : '';
  if (code === '28P01') return { access: true, advice: 'wrong password: check the password in the URL, PGPASSWORD or ~/.pgpass' };
  if (code === '28000' && err.routine === 'InitializeSessionUserId') {
    return {
      access: true,
      advice:
        'no such role, or it may not log in: fix the user name in the URL, or CREATE ROLE name LOGIN (ALTER ROLE name LOGIN)',
    };
  }
  if (code === '28000' && /no encryption|SSL off/.test(text)) {
    return {
      access: true,
      advice:
        'the server accepts this connection only over TLS: add sslmode=verify-full (with the server CA, e.g. the RDS bundle) to the URL',
    };
  }
  if (code.startsWith('28')) {
    return {
      access: true,
      advice:
        'no pg_hba.conf rule admits this user, database and address: ask the database administrator for one (a server that accepts only TLS also says so: add sslmode=verify-full)',
    };
  }
  if (code === '3D000')
    return { access: true, advice: 'no such database: fix the database name in the URL, or create it (createdb NAME)' };
  if (code === '42501') return { access: true, advice: `permission denied: ${RIGHTS[action]}` };
  if (code === '3F000') return { access: true, advice: 'no such schema: create it, or fix the schema of the table name' };
  // pg-init grants the application role its rights by name; a role that is not there is the object its
  // GRANT names that does not exist (undefined_object).
  if (code === '42704' && action === 'pg-init') {
    return {
      access: true,
      advice: 'no such role for --app-role (appRole): create it first (CREATE ROLE name LOGIN), or fix its name',
    };
  }
  if (code === '57P03' || code === '53300')
    return { access: false, advice: 'the server takes no connection now (starting up, or too many connections): retry' };
  if (code === 'ECONNREFUSED') {
    const at = typeof err.address === 'string' ? ` at ${err.address}${typeof err.port === 'number' ? `:${err.port}` : ''}` : '';
    return { access: false, advice: `nothing listens${at}: is PostgreSQL running, and are host and port in the URL right?` };
  }
  if (code === 'ENOENT' && typeof err.address === 'string') {
    return {
      access: false,
      advice: `no PostgreSQL socket ${err.address}: is PostgreSQL running, and are the socket directory (host) and port in the URL right?`,
    };
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return { access: code === 'ENOTFOUND', advice: 'the host name in the URL does not resolve: check it (and DNS)' };
  }
  if (
    code === 'ETIMEDOUT' ||
    text === 'timeout expired' ||
    text === 'timeout exceeded when trying to connect' ||
    text === 'Connection terminated due to connection timeout'
  ) {
    return {
      access: false,
      advice:
        'no answer within the connection timeout: is the host right, does a firewall or security group let the port through, is the server overloaded?',
    };
  }
  if (text === 'The server does not support SSL connections') {
    return {
      access: true,
      advice:
        'the URL asks for TLS (sslmode) and this server offers none: enable ssl on the server, or connect without it where that is allowed',
    };
  }
  if (CERTIFICATE.test(code)) {
    return {
      access: true,
      advice:
        "the server's TLS certificate is not trusted for this host name: give its CA (sslrootcert=, or poolConfig.ssl.ca; for RDS the RDS bundle) and connect by the name in the certificate",
    };
  }
  return undefined;
}

/**
 * A failure of node-postgres (or the network) as an error with a typed code and a message that says what
 * to do; the original is its `cause`. `ERR_PROXY_AUDIT_STORE_ACCESS`: PostgreSQL refused this login,
 * database or right (wrong password, no such role or database, permission denied, a pg_hba.conf rule such as
 * TLS only, an untrusted certificate), which lasts until someone fixes it. `ERR_PROXY_AUDIT_STORE_UNAVAILABLE`:
 * anything else (refused connection, timeout, cut session), which may pass. Errors that already carry an
 * `ERR_PROXY_…` code are returned as they are.
 *
 * @example
 * ```ts
 * try { await pool.query('SELECT 1'); } catch (err) { throw storeError(err, 'verify'); }
 * ```
 */
export function storeError(err: unknown, action: StoreAction): Error {
  const e = (err !== null && typeof err === 'object' ? err : { message: String(err) }) as Failure;
  if (typeof e.code === 'string' && e.code.startsWith('ERR_PROXY_')) return err as Error;
  // pg-pool wraps the client's failure to connect (`cause`): the cause says more.
  const a = advise(e, action) ?? (e.cause !== undefined ? advise(e.cause as Failure, action) : undefined);
  const said = typeof e.message === 'string' && e.message !== '' ? e.message : String(e.code ?? err);
  const message = a === undefined ? `PostgreSQL unavailable: ${said}` : `PostgreSQL: ${a.advice} (${said})`;
  return Object.assign(new Error(message, { cause: err }), {
    code: a?.access ? ErrorCodes.AUDIT_STORE_ACCESS : ErrorCodes.AUDIT_STORE_UNAVAILABLE,
  });
}
