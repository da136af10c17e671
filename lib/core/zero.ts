/**
 * zero: the all-zero test. A write of zeros becomes a `zero` record without
 * payload, and a region of zeros counts as not realized.
 */
const ZEROES = Buffer.alloc(256 * 1024)

/** isAllZero tells whether every byte of `buf` is 0 (memcmp against a zero page). */
export function isAllZero (buf: Uint8Array): boolean {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  for (let at = 0; at < b.length; at += ZEROES.length) {
    const n = Math.min(ZEROES.length, b.length - at)
    if (!b.subarray(at, at + n).equals(ZEROES.subarray(0, n))) return false
  }
  return true
}
