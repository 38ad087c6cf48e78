// Big-endian integers in PROXY v2 headers (spec 2.2: "network byte order").

/** The unsigned 16-bit big-endian integer at `b[at]`. */
export function u16(b: Uint8Array, at: number): number {
  return ((b[at] as number) << 8) | (b[at + 1] as number);
}

/** The unsigned 32-bit big-endian integer at `b[at]`. */
export function u32(b: Uint8Array, at: number): number {
  return (u16(b, at) * 0x10000 + u16(b, at + 2)) >>> 0;
}

/** Writes `v` as an unsigned 16-bit big-endian integer at `b[at]`. */
export function putU16(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v & 0xff;
}
