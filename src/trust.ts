import { BlockList, isIP } from 'node:net';
import { addressToBytes, formatIPv6Bytes } from './protocol/ip.js';

/** Named ranges, as in jshttp/proxy-addr. */
export const PRESETS: Readonly<Record<string, readonly string[]>> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
};

/** IPs, CIDRs, or the names `loopback`, `linklocal`, `uniquelocal`: an array, or one string (comma-separated). */
export type TrustList = string | readonly string[];

/** A compiled trust list: `true` when the address is inside it. */
export type TrustFn = (address: string) => boolean;

/** `::ffff:a.b.c.d` → `a.b.c.d`; anything else unchanged. */
export function unmapIPv4(address: string): string {
  if (address.length > 7 && address.charCodeAt(0) === 0x3a && address.startsWith('::ffff:') && isIP(address.slice(7)) === 4) {
    return address.slice(7);
  }
  return address;
}

/**
 * An address from a header (`X-Forwarded-For`) in the one form the layer reports addresses in — IPv6 as
 * RFC 5952 text (lower case, shortest), IPv4-mapped IPv6 as `a.b.c.d` — so that `::FFFF:102:304` and
 * `1.2.3.4` are one client to every query; undefined for what is no IP address, an IPv6 zone index
 * (`fe80::1%eth0`, an interface of the sender's, never a client of ours) included.
 */
export function canonicalIp(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text; // (node:net's isIP takes the dotted quad in its one form only)
  if (family !== 6 || text.includes('%')) return undefined;
  const bytes = addressToBytes(text);
  return bytes === undefined ? undefined : unmapIPv4(formatIPv6Bytes(bytes, 0));
}

/**
 * Compiles a trust list once, at configuration time. Throws a `TypeError` naming the bad entry.
 * IPv4-mapped IPv6 addresses are checked as IPv4.
 */
export function compileTrust(list: TrustList, optionName: string): TrustFn {
  // One string may list several, comma-separated, as Express's `trust proxy` takes them.
  const entries = typeof list === 'string' ? list.split(',').map((e) => e.trim()) : list;
  if (!Array.isArray(entries)) throw new TypeError(`${optionName} must be a string or an array of strings`);
  const blocks = new BlockList();
  for (const raw of entries) {
    if (typeof raw !== 'string') throw new TypeError(`${optionName}: ${String(raw)} is not a string`);
    // Own keys only: 'constructor' or '__proto__' is an address to check, not a preset.
    const preset = Object.hasOwn(PRESETS, raw) ? PRESETS[raw] : undefined;
    for (const entry of preset ?? [raw]) {
      const slash = entry.indexOf('/');
      const address = slash < 0 ? entry : entry.slice(0, slash);
      const family = isIP(address);
      if (family === 0) throw new TypeError(`${optionName}: ${JSON.stringify(raw)} is not an IP address or CIDR`);
      // A zone (`fe80::1%eth0`) names an interface, which no peer address Node reports carries: it would match nothing.
      if (address.includes('%')) throw new TypeError(`${optionName}: ${JSON.stringify(raw)} has a zone index (%…): leave it out`);
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (slash < 0) {
        blocks.addAddress(address, type);
        continue;
      }
      const bitsText = entry.slice(slash + 1);
      const bits = Number(bitsText);
      // (one way to write each length: `/08` is a typo, refused like any other)
      if (!/^(0|[1-9]\d{0,2})$/.test(bitsText) || bits > (family === 4 ? 32 : 128)) {
        throw new TypeError(`${optionName}: ${JSON.stringify(raw)} has a bad prefix length`);
      }
      blocks.addSubnet(address, bits, type);
    }
  }
  return function isTrusted(address: string): boolean {
    const a = unmapIPv4(address);
    const family = isIP(a);
    if (family === 0) return false;
    return blocks.check(a, family === 4 ? 'ipv4' : 'ipv6');
  };
}
