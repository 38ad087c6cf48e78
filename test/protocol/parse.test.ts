import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeTlvs, ErrorCodes, encodeProxyHeader, type ParseResult, parseProxyHeader } from '../../src/index.js';
import { fixtures, hex, SIG, text } from './fixtures.js';

function ok(r: ParseResult) {
  assert.equal(r.status, 'ok', r.status === 'invalid' ? `${r.error.code}: ${r.error.message}` : r.status);
  return r as Extract<ParseResult, { status: 'ok' }>;
}

describe('parseProxyHeader: v1 valid', () => {
  const cases: { name: string; input: Buffer; source?: [string, number]; destination?: [string, number]; family: string }[] = [
    {
      name: 'spec TCP4 maxima',
      input: fixtures.v1Tcp4,
      source: ['255.255.255.255', 65535],
      destination: ['255.255.255.255', 65535],
      family: 'IPv4',
    },
    {
      name: 'TCP4 zeros',
      input: text('PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n'),
      source: ['0.0.0.0', 0],
      destination: ['0.0.0.0', 0],
      family: 'IPv4',
    },
    {
      name: 'TCP6 canonicalised',
      input: text('PROXY TCP6 2001:0DB8:0:0:0:0:0:1 ::1 1 2\r\n'),
      source: ['2001:db8::1', 1],
      destination: ['::1', 2],
      family: 'IPv6',
    },
    {
      name: 'TCP6 longest run compressed',
      input: text('PROXY TCP6 1:0:0:2:0:0:0:3 :: 80 443\r\n'),
      source: ['1:0:0:2::3', 80],
      destination: ['::', 443],
      family: 'IPv6',
    },
    {
      name: 'TCP6 first of equal runs',
      input: text('PROXY TCP6 1:0:0:2:3:0:0:4 fe80::1 80 443\r\n'),
      source: ['1::2:3:0:0:4', 80],
      destination: ['fe80::1', 443],
      family: 'IPv6',
    },
    {
      name: 'TCP6 single zero group not compressed',
      input: text('PROXY TCP6 1:2:3:4:5:6:0:8 1:: 80 443\r\n'),
      source: ['1:2:3:4:5:6:0:8', 80],
      destination: ['1::', 443],
      family: 'IPv6',
    },
    {
      // As inet_ntop prints IPv4-mapped addresses (nginx, HAProxy on a dual-stack listener).
      name: 'TCP6 v4-mapped with a dotted tail',
      input: text('PROXY TCP6 ::ffff:192.0.2.1 ::FFFF:10.0.0.5 80 443\r\n'),
      source: ['::ffff:192.0.2.1', 80],
      destination: ['::ffff:10.0.0.5', 443],
      family: 'IPv6',
    },
    {
      name: 'TCP6 with a dotted tail after six groups',
      input: text('PROXY TCP6 2001:db8:1:2:3:4:192.0.2.1 ::1.2.3.4 80 443\r\n'),
      source: ['2001:db8:1:2:3:4:c000:201', 80],
      destination: ['::102:304', 443],
      family: 'IPv6',
    },
    {
      name: 'TCP6 v4-mapped in hex',
      input: text('PROXY TCP6 ::ffff:c000:0201 ::1 80 443\r\n'),
      source: ['::ffff:192.0.2.1', 80],
      destination: ['::1', 443],
      family: 'IPv6',
    },
    {
      name: 'TCP6 maxima (104 bytes)',
      input: fixtures.v1Tcp6Max,
      source: ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65535],
      destination: ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65535],
      family: 'IPv6',
    },
    { name: 'UNKNOWN alone', input: fixtures.v1Unknown, family: 'unspec' },
    { name: 'UNKNOWN with addresses', input: fixtures.v1UnknownFull, family: 'unspec' },
    { name: 'UNKNOWN with garbage', input: text('PROXY UNKNOWN \x01\x02 whatever\r\n'), family: 'unspec' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = ok(parseProxyHeader(c.input));
      assert.equal(r.length, c.input.length);
      assert.equal(r.header.version, 1);
      assert.equal(r.header.family, c.family);
      assert.deepEqual(r.header.tlvs, []);
      if (c.source) {
        assert.deepEqual(r.header.source, { address: c.source[0], port: c.source[1] });
        assert.deepEqual(r.header.destination, { address: c.destination?.[0], port: c.destination?.[1] });
        assert.equal(r.header.transport, 'stream');
      } else {
        assert.equal(r.header.source, undefined);
        assert.equal(r.header.destination, undefined);
      }
    });
  }

  it('v1 and v2 of the same IPv6 address give the same string', () => {
    const v1 = ok(parseProxyHeader(text('PROXY TCP6 2001:0DB8:0:0:0:0:0:1 2001:db8::2 1 2\r\n')));
    const v2 = ok(
      parseProxyHeader(hex(`${SIG}21210024 20010db8000000000000000000000001 20010db8000000000000000000000002 0001 0002`)),
    );
    assert.equal(v1.header.source?.address, v2.header.source?.address);
    assert.equal(v2.header.source?.address, '2001:db8::1');
  });

  it('leaves the application data alone', () => {
    const r = ok(parseProxyHeader(fixtures.elbWithClientHello));
    assert.equal(r.length, fixtures.elbWithClientHello.length - 3);
    assert.equal(r.header.source?.address, '198.51.100.22');
  });

  it('two headers back to back: the second is data', () => {
    const two = Buffer.concat([fixtures.v1Tcp4, text('PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n')]);
    const r = ok(parseProxyHeader(two));
    assert.equal(r.length, fixtures.v1Tcp4.length);
    assert.equal(r.header.source?.address, '255.255.255.255');
  });
});

describe('parseProxyHeader: v1 invalid', () => {
  const cases: { name: string; input: string; code: string }[] = [
    { name: 'no space after PROXY', input: 'PROXYTCP4 1.2.3.4 1.2.3.4 1 2\r\n', code: ErrorCodes.MALFORMED },
    { name: 'double space', input: 'PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n', code: ErrorCodes.MALFORMED },
    { name: 'trailing space', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n', code: ErrorCodes.MALFORMED },
    { name: 'extra field', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n', code: ErrorCodes.MALFORMED },
    { name: 'missing field', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n', code: ErrorCodes.MALFORMED },
    { name: 'lone LF', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n', code: ErrorCodes.MALFORMED },
    { name: 'lone CR', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX', code: ErrorCodes.MALFORMED },
    { name: 'tab separator', input: 'PROXY TCP4\t1.2.3.4 1.2.3.4 1 2\r\n', code: ErrorCodes.FAMILY },
    { name: 'unknown protocol', input: 'PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n', code: ErrorCodes.FAMILY },
    { name: 'lower-case protocol', input: 'PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n', code: ErrorCodes.FAMILY },
    { name: 'UNKNOWN glued', input: 'PROXY UNKNOWNX\r\n', code: ErrorCodes.FAMILY },
    { name: 'IPv4 leading zero', input: 'PROXY TCP4 1.2.3.04 1.2.3.4 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'IPv4 octet 256', input: 'PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'IPv4 three octets', input: 'PROXY TCP4 1.2.3 1.2.3.4 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'IPv4 empty octet', input: 'PROXY TCP4 1..3.4 1.2.3.4 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'IPv6 on TCP4', input: 'PROXY TCP4 ::1 1.2.3.4 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'IPv4 on TCP6', input: 'PROXY TCP6 1.2.3.4 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'dotted tail with a leading zero', input: 'PROXY TCP6 ::ffff:1.2.3.04 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'dotted tail with three octets', input: 'PROXY TCP6 ::ffff:1.2.3 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'dotted part not last', input: 'PROXY TCP6 ::1.2.3.4:1 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'dotted tail past eight groups', input: 'PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'dotted destination with octet 256', input: 'PROXY TCP6 ::1 ::ffff:1.2.3.256 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'two ::', input: 'PROXY TCP6 1::2::3 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'zone id', input: 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'five hex digits', input: 'PROXY TCP6 12345::1 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'nine groups', input: 'PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'seven groups', input: 'PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'trailing colon', input: 'PROXY TCP6 1:2:3:4:5:6:7:8: ::1 1 2\r\n', code: ErrorCodes.ADDRESS },
    { name: 'port leading zero', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n', code: ErrorCodes.PORT },
    { name: 'port sign', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n', code: ErrorCodes.PORT },
    { name: 'port 65536', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n', code: ErrorCodes.PORT },
    { name: 'port hex', input: 'PROXY TCP4 1.2.3.4 1.2.3.4 0x1 2\r\n', code: ErrorCodes.PORT },
    { name: 'non-printable', input: 'PROXY TCP4 1.2.3.4\x00 1.2.3.4 1 2\r\n', code: ErrorCodes.MALFORMED },
    { name: '107 bytes without CRLF', input: `PROXY UNKNOWN ${'x'.repeat(93)}`, code: ErrorCodes.TOO_LONG },
    { name: 'CR as byte 107', input: `PROXY UNKNOWN ${'x'.repeat(92)}\r\n`, code: ErrorCodes.TOO_LONG },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = parseProxyHeader(text(c.input));
      assert.equal(r.status, 'invalid');
      assert.equal((r as Extract<ParseResult, { status: 'invalid' }>).error.code, c.code);
      assert.equal((r as Extract<ParseResult, { status: 'invalid' }>).error.name, 'ProxyProtocolError');
    });
  }
  it('CRLF as bytes 106-107 is the longest valid line', () => {
    const line = `PROXY UNKNOWN ${'x'.repeat(91)}\r\n`;
    assert.equal(line.length, 107);
    assert.equal(ok(parseProxyHeader(text(line))).length, 107);
  });
  it('a non-printable byte in a TCP line is rejected before the CRLF arrives', () => {
    const r = parseProxyHeader(text('PROXY TCP4 1.2.\x00'));
    assert.equal(r.status, 'invalid');
  });
});

describe('parseProxyHeader: none and incomplete', () => {
  const none = ['GET / HTTP/1.1\r\n', '\x16\x03\x01', 'PROXX', 'PRI * HTTP/2.0', '\r\n\r\n\x01', 'X'];
  for (const s of none) {
    it(`none: ${JSON.stringify(s)}`, () => assert.equal(parseProxyHeader(text(s)).status, 'none'));
  }
  it('decides none from the first byte', () => assert.equal(parseProxyHeader(text('G')).status, 'none'));
  it('empty input is incomplete', () => assert.equal(parseProxyHeader(new Uint8Array(0)).status, 'incomplete'));
  it('a partial v1 line is incomplete', () => assert.equal(parseProxyHeader(text('PROXY TCP4 1.2.3.4 ')).status, 'incomplete'));
  it('a v2 header waiting for its body is incomplete', () => {
    assert.equal(parseProxyHeader(fixtures.v2Tcp4.subarray(0, 20)).status, 'incomplete');
  });
});

describe('parseProxyHeader: v2 valid', () => {
  it('IPv4 (HAProxy send-proxy-v2)', () => {
    const r = ok(parseProxyHeader(fixtures.v2Tcp4));
    assert.equal(r.length, 28);
    assert.deepEqual(r.header, {
      version: 2,
      command: 'proxy',
      family: 'IPv4',
      transport: 'stream',
      source: { address: '192.0.2.1', port: 55470 },
      destination: { address: '198.51.100.1', port: 443 },
      tlvs: [],
    });
  });
  it('AWS NLB health check: LOCAL, TLVs at byte 16, CRC32C checked', () => {
    const r = ok(parseProxyHeader(fixtures.nlbHealthCheck));
    assert.equal(r.length, 100);
    assert.equal(r.header.command, 'local');
    assert.equal(r.header.source, undefined);
    const d = decodeTlvs(r.header);
    assert.equal(d.crc32c, 0xbce5951f);
    assert.equal(d.noop, true);
    const bad = Buffer.from(fixtures.nlbHealthCheck);
    bad[99] = 1; // inside NOOP padding: covered by the CRC
    const rb = parseProxyHeader(bad);
    assert.equal(rb.status === 'invalid' && rb.error.code, ErrorCodes.CRC);
  });
  it('LOCAL over UNSPEC (HAProxy check-send-proxy)', () => {
    const r = ok(parseProxyHeader(fixtures.v2LocalUnspec));
    assert.equal(r.length, 16);
    assert.equal(r.header.command, 'local');
    assert.equal(r.header.family, 'unspec');
  });
  it('LOCAL with a dummy address block then TLVs', () => {
    const r = ok(parseProxyHeader(hex(`${SIG}2011000f 0a000001 0a000002 0001 0002 010000`)));
    assert.equal(r.header.source, undefined);
  });
  it('PROXY over UNSPEC: accepted, no addresses', () => {
    const r = ok(parseProxyHeader(hex(`${SIG}21000000`)));
    assert.equal(r.header.command, 'proxy');
    assert.equal(r.header.source, undefined);
  });
  it('UNIX stream: paths end at the first NUL', () => {
    const src = Buffer.alloc(108);
    src.write('/var/run/src.sock\0junk');
    const dst = Buffer.alloc(108);
    dst.write('/d');
    const r = ok(parseProxyHeader(Buffer.concat([hex(`${SIG}213100d8`), src, dst])));
    assert.deepEqual(r.header.source, { address: '/var/run/src.sock', port: 0 });
    assert.deepEqual(r.header.destination, { address: '/d', port: 0 });
  });
  it('AWS VPC endpoint ID', () => {
    const r = ok(parseProxyHeader(fixtures.v2AwsVpce));
    assert.equal(decodeTlvs(r.header).awsVpceId, 'vpce-08d2bf15fac5001c');
  });
  it('every typed TLV decodes', () => {
    const ssl = Buffer.concat([
      hex('07 00000000'),
      hex('210007'),
      text('TLSv1.3'),
      hex('220008'),
      text('client.a'),
      hex('230016'),
      text('TLS_AES_128_GCM_SHA256'),
      hex('240006'),
      text('SHA256'),
      hex('250008'),
      text('RSA2048\0').subarray(0, 8),
      hex('260006'),
      text('X25519'),
      hex('270013'),
      text('rsa_pss_rsae_sha256'),
      hex('280003'),
      hex('308201'),
    ]);
    const enc = encodeProxyHeader(
      {
        version: 2,
        source: { address: '203.0.113.9', port: 4000 },
        destination: { address: '10.1.2.3', port: 443 },
        tlvs: [
          { type: 0x01, value: text('h2') },
          { type: 0x02, value: Buffer.from('bücher.example', 'utf8') },
          { type: 0x05, value: hex('0102') },
          { type: 0x20, value: ssl },
          { type: 0x30, value: text('blue') },
          { type: 0xee, value: hex('01 78563412') },
          { type: 0xe0, value: hex('0102030405060708') },
          { type: 0xf0, value: hex('aa') },
        ],
      },
      { crc32c: true },
    );
    const r = ok(parseProxyHeader(enc));
    const d = decodeTlvs(r.header);
    assert.equal(d.alpn, 'h2');
    assert.equal(d.authority, 'bücher.example');
    assert.deepEqual([...(d.uniqueId ?? [])], [1, 2]);
    assert.equal(d.netns, 'blue');
    assert.equal(d.azurePrivateLinkId, 0x12345678);
    assert.equal(d.gcpPscConnectionId, 0x0102030405060708n);
    assert.equal(typeof d.crc32c, 'number');
    assert.equal(d.ssl?.ssl, true);
    assert.equal(d.ssl?.certInConnection, true);
    assert.equal(d.ssl?.certInSession, true);
    assert.equal(d.ssl?.verify, 0);
    assert.equal(d.ssl?.version, 'TLSv1.3');
    assert.equal(d.ssl?.cn, 'client.a');
    assert.equal(d.ssl?.cipher, 'TLS_AES_128_GCM_SHA256');
    assert.equal(d.ssl?.sigAlg, 'SHA256');
    assert.equal(d.ssl?.keyAlg, 'RSA2048\0');
    assert.equal(d.ssl?.group, 'X25519');
    assert.equal(d.ssl?.sigScheme, 'rsa_pss_rsae_sha256');
    assert.deepEqual([...(d.ssl?.clientCert ?? [])], [0x30, 0x82, 0x01]);
    assert.equal(r.header.tlvs.at(-2)?.type, 0xf0, 'unknown types are kept');
  });
  it('TLV values are copies, not views of the input', () => {
    const input = encodeProxyHeader({
      version: 2,
      source: { address: '1.2.3.4', port: 1 },
      destination: { address: '1.2.3.5', port: 2 },
      tlvs: [{ type: 1, value: text('h2') }],
    });
    const r = ok(parseProxyHeader(input));
    input.fill(0);
    assert.equal(decodeTlvs(r.header).alpn, 'h2');
  });
  it('a second header after the first is application data', () => {
    const two = Buffer.concat([fixtures.v2Tcp4, fixtures.v2Tcp4]);
    assert.equal(ok(parseProxyHeader(two)).length, 28);
  });
});

describe('parseProxyHeader: v2 invalid', () => {
  const cases: { name: string; input: Buffer; code: string }[] = [
    { name: 'version 1 nibble', input: hex(`${SIG}11110000`), code: ErrorCodes.VERSION },
    { name: 'version 3 nibble', input: hex(`${SIG}31110000`), code: ErrorCodes.VERSION },
    { name: 'command 2', input: hex(`${SIG}22110000`), code: ErrorCodes.COMMAND },
    { name: 'family 4', input: hex(`${SIG}21410000`), code: ErrorCodes.FAMILY },
    { name: 'transport 3', input: hex(`${SIG}21130000`), code: ErrorCodes.TRANSPORT },
    { name: 'IPv4 block too short', input: hex(`${SIG}2111000b 0102030405060708090a0b`), code: ErrorCodes.LENGTH },
    { name: 'IPv6 block too short', input: hex(`${SIG}2121000c 0102030405060708090a0b0c`), code: ErrorCodes.LENGTH },
    { name: 'UNIX block too short', input: hex(`${SIG}21310010 ${'00'.repeat(16)}`), code: ErrorCodes.LENGTH },
    { name: 'dangling TLV byte', input: hex(`${SIG}2111000d c0000201 c6336401 d8ae 01bb 01`), code: ErrorCodes.TLV },
    { name: 'overrunning TLV', input: hex(`${SIG}2111000f c0000201 c6336401 d8ae 01bb 010001`), code: ErrorCodes.TLV },
    { name: 'CRC32C of 3 bytes', input: hex(`${SIG}21110012 c0000201 c6336401 d8ae 01bb 030003 000000`), code: ErrorCodes.TLV },
    { name: 'CRC32C mismatch', input: hex(`${SIG}21110013 c0000201 c6336401 d8ae 01bb 030004 00000000`), code: ErrorCodes.CRC },
    {
      name: 'UNIQUE_ID over 128 bytes',
      input: hex(`${SIG}21110090 c0000201 c6336401 d8ae 01bb 050081 ${'00'.repeat(129)}`),
      code: ErrorCodes.TLV,
    },
    { name: 'SSL TLV too short', input: hex(`${SIG}21110013 c0000201 c6336401 d8ae 01bb 200004 01000000`), code: ErrorCodes.TLV },
    {
      name: 'SSL sub-TLV overruns',
      input: hex(`${SIG}21110017 c0000201 c6336401 d8ae 01bb 200008 0100000000 210005`),
      code: ErrorCodes.TLV,
    },
    {
      name: 'LOCAL with a block that cannot be skipped and no TLV layout',
      input: hex(`${SIG}20110002 0102`),
      code: ErrorCodes.TLV,
    },
    { name: 'length above the cap', input: hex(`${SIG}2111ffff`), code: ErrorCodes.TOO_LONG },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = parseProxyHeader(c.input);
      assert.equal(r.status, 'invalid', `got ${r.status}`);
      assert.equal((r as Extract<ParseResult, { status: 'invalid' }>).error.code, c.code);
    });
  }
  it('over-cap length is invalid before the body arrives', () => {
    const r = parseProxyHeader(hex(`${SIG}21111001`)); // 16 + 4097
    assert.equal(r.status === 'invalid' && r.error.code, ErrorCodes.TOO_LONG);
  });
  it('the cap is configurable', () => {
    const big = encodeProxyHeader({
      version: 2,
      source: { address: '1.2.3.4', port: 1 },
      destination: { address: '1.2.3.5', port: 2 },
      tlvs: [{ type: 4, value: new Uint8Array(5000) }],
    });
    assert.equal(parseProxyHeader(big).status, 'invalid');
    assert.equal(parseProxyHeader(big, { maxHeaderLength: 8192 }).status, 'ok');
  });
  it('a bad version is reported from the 13th byte on', () => {
    const r = parseProxyHeader(hex(`${SIG}11`));
    assert.equal(r.status === 'invalid' && r.error.code, ErrorCodes.VERSION);
  });
});
