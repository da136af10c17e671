/**
 * region-codes: per-region checksums with a valid flag (US 7,877,628).
 *
 * Each node keeps, per volume and region, the SHA-256 of the region's bytes
 * as last computed. A write to a region clears its code (the flag); idle
 * time computes missing codes again, at a bounded rate. Comparing two
 * nodes' regions (failback, initial sync from a stale copy, verify) then
 * costs a LevelDB read per region instead of reading and hashing it.
 *
 * Crash safety: a code is only ever trusted if no write happened since it
 * was computed. Invalidations happen in memory at once and are written at
 * every checkpoint before the image watermark moves (`capture`); writes
 * after the watermark are replayed at start, which invalidates their
 * regions again. New codes are written at the same time, from the codes
 * valid at that moment (a code cleared meanwhile is never written).
 *
 * Codes are keyed by volume name; renames move them, deletes drop them.
 */
import { isUnder, renamePrefix } from '../core/volume-name.js'
import type { BinaryLevel, StateStore } from './state-store.js'

/** Computations tracked at most (a bound for ones that failed and never called set). */
const MAX_WATCHED = 100_000

/** Code is a region's checksum (SHA-256, hex) and whether the region holds data. */
export interface Code {
  realized: boolean
  sha256?: string
}

function key (volume: string, region: number): string {
  return `${volume}\u0000${region}`
}

function keyBuf (volume: string, region: number): Buffer {
  const r = Buffer.allocUnsafe(4)
  r.writeUInt32BE(region)
  return Buffer.concat([Buffer.from(volume), Buffer.from([0]), r])
}

function parseKey (k: Buffer): { volume: string, region: number } {
  const i = k.lastIndexOf(0, k.length - 5)
  return { volume: k.toString('utf8', 0, i), region: k.readUInt32BE(i + 1) }
}

/** RegionCodes keeps the codes of one node. */
export class RegionCodes {
  private readonly codes = new Map<string, Code>()
  /** Keys set or cleared since the last capture. */
  private readonly changed = new Set<string>()
  /**
   * Regions whose code is being computed (between stamp and set), with how
   * often a write cleared them meanwhile: a code computed across a change
   * is refused. Only those are tracked: an entry per region ever written
   * cost ~100 bytes of map and key each, 1 GB on a DR that settled ten
   * million regions of sparse volumes.
   */
  private readonly watched = new Map<string, { cleared: number, holders: number }>()
  private readonly level: BinaryLevel
  /** Codes served from memory, and computed. */
  readonly counters = { hits: 0, misses: 0, computed: 0, invalidated: 0 }

  constructor (store: StateStore, readonly regionSize: number) {
    this.level = store.binary('codes')
  }

  async load (): Promise<void> {
    for await (const [k, v] of this.level.iterator()) {
      const { volume, region } = parseKey(k)
      this.codes.set(key(volume, region), v.length === 1 ? { realized: false } : { realized: true, sha256: v.toString('hex') })
    }
  }

  /** get returns the region's code if it is valid. */
  get (volume: string, region: number): Code | undefined {
    const c = this.codes.get(key(volume, region))
    if (c) this.counters.hits++
    else this.counters.misses++
    return c
  }

  /** stamp is taken before reading a region to compute its code; see {@link set}. */
  stamp (volume: string, region: number): number {
    const k = key(volume, region)
    // A computation that failed never calls set: its entry stays; bounded here.
    if (this.watched.size > MAX_WATCHED && !this.watched.has(k)) this.watched.clear()
    let w = this.watched.get(k)
    if (!w) this.watched.set(k, w = { cleared: 0, holders: 0 })
    w.holders++
    return w.cleared
  }

  /**
   * set records a code computed from the region's bytes read after `stamp`
   * was taken; it is dropped if a write touched the region since (returns
   * whether it was kept).
   */
  set (volume: string, region: number, code: Code, stamp: number): boolean {
    const k = key(volume, region)
    const w = this.watched.get(k)
    if (w && --w.holders <= 0) this.watched.delete(k)
    if (!w || w.cleared !== stamp) return false
    this.codes.set(k, code)
    this.changed.add(k)
    this.counters.computed++
    return true
  }

  /** invalidate clears the codes of the regions [offset, offset+length) touches (a write). */
  invalidate (volume: string, offset: number, length: number): void {
    const first = Math.floor(offset / this.regionSize)
    const last = Math.floor((offset + Math.max(1, length) - 1) / this.regionSize)
    for (let r = first; r <= last; r++) this.clear(key(volume, r))
  }

  /** invalidateFrom clears every code at or past `offset` (a truncate). */
  invalidateFrom (volume: string, offset: number): void {
    const first = Math.floor(offset / this.regionSize)
    for (const k of [...this.codes.keys()]) {
      const i = k.lastIndexOf('\u0000')
      if (k.slice(0, i) === volume && Number(k.slice(i + 1)) >= first) this.clear(k)
    }
  }

  /**
   * invalidateEntries clears the codes of what journal records changed
   * (records replayed at start, whose clearing may never have been written).
   */
  invalidateEntries (entries: Array<{ op: string, volume: string, offset: number, length: number }>): void {
    for (const e of entries) {
      if (e.op === 'write' || e.op === 'zero') this.invalidate(e.volume, e.offset, e.length)
      else if (e.op === 'truncate') this.invalidateFrom(e.volume, e.offset)
      else this.deleted(e.volume)
    }
  }

  /** renamed moves codes with a volume (or a directory of volumes). */
  renamed (from: string, to: string): void {
    for (const [k, c] of [...this.codes]) {
      const i = k.lastIndexOf('\u0000')
      const name = k.slice(0, i)
      if (isUnder(name, to) && !isUnder(name, from)) this.clear(k)
      if (!isUnder(name, from)) continue
      this.clear(k)
      const nk = key(renamePrefix(name, from, to), Number(k.slice(i + 1)))
      this.codes.set(nk, c)
      this.changed.add(nk)
    }
  }

  /** deleted drops a volume's codes. */
  deleted (volume: string): void {
    for (const k of [...this.codes.keys()]) if (k.slice(0, k.lastIndexOf('\u0000')) === volume) this.clear(k)
  }

  /** valid counts the valid codes (status). */
  get size (): number { return this.codes.size }

  /**
   * capture takes the changes to persist (for Checkpointer.capture) and
   * returns the function that writes them once the images are synced.
   */
  capture (): () => Promise<void> {
    const ops: Array<{ type: 'put' | 'del', key: Buffer, value?: Buffer }> = []
    for (const k of this.changed) {
      const i = k.lastIndexOf('\u0000')
      const kb = keyBuf(k.slice(0, i), Number(k.slice(i + 1)))
      const c = this.codes.get(k)
      if (!c) ops.push({ type: 'del', key: kb })
      else ops.push({ type: 'put', key: kb, value: c.realized ? Buffer.from(c.sha256!, 'hex') : Buffer.from([0]) })
    }
    this.changed.clear()
    return async () => {
      if (ops.length > 0) await this.level.batch(ops as never, { sync: true } as object)
    }
  }

  private clear (k: string): void {
    const w = this.watched.get(k)
    if (w) w.cleared++
    if (this.codes.delete(k)) {
      this.changed.add(k)
      this.counters.invalidated++
    }
  }
}
