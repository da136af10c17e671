/**
 * replica: what a DR does to its copy, as rules over an abstract image.
 *
 * Two sources change a DR's bytes: journal records from the primary, and
 * regions fetched from the primary (copy-on-read, hydration, resync,
 * verify-repair, failback). This module decides, by the asOf rule
 * (as-of.ts), which bytes each may write, and keeps the per-volume map of
 * which regions are present. It does no I/O: the real DR passes an image
 * backed by files (lib/dr/replica-files.ts), the model test one backed by
 * byte arrays, so both run exactly this code.
 *
 * Regions appear and disappear with the volume's size: regions a write or
 * truncate adds at the end read as zeros on both sides, so they are present
 * from the start. A truncate is a volume-wide operation that the asOf rule
 * cannot skip per region, so regions it touches whose fetched bytes are
 * newer than it (or are being fetched) are made absent again and fetched
 * anew later.
 */
import { AsOfRule, regionKey, type Range } from './as-of.js'
import { regionCount, RegionBitmap, regionSpans } from './region-map.js'

/** ReplicaImage is the byte store under a replica (files on a DR, arrays in tests). */
export interface ReplicaImage {
  size (volume: number): number
  write (volume: number, offset: number, data: Uint8Array): void
  /** zero makes [offset, offset+length) read as zeros, extending the volume if needed. */
  zero (volume: number, offset: number, length: number): void
  truncate (volume: number, size: number): void
}

/** DataRecord is the part of a journal record that changes bytes. */
export interface DataRecord {
  seq: number
  op: 'write' | 'zero' | 'truncate'
  offset: number
  length: number
  data?: Uint8Array | undefined
}

/** FetchToken names one fetch of one region. */
export interface FetchToken {
  volume: number
  region: number
  id: number
}

/** FetchChunk is fetched bytes of one region at a volume offset. */
export interface FetchChunk {
  offset: number
  data: Uint8Array
}

/** Replica applies records and fetched regions to an image by the asOf rule. */
export class Replica {
  readonly rule = new AsOfRule()
  private readonly maps = new Map<number, RegionBitmap>()
  /**
   * Per region: the seq its bytes were last changed at (a record applied,
   * or a fetch's asOf), since this process started. A verify compares a
   * region with the primary's only if it has not changed since the
   * primary read it. One slot per region of each volume touched (8 bytes
   * a region: a map entry per region cost ~100 bytes, 1 GB for 10 TiB).
   */
  private readonly versions = new Map<number, Float64Array>()
  /** The DR's applied seq as last told (settle): asOfs at or below it are moot. */
  private appliedSeq = 0
  /** Told of every presence map made (a DR's native data path mirrors them) and forgotten. */
  onTrack: ((volume: number, map: RegionBitmap) => void) | undefined
  onForget: ((volume: number) => void) | undefined

  constructor (readonly regionSize: number, private readonly image: ReplicaImage) {}

  /**
   * track starts tracking a volume whose image has `size` bytes; its
   * regions are all absent unless `present` (a new, empty volume).
   */
  track (volume: number, present = false): RegionBitmap {
    const map = new RegionBitmap(regionCount(this.image.size(volume), this.regionSize))
    if (present) map.setRange(0, map.length)
    this.maps.set(volume, map)
    this.onTrack?.(volume, map)
    return map
  }

  /** map returns a volume's presence map. */
  map (volume: number): RegionBitmap {
    const m = this.maps.get(volume)
    if (!m) throw new Error(`volume ${volume} is not tracked`)
    return m
  }

  /** forget stops tracking a deleted volume. */
  forget (volume: number): void {
    this.maps.delete(volume)
    this.versions.delete(volume)
    this.changes.delete(volume)
    this.rule.forgetVolume(volume)
    this.onForget?.(volume)
  }

  /** version is the seq a region last changed at in this process (0 if not since start). */
  version (volume: number, region: number): number {
    return this.versions.get(volume)?.[region] ?? 0
  }

  /**
   * changeCount counts the records (data and truncates) applied to a
   * volume since this process started: equal at two moments means no
   * record changed its bytes in between (hydration leaves a hole it found
   * unpunched then; fetches write only the region they settle).
   */
  changeCount (volume: number): number {
    return this.changes.get(volume) ?? 0
  }

  private readonly changes = new Map<number, number>()

  private changed (volume: number): void {
    this.changes.set(volume, (this.changes.get(volume) ?? 0) + 1)
  }

  private touch (volume: number, region: number, seq: number): void {
    let v = this.versions.get(volume)
    if (!v || region >= v.length) {
      const grown = new Float64Array(Math.max(region + 1, this.maps.get(volume)?.length ?? 0, v ? v.length * 2 : 0))
      if (v) grown.set(v)
      this.versions.set(volume, v = grown)
    }
    if (seq > v[region]!) v[region] = seq
  }

  /**
   * settle drops the asOfs the applied seq made moot (every record they
   * could skip is applied): called as groups are applied, and by hydration
   * between batches (an initial sync with no writes records one per region).
   */
  settle (applied = this.appliedSeq): void {
    this.appliedSeq = Math.max(this.appliedSeq, applied)
    this.rule.prune(this.appliedSeq)
  }

  /**
   * complete tells whether every tracked volume is whole as of `applied`:
   * no region absent, none fetched from after it, no fetch under way. Then
   * the images are exactly the primary's at `applied` (a recovery point).
   */
  complete (applied: number): boolean {
    for (const m of this.maps.values()) if (m.setCount !== m.length) return false
    return this.rule.aheadOf(applied).length === 0 && !this.rule.anyInFlight()
  }

  /** present tells whether a region holds the primary's bytes (as of the applied seq or its asOf). */
  present (volume: number, region: number): boolean {
    return this.map(volume).get(region)
  }

  /** apply applies one data record by the asOf rule. */
  apply (volume: number, rec: DataRecord): void {
    this.changed(volume)
    if (rec.op === 'truncate') {
      this.truncate(volume, rec.seq, rec.offset)
      return
    }
    const oldSize = this.image.size(volume)
    for (const span of regionSpans(rec.offset, rec.length, this.regionSize)) {
      const key = regionKey(volume, span.region)
      if (!this.rule.applyPiece(key, rec.seq, span.start, span.end)) continue
      this.touch(volume, span.region, rec.seq)
      if (rec.op === 'write') {
        const from = span.start - rec.offset
        this.image.write(volume, span.start, rec.data!.subarray(from, from + (span.end - span.start)))
      } else {
        this.image.zero(volume, span.start, span.end - span.start)
      }
    }
    this.grown(volume, oldSize)
  }

  /** beginFetch starts a fetch of a region; the returned token names it in the calls that follow. */
  beginFetch (volume: number, region: number): FetchToken {
    return { volume, region, id: this.rule.begin(regionKey(volume, region)) }
  }

  /** fetchKnown records the fetch's asOf as soon as the response says it; false if abandoned. */
  fetchKnown (t: FetchToken, asOf: number): boolean {
    const ok = this.rule.known(regionKey(t.volume, t.region), t.id, asOf)
    if (ok) this.touch(t.volume, t.region, asOf)
    return ok
  }

  /**
   * fetchTouched tells whether a record wrote to the region during the
   * fetch. A fetch that decides from a comparison rather than from bytes
   * (hydration's "keep") must not conclude anything then.
   */
  fetchTouched (t: FetchToken): boolean {
    return this.rule.touched(regionKey(t.volume, t.region), t.id)
  }

  /**
   * fetchData writes fetched bytes (any part of the region, as it arrives)
   * where the asOf rule allows; returns the ranges written (none if the
   * fetch was abandoned, e.g. by a truncate).
   */
  fetchData (t: FetchToken, chunk: FetchChunk): Range[] {
    const oldSize = this.image.size(t.volume)
    const ranges = this.rule.writable(regionKey(t.volume, t.region), t.id, chunk.offset, chunk.offset + chunk.data.length)
    for (const [s, e] of ranges) this.image.write(t.volume, s, chunk.data.subarray(s - chunk.offset, e - chunk.offset))
    this.grown(t.volume, oldSize)
    return ranges
  }

  /**
   * fetchWritable says where fetched bytes [offset, end) may be written by
   * the asOf rule, for a caller that writes them itself (off the main
   * thread): it must write them before any record is applied (the DR holds
   * its apply lock) and within the image's current size.
   */
  fetchWritable (t: FetchToken, offset: number, end: number): Range[] {
    return this.rule.writable(regionKey(t.volume, t.region), t.id, offset, end)
  }

  /** imageSize is the size of a volume's image now. */
  imageSize (volume: number): number {
    return this.image.size(volume)
  }

  /**
   * fetchZero makes fetched-as-hole bytes (the primary does not realize
   * them) read as zeros where the asOf rule allows.
   */
  fetchZero (t: FetchToken, offset: number, length: number): void {
    for (const [s, e] of this.rule.writable(regionKey(t.volume, t.region), t.id, offset, offset + length)) this.image.zero(t.volume, s, e - s)
  }

  /**
   * fetchEnd finishes a fetch: on success the region is present. A failed
   * fetch leaves the region absent, even one that was present before (a
   * re-fetch): some of its bytes may be written and its asOf raised, so
   * only a complete fetch can make it present again. Returns false if the
   * fetch failed or was abandoned meanwhile.
   */
  fetchEnd (t: FetchToken, ok: boolean): boolean {
    if (!this.rule.end(regionKey(t.volume, t.region), t.id)) return false
    const map = this.map(t.volume)
    if (t.region < map.length) map.set(t.region, ok)
    return ok
  }

  /** invalidate makes a region absent again (a verify found it wrong, a resync marks it dirty). */
  invalidate (volume: number, region: number): void {
    this.rule.invalidate(regionKey(volume, region))
    const map = this.maps.get(volume)
    if (map && region < map.length) map.set(region, false)
  }

  private truncate (volume: number, seq: number, size: number): void {
    const oldSize = this.image.size(volume)
    const map = this.map(volume)
    // Regions the truncate changes, whose bytes came from after it (or are
    // coming): their records in (seq, asOf] would be skipped while the
    // truncate cut them. Fetch them again instead.
    const lo = Math.floor(Math.min(oldSize, size) / this.regionSize)
    const hi = regionCount(Math.max(oldSize, size), this.regionSize)
    for (let r = lo; r < hi; r++) {
      const key = regionKey(volume, r)
      this.touch(volume, r, seq)
      const a = this.rule.asOfOf(key)
      if ((a !== undefined && a > seq) || this.rule.inFlight(key)) this.invalidate(volume, r)
    }
    this.image.truncate(volume, size)
    if (size < oldSize) {
      map.resize(regionCount(size, this.regionSize))
    } else {
      this.grown(volume, oldSize)
    }
  }

  // Whole regions past the old end are zeros on both sides: present.
  private grown (volume: number, oldSize: number): void {
    const newSize = this.image.size(volume)
    if (newSize <= oldSize) return
    const map = this.map(volume)
    const firstNew = Math.ceil(oldSize / this.regionSize)
    const count = regionCount(newSize, this.regionSize)
    map.resize(Math.max(map.length, count))
    for (let r = firstNew; r < count; r++) {
      if (!this.rule.inFlight(regionKey(volume, r))) map.set(r)
    }
  }
}
