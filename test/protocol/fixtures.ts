// Named byte fixtures for the codec tests: spec examples and captures reconstructed from real senders.
export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
export const text = (s: string): Buffer => Buffer.from(s, 'latin1');

export const SIG = '0d0a0d0a000d0a515549540a';

export const fixtures = {
  /** Spec 2.1 example line. */
  v1Tcp4: text('PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n'),
  v1Tcp6Max: text(
    'PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'.replace(/f\.\.\.f/g, 'ffff:ffff:ffff:ffff:ffff:ffff'),
  ),
  v1Unknown: text('PROXY UNKNOWN\r\n'),
  v1UnknownFull: text('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'),
  /** Classic ELB: TCP4 line, then the TLS ClientHello in the same segment (first bytes of a record). */
  elbWithClientHello: Buffer.concat([text('PROXY TCP4 198.51.100.22 203.0.113.7 35646 443\r\n'), hex('160301')]),
  /** AWS NLB health check (capture, kubernetes/kubernetes#57250): LOCAL, INET, CRC32C then NOOP, no address block. */
  nlbHealthCheck: hex(`${SIG}20110054 0300 04bce5951f 04004a${'00'.repeat(74)}`),
  /** HAProxy `send-proxy-v2` over IPv4 without TLVs. */
  v2Tcp4: hex(`${SIG}2111000c c0000201 c6336401 d8ae 01bb`),
  /** HAProxy `check-send-proxy` health check: LOCAL, UNSPEC, no body. */
  v2LocalUnspec: hex(`${SIG}20000000`),
  /** NLB with a VPC endpoint ID TLV (type 0xEA, subtype 0x01). */
  v2AwsVpce: hex(`${SIG}21110025 0a000001 0a000002 1f90 0050 ea0016 01 ${Buffer.from('vpce-08d2bf15fac5001c').toString('hex')}`),
};
