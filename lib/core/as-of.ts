/**
 * as-of: the asOf rule (DESIGN "The asOf rule"), in one place.
 *
 * A region fetched from the primary carries `asOf`: the primary's applied
 * seq when it read the region, so the bytes contain every record with
 * `seq <= asOf`. On the DR, therefore:
 *
 *   - a record with `seq <= asOf` is skipped for that region (already in);
 *   - a record with `seq > asOf` is applied; if it was applied while the
 *     fetch was in flight, the fetched bytes must not overwrite its bytes.
 *
 * Copy-on-read, hydration, resync after an outage, verify-repair and
 * failback all are "fetch regions with asOf, apply the journal by this rule".
 *
 * The lifecycle of a fetch of one region:
 *
 *   begin(key) -> id      the request is about to go out
 *   applyPiece(...)       (any time) a record's bytes for this region
 *   known(key, id, asOf)  the response headers arrived: from now on records
 *                         with seq <= asOf are skipped for this region
 *   writable(key, id, s, e)  a chunk [s, e) of fetched bytes arrived: the
 *                         sub-ranges it may be written to (not covered by a
 *                         record with seq > asOf applied during the flight)
 *   end(key, id)          done (or failed: the region stays absent, and the
 *                         asOf stays, which is safe: any later fetch has an
 *                         asOf at least as high)
 *
 * The id ties a response to its flight: a fetch abandoned by
 * `invalidate` may still deliver bytes after a new fetch of the same
 * region began, and those must be ignored.
 *
 * `asOf` is recorded at `known` rather than at `end` because fetched bytes
 * are written as they stream in: a record older than asOf applied after
 * that would put stale bytes over newer ones.
 *
 * Pure: no I/O. The owner writes bytes and persists `entries()`.
 */

/** RegionKey identifies a region across volumes: volume id * 2^32 + region index. */
export type RegionKey = number

/** regionKey builds a RegionKey (volume ids stay below 2^21). */
export function regionKey (volumeId: number, region: number): RegionKey {
  return volumeId * 0x100000000 + region
}

/** keyVolume and keyRegion take a RegionKey apart. */
export function keyVolume (key: RegionKey): number { return Math.floor(key / 0x100000000) }
export function keyRegion (key: RegionKey): number { return key % 0x100000000 }

/** Range is [start, end) in volume offsets. */
export type Range = [number, number]

interface Flight {
  id: number
  asOf: number | undefined
  /** Bytes written by records while the fetch was in flight, with their seqs. */
  writes: Array<{ start: number, end: number, seq: number }>
}

/** AsOfRule tracks fetched regions' asOf and fetches in flight. */
export class AsOfRule {
  private readonly asOf = new Map<RegionKey, number>()
  private readonly flights = new Map<RegionKey, Flight>()
  private nextId = 1

  /** asOfOf returns the region's recorded asOf, if any. */
  asOfOf (key: RegionKey): number | undefined {
    return this.asOf.get(key)
  }

  /** inFlight tells whether a fetch of the region is under way (this very one, given its id). */
  inFlight (key: RegionKey, id?: number): boolean {
    const f = this.flights.get(key)
    return f !== undefined && (id === undefined || f.id === id)
  }

  /**
   * applyPiece decides for the part [start, end) of one record that falls in
   * one region: true means write it (and it is remembered so a fetch in
   * flight keeps it); false means skip it (its effect is in fetched bytes).
   */
  applyPiece (key: RegionKey, seq: number, start: number, end: number): boolean {
    const a = this.asOf.get(key)
    if (a !== undefined && seq <= a) return false
    this.flights.get(key)?.writes.push({ start, end, seq })
    return true
  }

  /** anyInFlight tells whether any fetch is under way. */
  anyInFlight (): boolean {
    return this.flights.size > 0
  }

  /** begin starts a fetch of the region and returns its id. */
  begin (key: RegionKey): number {
    if (this.flights.has(key)) throw new Error(`a fetch of region ${key} is already in flight`)
    const id = this.nextId++
    this.flights.set(key, { id, asOf: undefined, writes: [] })
    return id
  }

  /** known records the fetch's asOf (never lowering one already recorded); false if the flight was abandoned. */
  known (key: RegionKey, id: number, asOf: number): boolean {
    const f = this.flights.get(key)
    if (!f || f.id !== id) return false
    f.asOf = asOf
    const prev = this.asOf.get(key)
    if (prev === undefined || asOf > prev) this.asOf.set(key, asOf)
    return true
  }

  /**
   * writable returns the parts of [start, end) that fetched bytes may be
   * written to: everything except what records with seq > asOf wrote
   * during the flight.
   */
  writable (key: RegionKey, id: number, start: number, end: number): Range[] {
    const f = this.flights.get(key)
    if (!f || f.id !== id) return []
    if (f.asOf === undefined) throw new Error(`fetch of region ${key} has no asOf yet`)
    let out: Range[] = [[start, end]]
    for (const w of f.writes) {
      if (w.seq <= f.asOf || w.end <= start || w.start >= end) continue
      out = subtract(out, w.start, w.end)
      if (out.length === 0) break
    }
    return out
  }

  /** touched tells whether any record wrote to the region during this flight. */
  touched (key: RegionKey, id: number): boolean {
    const f = this.flights.get(key)
    return f !== undefined && f.id === id && f.writes.length > 0
  }

  /** end finishes a fetch (successful or not); false if it had been abandoned. */
  end (key: RegionKey, id: number): boolean {
    const f = this.flights.get(key)
    if (!f || f.id !== id) return false
    this.flights.delete(key)
    return true
  }

  /**
   * invalidate forgets a region's asOf and abandons its fetch: the caller
   * marks the region absent again. Used when a volume-wide operation (a
   * truncate) would otherwise be skipped for bytes fetched from after it.
   * Returns whether a fetch was in flight (its result must be discarded).
   */
  invalidate (key: RegionKey): boolean {
    this.asOf.delete(key)
    return this.flights.delete(key)
  }

  /** forgetVolume drops everything about a deleted volume. */
  forgetVolume (volumeId: number): void {
    for (const k of [...this.asOf.keys()]) if (keyVolume(k) === volumeId) this.asOf.delete(k)
    for (const k of [...this.flights.keys()]) if (keyVolume(k) === volumeId) this.flights.delete(k)
  }

  /** aheadOf lists regions whose asOf is above `applied` (they make their volume inconsistent). */
  aheadOf (applied: number): RegionKey[] {
    const out: RegionKey[] = []
    for (const [k, a] of this.asOf) if (a > applied) out.push(k)
    return out
  }

  /** prune drops asOfs at or below `applied`: every record they could skip is applied already. */
  prune (applied: number): void {
    for (const [k, a] of this.asOf) if (a <= applied && !this.flights.has(k)) this.asOf.delete(k)
  }

  /** entries lists the recorded asOfs (for persistence). */
  entries (): Array<[RegionKey, number]> {
    return [...this.asOf]
  }

  /** load restores persisted asOfs. */
  load (entries: Iterable<[RegionKey, number]>): void {
    for (const [k, a] of entries) this.asOf.set(k, a)
  }
}

function subtract (ranges: Range[], s: number, e: number): Range[] {
  const out: Range[] = []
  for (const [a, b] of ranges) {
    if (e <= a || s >= b) { out.push([a, b]); continue }
    if (s > a) out.push([a, s])
    if (e < b) out.push([e, b])
  }
  return out
}
