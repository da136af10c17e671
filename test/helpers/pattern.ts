/**
 * pattern: reproducible pseudo-random bytes, so a test can write data in
 * one process and check it in another from a seed alone.
 */

/** rng is a small, fast, seeded generator (mulberry32). */
export function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** pattern returns `length` bytes determined by `seed`. */
export function pattern (seed: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length)
  const next = rng(seed)
  let i = 0
  for (; i + 4 <= length; i += 4) b.writeUInt32LE((next() * 4294967296) >>> 0, i)
  for (; i < length; i++) b[i] = (next() * 256) | 0
  return b
}
