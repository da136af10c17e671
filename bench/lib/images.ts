/**
 * images: the seeded disk images of the sync benchmarks: a sparse raw file
 * with a given share of its regions full of random bytes and the rest
 * holes, and "change N % of its regions" afterwards.
 *
 * Everything is reproducible from a seed: which regions (a seeded shuffle)
 * and their bytes (AES-128-CTR keyed by the seed: a fast deterministic
 * stream, incompressible like real data).
 */
import { createCipheriv, createHash } from 'node:crypto'
import { open, stat } from 'node:fs/promises'
import { rng } from '../../test/helpers/pattern.js'

export { rng }

/** shuffle puts `xs` in a seeded random order, in place. */
export function shuffle<T> (xs: T[], seed: number): T[] {
  const r = rng(seed)
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    ;[xs[i], xs[j]] = [xs[j]!, xs[i]!]
  }
  return xs
}

/** pickRegions chooses round(`fraction` x `total`) distinct region indexes out of `total`, seeded; sorted. */
export function pickRegions (total: number, fraction: number, seed: number): number[] {
  const all = shuffle([...Array(total).keys()], seed)
  return all.slice(0, Math.round(total * fraction)).sort((a, b) => a - b)
}

/** RandomBytes is a deterministic stream of random-looking bytes. */
export class RandomBytes {
  private readonly cipher

  constructor (seed: number) {
    const key = createHash('sha256').update(`volmirror-bench-${seed}`).digest().subarray(0, 16)
    this.cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  }

  /** next returns the stream's next `n` bytes. */
  next (n: number): Buffer {
    return this.cipher.update(Buffer.alloc(n))
  }
}

/**
 * writeSparseImage creates `file` of `size` bytes in which the chosen
 * regions (`pickRegions(size / regionSize, fraction, seed)`) hold random
 * bytes and every other region is a hole; fsynced. Written directly, never
 * through a mount. Returns the regions written.
 */
export async function writeSparseImage (file: string, size: number, regionSize: number, fraction: number, seed: number): Promise<number[]> {
  const regions = pickRegions(Math.ceil(size / regionSize), fraction, seed)
  const fh = await open(file, 'w')
  try {
    await fh.truncate(size)
    const data = new RandomBytes(seed)
    for (const r of regions) await fh.write(data.next(regionSize), 0, regionSize, r * regionSize)
    await fh.sync()
  } finally {
    await fh.close()
  }
  return regions
}

/**
 * rewriteRegions overwrites whole regions of `file` with new random bytes
 * (stream `seed`), in region order, in 1 MiB writes, then fsyncs; works
 * through a mount (async calls only). Returns the bytes written.
 */
export async function rewriteRegions (file: string, regions: number[], regionSize: number, seed: number): Promise<number> {
  const fh = await open(file, 'r+')
  let bytes = 0
  try {
    const data = new RandomBytes(seed)
    const chunk = Math.min(regionSize, 1 << 20)
    for (const r of regions) {
      for (let off = 0; off < regionSize; off += chunk) {
        await fh.write(data.next(chunk), 0, chunk, r * regionSize + off)
        bytes += chunk
      }
    }
    await fh.sync()
  } finally {
    await fh.close()
  }
  return bytes
}

/** allocatedBytes is how much disk `file` occupies (st_blocks x 512, what `du` counts). */
export async function allocatedBytes (file: string): Promise<number> {
  const st = await stat(file)
  return st.blocks * 512
}

/**
 * differingRegions compares `regions` of two files byte for byte (read
 * directly, never through a mount: pass backing files) and returns those
 * that differ; a sanity check that a copy is a copy, cheaper than `cmp`
 * of whole multi-GiB images.
 */
export async function differingRegions (a: string, b: string, regions: number[], regionSize: number): Promise<number[]> {
  const [fa, fb] = [await open(a, 'r'), await open(b, 'r')]
  try {
    const [ba, bb] = [Buffer.alloc(regionSize), Buffer.alloc(regionSize)]
    const out: number[] = []
    for (const r of regions) {
      ba.fill(0)
      bb.fill(0)
      await fa.read(ba, 0, regionSize, r * regionSize)
      await fb.read(bb, 0, regionSize, r * regionSize)
      if (!ba.equals(bb)) out.push(r)
    }
    return out
  } finally {
    await fa.close()
    await fb.close()
  }
}

/** sampleRegions is a seeded sample of `n` region indexes out of `total` (all of them when n >= total), plus the first and the last. */
export function sampleRegions (total: number, n: number, seed: number): number[] {
  const picked = new Set(shuffle([...Array(total).keys()], seed).slice(0, n))
  picked.add(0)
  picked.add(total - 1)
  return [...picked].sort((x, y) => x - y)
}
