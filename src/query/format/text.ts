// Making untrusted values safe to show: a log line can hold any text, and a terminal obeys escape codes.

// C0 and C1 controls, DEL, and the bidirectional overrides that can make a line read differently than it is.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `s` with every control or bidi character written as a `\uXXXX` escape. */
export function printable(s: string): string {
  return s.replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
