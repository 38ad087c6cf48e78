import { checkOptions, type Known } from '../known-options.js';
import { DEFAULT_MAX_HEADER_LENGTH } from '../protocol/v2.js';
import { compileTrust, type TrustFn, type TrustList } from '../trust.js';

/** Options of {@link withProxyProtocol}, `createServer` and `createHttpServer`. */
export interface ProxyProtocolOptions {
  /**
   * Reject connections that do not start with a PROXY header. Default `true`, as the spec demands
   * ("the receiver must not try to guess"). With `false`, such a connection is served as a direct one:
   * less safe, since anyone who can reach the port directly bypasses the balancer.
   */
  requireHeader?: boolean;
  /**
   * IPs, CIDRs (IPv4 and IPv6) or `loopback` / `linklocal` / `uniquelocal` whose headers are honoured.
   * Default: every peer. Another peer's connection is rejected when a header is required, otherwise
   * served as a direct connection whose bytes are never parsed as a header.
   */
  trustedProxies?: TrustList;
  /** Milliseconds for a complete header to arrive before the connection is closed. Default 5000; 0 disables. */
  headerTimeout?: number;
  /** Make `socket.remoteAddress`, `remotePort` and `remoteFamily` report the client. Default `true`. */
  overrideRemoteAddress?: boolean;
  /** Largest whole v2 header accepted, in bytes. Default 4096. */
  maxHeaderLength?: number;
}

/** Options compiled once, when the server is wrapped. */
export interface CompiledOptions {
  requireHeader: boolean;
  isTrusted: TrustFn | undefined;
  headerTimeout: number;
  overrideRemoteAddress: boolean;
  parse: { maxHeaderLength: number };
}

const KNOWN: Known<ProxyProtocolOptions> = {
  requireHeader: true,
  trustedProxies: true,
  headerTimeout: true,
  overrideRemoteAddress: true,
  maxHeaderLength: true,
};

/** Validates and compiles options; throws a `TypeError` for a bad one (also an unknown name). */
export function compileOptions(options: ProxyProtocolOptions = {}): CompiledOptions {
  checkOptions(options, KNOWN, 'proxyProtocol');
  const {
    requireHeader = true,
    trustedProxies,
    headerTimeout = 5000,
    overrideRemoteAddress = true,
    maxHeaderLength = DEFAULT_MAX_HEADER_LENGTH,
  } = options;
  if (typeof requireHeader !== 'boolean') throw new TypeError('proxyProtocol.requireHeader must be a boolean');
  if (typeof overrideRemoteAddress !== 'boolean') {
    throw new TypeError('proxyProtocol.overrideRemoteAddress must be a boolean');
  }
  if (!Number.isInteger(headerTimeout) || headerTimeout < 0 || headerTimeout > 2 ** 31 - 1) {
    throw new TypeError('proxyProtocol.headerTimeout must be a whole number of milliseconds, 0 to disable');
  }
  if (!Number.isInteger(maxHeaderLength) || maxHeaderLength < 16 || maxHeaderLength > 65551) {
    throw new TypeError('proxyProtocol.maxHeaderLength must be a whole number from 16 to 65551');
  }
  return {
    requireHeader,
    isTrusted: trustedProxies === undefined ? undefined : compileTrust(trustedProxies, 'proxyProtocol.trustedProxies'),
    headerTimeout,
    overrideRemoteAddress,
    parse: { maxHeaderLength },
  };
}
