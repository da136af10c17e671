/**
 * region-map: regions of a volume and a bitmap over them.
 *
 * A region is a fixed-size slice of a volume (the node's region size, a
 * power of two): the unit of presence on a DR, of dirty tracking, of
 * checksums and of fetches. A RegionBitmap keeps one bit per region and
 * its population count; it serialises to fixed-size chunks so a large
 * volume's map is persisted a little at a time (only changed chunks).
 */

/** RegionSpan is the part of one region a byte range covers. */
export interface RegionSpan {
  region: number
  /** Offset of the span within the volume. */
  start: number
  /** End (exclusive) within the volume. */
  end: number
}

/** regionCount is how many regions a volume of `size` bytes has. */
export function regionCount (size: number, regionSize: number): number {
  return Math.ceil(size / regionSize)
}

/** regionSpans splits [offset, offset+length) at region boundaries. */
export function regionSpans (offset: number, length: number, regionSize: number): RegionSpan[] {
  const out: RegionSpan[] = []
  let at = offset
  const end = offset + length
  while (at < end) {
    const region = Math.floor(at / regionSize)
    const stop = Math.min(end, (region + 1) * regionSize)
    out.push({ region, start: at, end: stop })
    at = stop
  }
  return out
}

/** CHUNK_BYTES is the size of one persisted bitmap chunk (32768 regions: 32 GiB at 1 MiB regions). */
export const CHUNK_BYTES = 4096
const CHUNK_BITS = CHUNK_BYTES * 8

/**
 * BitmapMirror follows every change of a bitmap (the native data path keeps
 * a copy of a DR's presence maps to know which reads it may serve).
 */
export interface BitmapMirror {
  set (from: number, to: number, on: boolean): void
  resize (regions: number): void
  load (bits: Uint8Array, regions: number): void
}

/** RegionBitmap is a growable bitset with a population count and dirty chunks. */
export class RegionBitmap {
  private bits: Uint8Array
  private count = 0
  private size: number
  private readonly dirtyChunks = new Set<number>()
  private mirror: BitmapMirror | undefined

  constructor (regions = 0) {
    this.size = regions
    this.bits = new Uint8Array(Math.ceil(regions / 8))
  }

  /** length is the number of regions covered. */
  get length (): number { return this.size }
  /** set counts the regions whose bit is set. */
  get setCount (): number { return this.count }

  get (i: number): boolean {
    return i < this.size && (this.bits[i >> 3]! & (1 << (i & 7))) !== 0
  }

  /** attach makes `mirror` follow this bitmap from now on (it gets the whole of it first). */
  attach (mirror: BitmapMirror): void {
    this.mirror = mirror
    mirror.load(this.bits, this.size)
  }

  set (i: number, on = true): void {
    if (i >= this.size) this.resize(i + 1)
    const byte = i >> 3
    const mask = 1 << (i & 7)
    const was = (this.bits[byte]! & mask) !== 0
    if (was === on) return
    this.bits[byte] = on ? this.bits[byte]! | mask : this.bits[byte]! & ~mask
    this.count += on ? 1 : -1
    this.dirtyChunks.add(Math.floor(i / CHUNK_BITS))
    this.mirror?.set(i, i + 1, on)
  }

  /** setRange sets or clears regions [from, to). */
  setRange (from: number, to: number, on = true): void {
    if (to <= from) return
    if (to > this.size) this.resize(to)
    this.quietly(() => { for (let i = from; i < to; i++) this.set(i, on) })
    this.mirror?.set(from, to, on)
  }

  /** quietly makes changes the mirror is told of afterwards, in one call. */
  private quietly (fn: () => void): void {
    const m = this.mirror
    this.mirror = undefined
    try {
      fn()
    } finally {
      this.mirror = m
    }
  }

  /** resize grows or shrinks the map; new regions are clear. */
  resize (regions: number): void {
    if (regions < this.size) {
      this.quietly(() => { for (let i = regions; i < this.size; i++) this.set(i, false) })
    }
    const need = Math.ceil(regions / 8)
    if (need > this.bits.length) {
      const next = new Uint8Array(Math.max(need, this.bits.length * 2))
      next.set(this.bits)
      this.bits = next
    }
    if (regions !== this.size) {
      for (let c = Math.floor(Math.min(regions, this.size) / CHUNK_BITS); c <= Math.floor(Math.max(regions, this.size) / CHUNK_BITS); c++) this.dirtyChunks.add(c)
    }
    const changed = regions !== this.size
    this.size = regions
    if (changed) this.mirror?.resize(regions)
  }

  /** next returns the first index >= `from` whose bit equals `value`, or -1. */
  next (from: number, value: boolean): number {
    for (let i = from; i < this.size; i++) {
      // Skip whole bytes that cannot match.
      if ((i & 7) === 0 && i + 8 <= this.size) {
        const b = this.bits[i >> 3]!
        if ((value && b === 0) || (!value && b === 0xff)) { i += 7; continue }
      }
      if (this.get(i) === value) return i
    }
    return -1
  }

  /** takeDirtyChunks returns the chunks changed since the last call, with their bytes, and clears the list. */
  takeDirtyChunks (): Array<{ chunk: number, bytes: Uint8Array }> {
    const out = [...this.dirtyChunks].sort((a, b) => a - b).map(chunk => ({ chunk, bytes: this.chunkBytes(chunk) }))
    this.dirtyChunks.clear()
    return out
  }

  /** chunkBytes is a copy of one chunk's bytes, zero-padded (bits past the end are always clear). */
  chunkBytes (chunk: number): Uint8Array {
    const out = new Uint8Array(CHUNK_BYTES)
    const from = chunk * CHUNK_BYTES
    out.set(this.bits.subarray(from, Math.min(from + CHUNK_BYTES, Math.ceil(this.size / 8))))
    return out
  }

  /** loadChunk restores one persisted chunk (without marking it dirty). */
  loadChunk (chunk: number, bytes: Uint8Array): void {
    const from = chunk * CHUNK_BITS
    for (let i = 0; i < CHUNK_BITS && from + i < this.size; i++) {
      const idx = from + i
      const on = (bytes[i >> 3]! & (1 << (i & 7))) !== 0
      if (on === this.get(idx)) continue
      this.bits[idx >> 3] ^= 1 << (idx & 7)
      this.count += on ? 1 : -1
    }
    this.mirror?.load(this.bits, this.size)
  }
}
