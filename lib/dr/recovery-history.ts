/**
 * recovery-history: a DR's recovery points, and the undo log that keeps them
 * readable (lib/dr/undo-log.ts).
 *
 * A recovery point is a group boundary at which the DR was consistent
 * (every region present, none newer than what it applied): the state of
 * all its volumes as the primary had them at that seq, crash-consistent
 * across volumes. History starts the first time the DR is consistent (an
 * initial sync has nothing to go back to) and from then on every change to
 * the images is preceded by an undo entry. A point remembers the useq its
 * first later entry gets (`useq`): the entries from there on, read oldest
 * first per byte, give the point back.
 *
 * Retention (`--history`, `--history-size`) drops the oldest points first,
 * and only while the window or the size is exceeded; entries older than the
 * oldest point left are trimmed, except those an open view still needs
 * (pins).
 *
 * Crashes: entries are appended before the change they undo, so after the
 * process dies its page cache still has them and the journal's tail scan
 * finds them; a record replayed at start whose entry exists (`lastCause`)
 * is not captured twice. If the machine itself went down without a clean
 * stop (another boot id), entries written since the last sync may be gone
 * while the images changed: history then starts over, and says so.
 */
import { readFileSync } from 'node:fs'
import { keySeq, seqKey } from '../core/record.js'
import type { Logger } from '../log.js'
import type { ImageDir } from '../store/image-dir.js'
import type { BinaryLevel, StateStore } from '../store/state-store.js'
import { UndoLog } from './undo-log.js'

/** RecoveryOptions bound what is kept. */
export interface RecoveryOptions {
  /** Keep points this far back (ms); Infinity: no bound by age. */
  windowMs: number
  /** Keep at most this many bytes of undo entries; Infinity: no bound by size. */
  maxBytes: number
}

/** RecoveryPoint is a group boundary the DR was consistent at. */
export interface RecoveryPoint {
  seq: number
  /** The primary's time of the group's last record (ms). */
  ts: number
  /** The useq of the first undo entry made after it. */
  useq: number
  /** The DR was not consistent for a while before this point (a resync, a compare): a span of points starts here. */
  afterGap: boolean
}

/** RecoverySpan is a run of recovery points without a gap (the DR was consistent all along). */
export interface RecoverySpan {
  first: RecoveryPoint
  last: RecoveryPoint
  points: number
}

/** RecoveryStatus is what status shows of history. */
export interface RecoveryStatus {
  enabled: boolean
  windowSeconds: number | null
  maxBytes: number | null
  points: number
  first?: RecoveryPoint
  last?: RecoveryPoint
  bytes: number
  /** Points dropped by retention since the node started. */
  dropped: number
}

// Not 'history': that key holds the node's epochs (lib/core/history.ts).
const META = 'recoveryHistory'

interface Meta { bootId: string, clean: boolean, started: boolean }

/** RecoveryHistory keeps a DR's recovery points. */
export class RecoveryHistory {
  readonly undo: UndoLog
  private readonly points: BinaryLevel
  /** Capturing: the DR has been consistent at least once. */
  active = false
  /** The seq of the record being applied now (0: fetched bytes). */
  cause = 0
  private first: RecoveryPoint | undefined
  private last: RecoveryPoint | undefined
  private count = 0
  private dropped = 0
  private readonly pins = new Map<number, number>()
  private nextPin = 1
  private trimming: Promise<void> | undefined
  private pointWrites: Promise<unknown> = Promise.resolve()
  /** Set when a group was applied while the DR was not consistent, since the last point. */
  private gap = false

  constructor (
    private readonly store: StateStore,
    images: ImageDir,
    private readonly log: Logger,
    readonly opts: RecoveryOptions,
  ) {
    this.undo = new UndoLog(store, log, images)
    this.points = store.binary('points')
  }

  /** open loads the points, and starts history over if the machine went down uncleanly since it was last written. */
  async open (): Promise<void> {
    await this.undo.open()
    const meta = await this.store.getMeta<Meta>(META)
    const bootId = readBootId()
    for await (const [k, v] of this.points.iterator()) {
      const p = decodePoint(k, v)
      this.first ??= p
      this.last = p
      this.count++
    }
    this.active = meta?.started === true
    if (meta && !meta.clean && meta.bootId !== bootId && this.active) {
      this.log.warn('history.reset', { points: this.count, note: 'the machine went down without a clean stop since the undo log was last synced: recovery points start again now' })
      await this.reset()
    }
    await this.store.putMeta(META, { bootId, clean: false, started: this.active } satisfies Meta, true)
  }

  /** close syncs the undo log and notes a clean stop. */
  async close (): Promise<void> {
    await this.trimming
    await this.pointWrites
    await this.undo.sync()
    await this.undo.close()
    await this.store.putMeta(META, { bootId: readBootId(), clean: true, started: this.active } satisfies Meta, true)
  }

  /** capturing tells whether a change made now must get an undo entry first. */
  get capturing (): boolean {
    // Records up to lastCause were captured before a crash; replay applies them again.
    return this.active && (this.cause === 0 || this.cause > this.undo.lastCause)
  }

  /**
   * applied notes a group applied up to `seq` (its last record written at
   * `ts` on the primary); `consistent` says whether the DR is consistent
   * now: that makes it a recovery point (and starts history if it was not).
   */
  applied (seq: number, ts: number, consistent: boolean): void {
    if (!consistent) {
      if (this.active) this.gap = true
      return
    }
    if (!this.active) {
      this.active = true
      this.pointWrites = this.pointWrites.then(() => this.store.putMeta(META, { bootId: readBootId(), clean: false, started: true } satisfies Meta, true))
      this.log.info('history.started', { seq, note: 'the DR is consistent: recovery points are kept from here on' })
    }
    if (this.last && seq <= this.last.seq) return
    const p: RecoveryPoint = { seq, ts, useq: this.undo.lastSeq + 1, afterGap: this.gap }
    this.gap = false
    this.first ??= p
    this.last = p
    this.count++
    this.pointWrites = this.pointWrites.then(() => this.points.put(seqKey(seq), pointValue(p))).catch(err => this.log.warn('history.point_write_failed', { err }))
    this.retain()
  }

  /** status is what status shows. */
  status (): RecoveryStatus {
    return {
      enabled: true,
      windowSeconds: Number.isFinite(this.opts.windowMs) ? this.opts.windowMs / 1000 : null,
      maxBytes: Number.isFinite(this.opts.maxBytes) ? this.opts.maxBytes : null,
      points: this.count,
      ...(this.first ? { first: this.first } : {}),
      ...(this.last ? { last: this.last } : {}),
      bytes: this.undo.bytes,
      dropped: this.dropped,
    }
  }

  /** latest is the newest recovery point. */
  get latest (): RecoveryPoint | undefined { return this.last }

  /** find returns the last point at or before `seq` (or, with `at`, written at or before that time), if any is kept. */
  async find (by: { seq?: number, at?: number }): Promise<RecoveryPoint | undefined> {
    await this.pointWrites
    if (by.seq !== undefined) {
      for await (const [k, v] of this.points.iterator({ lte: seqKey(by.seq), reverse: true, limit: 1 })) return decodePoint(k, v)
      return undefined
    }
    for await (const [k, v] of this.points.iterator({ reverse: true })) {
      const p = decodePoint(k, v)
      if (p.ts <= by.at!) return p
    }
    return undefined
  }

  /** spans lists the runs of consecutive points (a gap: the DR was inconsistent, e.g. resyncing), oldest first. */
  async spans (): Promise<RecoverySpan[]> {
    await this.pointWrites
    const out: RecoverySpan[] = []
    let cur: RecoverySpan | undefined
    for await (const [k, v] of this.points.iterator()) {
      const p = decodePoint(k, v)
      if (cur && !p.afterGap) {
        cur.last = p
        cur.points++
      } else {
        cur = { first: p, last: p, points: 1 }
        out.push(cur)
      }
    }
    return out
  }

  /** pin keeps the entries from `useq` on (an open view reads them); returns the unpin function. */
  pin (useq: number): () => void {
    const id = this.nextPin++
    this.pins.set(id, useq)
    return () => { this.pins.delete(id); this.retain() }
  }

  /**
   * forgetAfter drops the points after `seq` and the entries after `useq`
   * (a rollback undid them).
   */
  async forgetAfter (seq: number, useq: number): Promise<void> {
    await this.pointWrites
    await this.points.clear({ gt: seqKey(seq) })
    await this.undo.truncateAfter(useq - 1)
    this.count = 0
    this.first = undefined
    this.last = undefined
    for await (const [k, v] of this.points.iterator()) {
      const p = decodePoint(k, v)
      this.first ??= p
      this.last = p
      this.count++
    }
  }

  /** reset forgets every point and entry: history starts again at the next consistent group. */
  async reset (): Promise<void> {
    await this.pointWrites
    await this.points.clear()
    await this.undo.clear()
    this.first = undefined
    this.last = undefined
    this.count = 0
    this.active = false
    await this.store.putMeta(META, { bootId: readBootId(), clean: false, started: false } satisfies Meta, true)
  }

  /** retain drops the oldest points past the window or the size, then trims the entries nothing needs. */
  private retain (): void {
    if (this.trimming) return
    this.trimming = (async () => {
      try {
        await this.pointWrites
        await this.undo.indexed() // `bytes` counts indexed entries
        const now = this.last?.ts ?? Date.now()
        let dropped = 0
        while (this.first && this.count > 1) {
          const old = this.first
          const tooOld = now - old.ts > this.opts.windowMs
          const tooBig = this.undo.bytes > this.opts.maxBytes
          if (!tooOld && !tooBig) break
          const next = await this.nextAfter(old.seq)
          if (!next) break
          await this.points.del(seqKey(old.seq))
          this.first = next
          this.count--
          dropped++
          // Entries before the new oldest point serve nobody (unless a view holds them).
          const pinned = Math.min(...this.pins.values())
          const upto = Math.min(next.useq - 1, pinned - 1)
          if (upto >= this.undo.firstSeq) await this.undo.trim(upto)
          if (tooBig && !tooOld && this.undo.bytes > this.opts.maxBytes && upto < next.useq - 1) break
        }
        if (dropped > 0) {
          this.dropped += dropped
          this.log.info('history.retention', { dropped, oldest: this.first?.seq, points: this.count, bytes: this.undo.bytes })
        }
      } catch (err) {
        this.log.warn('history.retention_failed', { err })
      } finally {
        this.trimming = undefined
      }
    })()
  }

  private async nextAfter (seq: number): Promise<RecoveryPoint | undefined> {
    for await (const [k, v] of this.points.iterator({ gt: seqKey(seq), limit: 1 })) return decodePoint(k, v)
    return undefined
  }
}

/** A point's value (version 1): f64 ts, f64 useq, u8 flags (bit 0: after a gap). */
function pointValue (p: RecoveryPoint): Buffer {
  const b = Buffer.alloc(17)
  b.writeDoubleBE(p.ts, 0)
  b.writeDoubleBE(p.useq, 8)
  b[16] = p.afterGap ? 1 : 0
  return b
}

function decodePoint (k: Buffer, v: Buffer): RecoveryPoint {
  return { seq: keySeq(k), ts: v.readDoubleBE(0), useq: v.readDoubleBE(8), afterGap: (v[16]! & 1) !== 0 }
}

let bootId: string | undefined
/** readBootId is the kernel's id of this boot (a new one after every restart of the machine). */
function readBootId (): string {
  try {
    bootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    bootId = 'unknown'
  }
  return bootId
}
