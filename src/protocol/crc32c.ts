// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78). Node has no CRC-32C in node:crypto or node:zlib
// (Node 20), and headers are at most a few KiB, so a byte-wise table is both small and fast enough.
const TABLE = /* @__PURE__ */ (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c;
  }
  return table;
})();

function update(crc: number, bytes: Uint8Array, start: number, end: number): number {
  let c = crc;
  for (let i = start; i < end; i++) c = (TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return c;
}

const ZEROS = new Uint8Array(4);

/**
 * CRC-32C of `bytes[start, end)`. With `zeroAt`, the four bytes there count as zero, as the PROXY v2 spec
 * requires for the checksum field inside the covered range.
 */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length, zeroAt = -1): number {
  let crc: number;
  if (zeroAt >= start && zeroAt + 4 <= end) {
    crc = update(-1, bytes, start, zeroAt);
    crc = update(crc, ZEROS, 0, 4);
    crc = update(crc, bytes, zeroAt + 4, end);
  } else {
    crc = update(-1, bytes, start, end);
  }
  return (crc ^ -1) >>> 0;
}
