/**
 * hydrator: background initial sync by comparison (US 2016/0224276).
 *
 * Walks every absent region of every volume, asks the primary for the
 * regions' realization (and checksums, only where the DR holds data to
 * compare them with), and decides per region (lib/core/sync-decision.ts):
 * keep (present as is), release (punch the DR's bytes out), or copy (fetch).
 * A DR that starts from a stale copy therefore moves only what differs, and
 * a fresh DR never reads a hole.
 *
 * Every decision runs as a fetch flight (the asOf rule): the primary's
 * answer carries the asOf it describes, and a record applied to the region
 * while the DR was hashing it makes the region a copy instead of a keep.
 *
 * Hydration is resumable (the region maps are persisted), can be rate
 * limited (`bytesPerSecond`, 0 = only on demand), and yields to readers:
 * it waits while copy-on-read fetches are in flight. While regions remain
 * absent it logs one `hydrate.progress` line per volume every few seconds
 * (done, rate, ETA), and `hydrate.complete` when the copy is whole.
 *
 * The node says why regions became absent (`kick(reason)`: an initial sync,
 * a resync after an outage, a failback, a compare of volumes changed
 * outside the primary's mount); every byte fetched from then until the copy
 * is whole again, on demand or in the background, is counted for that
 * reason (`moved()`), so an operator can see what a failback cost.
 */
import { regionKey } from '../core/as-of.js'
import type { Replica } from '../core/replica.js'
import { FlightWindow } from '../core/flight-window.js'
import { decideSync } from '../core/sync-decision.js'
import type { Logger } from '../log.js'
import type { PrimaryService, RegionInfo } from '../replication/protocol.js'
import type { ImageDir } from '../store/image-dir.js'
import type { RegionCodes } from '../store/region-codes.js'
import { dataRegions, describeBytes } from '../store/realization.js'
import type { VolumeFiles } from '../store/volume-files.js'
import { sameVolume, type DrVolumes } from './dr-volumes.js'
import type { Fetcher } from './fetcher.js'

/** SyncReason says why regions became absent (keys of `moved()`). */
export type SyncReason = 'initialSync' | 'resync' | 'failback' | 'compare'

/** Asked is a batch as the primary described it, with which of its regions the DR holds data for. */
/** Asked is a batch's answer: which regions the DR holds data for, the volume's change count when it looked, and the primary's answer. */
interface Asked { local: Map<number, boolean>, changes: number, size: number, info: Awaited<ReturnType<PrimaryService['regions']>> }

const REASON_LABEL: Record<SyncReason, string> = { initialSync: 'initial sync', resync: 'resync', failback: 'failback', compare: 'compare' }

/** HydratorOptions pace hydration. */
export interface HydratorOptions {
  /** Bytes per second of copying and comparing; 0 turns hydration off (fetch on demand only). */
  bytesPerSecond: number
  /** Regions asked about per call to the primary. */
  batch?: number
  /**
   * Copies in flight at once (across batches: the next batch is decided
   * while copies of the last one stream): at least `concurrency.min`, and up
   * to `max` as the measured bandwidth-delay product asks (lib/core/flight-window.ts).
   */
  concurrency?: { min: number, max: number }
  /** How often progress is logged while regions remain absent (default 5 s; 0 = never). */
  progressMs?: number
}

/** Hydrator completes a DR's copy in the background. */
/** The most regions asked about at once (the protocol's limit is 4096). */
const MAX_BATCH = 2048

/** Past this many volumes with absent regions, progress is logged as one line. */
const MAX_PROGRESS_LINES = 8

const sum = <T>(xs: T[], f: (x: T) => number): number => xs.reduce((n, x) => n + f(x), 0)

export class Hydrator {
  private running = false
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  /** Regions decided, by outcome; bytes compared locally. */
  readonly counters = { kept: 0, released: 0, copied: 0, comparedBytes: 0, passes: 0 }
  /** When the last full pass found nothing absent (the copy is complete). */
  completeAt: number | undefined
  private progressTimer: NodeJS.Timeout | undefined
  /** Copies in flight (fetches of regions decided 'copy'). */
  private readonly copies = new Set<Promise<void>>()
  /** How many copies may be in flight: sized to the link's bandwidth-delay product. */
  readonly window: FlightWindow
  /** Per volume id, what the last progress line saw (for the rate). */
  private readonly seen = new Map<number, { present: number, at: number }>()
  /** Why regions became absent, when the node said so, and the bytes fetched (both causes) when it did; shown in progress lines. */
  private sync: { reason: SyncReason, fromBytes: number, began: number } | undefined
  private readonly movedBytes: Record<SyncReason, number> = { initialSync: 0, resync: 0, failback: 0, compare: 0 }
  private workSince: number | undefined

  constructor (
    private readonly service: PrimaryService,
    private readonly replica: Replica,
    private readonly volumes: DrVolumes,
    private readonly fetcher: Fetcher,
    private readonly images: ImageDir,
    private readonly files: VolumeFiles,
    private readonly log: Logger,
    private readonly opts: HydratorOptions,
    private readonly codes: RegionCodes,
  ) {
    this.window = new FlightWindow({ min: opts.concurrency?.min ?? 16, max: opts.concurrency?.max ?? 128, unit: replica.regionSize })
  }

  start (): void {
    if (this.running || this.opts.bytesPerSecond === 0) return
    this.running = true
    this.loop = this.run().catch(err => this.log.error('hydrate.stopped', { err }))
    const every = this.opts.progressMs ?? 5000
    if (every > 0) {
      this.progressTimer = setInterval(() => this.logProgress(), every)
      this.progressTimer.unref()
    }
  }

  async stop (): Promise<void> {
    this.running = false
    clearInterval(this.progressTimer)
    this.wake?.()
    await this.loop
  }

  /** kick resumes a hydrator that found nothing to do (new absent regions appeared); `reason` says why, for progress lines and `moved()`. */
  kick (reason?: SyncReason): void {
    if (reason !== undefined) {
      this.settle()
      const now = this.fetchedBytes()
      this.sync = { reason, fromBytes: now, began: now }
    }
    this.wake?.()
  }

  /** moved is the bytes fetched for each reason regions became absent (since this node started). */
  moved (): Record<SyncReason, number> {
    this.settle()
    return { ...this.movedBytes }
  }

  private fetchedBytes (): number {
    return this.fetcher.counters.readBytes + this.fetcher.counters.hydrateBytes
  }

  /** settle counts what was fetched since the last settle for the current reason. */
  private settle (): void {
    if (!this.sync) return
    const now = this.fetchedBytes()
    this.movedBytes[this.sync.reason] += now - this.sync.fromBytes
    this.sync.fromBytes = now
  }

  /**
   * logProgress writes one `hydrate.progress` line per volume that still has
   * absent regions: how much is present, the rate since the last line
   * (regions settled, in bytes per second) and the time left at that rate.
   */
  private logProgress (): void {
    const now = Date.now()
    const rs = this.replica.regionSize
    const lines: Array<{ name: string, present: number, total: number, rate: number | undefined }> = []
    for (const v of this.volumes.list()) {
      const map = this.replica.map(v.id)
      const present = map.setCount
      const total = map.length
      const prev = this.seen.get(v.id)
      this.seen.set(v.id, { present, at: now })
      if (present >= total) continue
      const rate = prev && now > prev.at && present >= prev.present ? (present - prev.present) * rs * 1000 / (now - prev.at) : undefined
      lines.push({ name: v.name, present, total, rate })
    }
    // Many volumes at once (hundreds): one line for all of them, not one each.
    const all = lines.length > MAX_PROGRESS_LINES
      ? [{ name: `${lines.length} volumes`, present: sum(lines, l => l.present), total: sum(lines, l => l.total), rate: lines.some(l => l.rate !== undefined) ? sum(lines, l => l.rate ?? 0) : undefined }]
      : lines
    for (const l of all) {
      const eta = l.rate !== undefined && l.rate > 0 ? Math.ceil((l.total - l.present) * rs / l.rate) : undefined
      this.log.info('hydrate.progress', {
        volume: l.name,
        done: `${(Math.floor(1000 * l.present / l.total) / 10).toFixed(1)}%`,
        regions: `${l.present}/${l.total}`,
        rate: l.rate === undefined ? '-' : `${(l.rate / (1 << 20)).toFixed(1)}MiB/s`,
        eta: eta === undefined ? '-' : `${eta}s`,
        ...(this.sync ? { for: REASON_LABEL[this.sync.reason] } : {}),
      })
    }
  }

  private async run (): Promise<void> {
    while (this.running) {
      const found = await this.pass()
      this.counters.passes++
      if (!this.running) return
      if (!found) {
        if (this.workSince !== undefined) {
          this.settle()
          this.log.info('hydrate.complete', {
            seconds: Math.round((Date.now() - this.workSince) / 100) / 10,
            ...this.counters,
            ...(this.sync ? { for: REASON_LABEL[this.sync.reason], fetchedBytes: this.fetchedBytes() - this.sync.began } : {}),
          })
          this.workSince = undefined
          this.sync = undefined
        }
        this.completeAt ??= Date.now()
        await new Promise<void>(resolve => { this.wake = resolve; setTimeout(resolve, 5000).unref() })
        this.wake = undefined
      } else {
        this.completeAt = undefined
      }
    }
  }

  /**
   * pass walks all volumes once; returns whether it found anything absent.
   * The primary is asked about the next batch while this one is settled:
   * on a long link its answer crosses behind this batch's copies instead of
   * after them (the link would run dry for a round trip every batch).
   */
  private async pass (): Promise<boolean> {
    let found = false
    const base = this.opts.batch ?? 64
    for (const v of this.volumes.list()) {
      let batch = base
      let at = 0
      let next: { from: number, asked: Promise<Asked> } | undefined
      for (;;) {
        if (!this.running) return found
        const map = this.replica.map(v.id)
        const from = map.next(at, false)
        if (from < 0) break
        found = true
        if (this.workSince === undefined) {
          this.workSince = Date.now()
          // The first progress line's rate counts from here.
          for (const w of this.volumes.list()) this.seen.set(w.id, { present: this.replica.map(w.id).setCount, at: this.workSince })
        }
        const count = Math.min(batch, map.length - from)
        at = from + count
        const asked = next?.from === from ? next.asked : this.ask(v.id, v.name, from, count)
        const after = map.next(at, false)
        next = after < 0 ? undefined : { from: after, asked: this.ask(v.id, v.name, after, Math.min(batch, map.length - after)) }
        next?.asked.catch(() => {}) // reported when it is settled, if it still is
        await asked.then(async a => {
          await this.settleBatch(v.id, v.name, a)
          // Holes cost a listing each, not a copy: over a stretch of them
          // (a sparse volume) ask for more at once, back to the base size at data.
          batch = a.info.regions.some(r => r.realized) ? base : Math.min(batch * 2, MAX_BATCH)
          this.replica.settle()
        }).catch(err => {
          this.log.warn('hydrate.batch_failed', { volume: v.name, from, err })
          next = undefined
          return new Promise(resolve => setTimeout(resolve, 1000))
        })
      }
    }
    // The pass is over once its copies are.
    await Promise.all(this.copies)
    return found
  }

  /** copy starts fetching a region, waiting first while the window is full. */
  private async copy (volume: number, name: string, region: number): Promise<void> {
    while (this.copies.size >= this.window.window) await Promise.race(this.copies)
    const began = performance.now()
    this.window.started(began)
    const p: Promise<void> = this.fetcher.ensure(volume, region, 'hydrate').then(
      () => {
        this.counters.copied++
        this.window.completed(this.replica.regionSize, began, performance.now())
      },
      err => {
        this.window.failed(began)
        this.log.warn('hydrate.copy_failed', { volume: name, region, err })
      },
    ).finally(() => {
      this.copies.delete(p)
      if (this.copies.size === 0) this.window.idle()
    })
    this.copies.add(p)
  }

  /** ask finds which regions of a batch the DR holds data for, and asks the primary about them. */
  private async ask (volume: number, name: string, from: number, count: number): Promise<Asked> {
    const rs = this.replica.regionSize
    const changes = this.replica.changeCount(volume)
    const size = this.replica.imageSize(volume)
    // Which of these does the DR hold data for? Only those need checksums.
    const local = await this.files.use(name, async f => {
      const out = new Map<number, boolean>()
      dataRegions(this.images, f.fd, from, count, rs).forEach((has, i) => out.set(from + i, has))
      return out
    })
    const anyLocal = [...local.values()].some(Boolean)
    return { local, changes, size, info: await this.service.regions(name, from, count, anyLocal) }
  }

  /** settleBatch decides each region of an answered batch: keep, release, or copy. */
  private async settleBatch (volume: number, name: string, { local, changes, size, info }: Asked): Promise<void> {
    // Hold back while readers wait for fetches: they come first.
    while (this.running && this.fetcher.inFlight('read') > 0) await new Promise(resolve => setTimeout(resolve, 5))
    const v = this.volumes.byIdOf(volume)
    if (!v || !sameVolume(v, info.birth)) return // renamed on the primary meanwhile: next pass
    for (const ri of info.regions) {
      if (!this.running) break
      if (this.replica.present(volume, ri.index) || this.replica.rule.inFlight(regionKey(volume, ri.index))) continue
      const action = await this.decide(volume, name, ri, local.get(ri.index) ?? false, { changes, size })
      if (action === 'copy') {
        await this.copy(volume, name, ri.index)
        await this.pace(this.replica.regionSize)
      }
    }
    // Regions past the primary's end (a shorter volume): the records that
    // shrank it will arrive; nothing to fetch.
  }

  /** decide settles one region by comparison inside a fetch flight; returns 'copy' when it must be fetched. */
  private async decide (volume: number, name: string, ri: RegionInfo, localHasData: boolean, atAsk: { changes: number, size: number }): Promise<'keep' | 'release' | 'copy'> {
    const rs = this.replica.regionSize
    const start = ri.index * rs
    if (ri.realized && !localHasData) return 'copy'
    const token = this.replica.beginFetch(volume, ri.index)
    let ok = false
    try {
      // The flight sees records applied from now on only. One newer than
      // the primary's answer (asOf) may have been applied since that answer
      // came (while earlier regions of the batch were settled): settling by
      // the answer would zero or keep bytes without it. Fetch instead.
      if (this.replica.version(volume, ri.index) > ri.asOf) return 'copy'
      // The DR's side: its code if valid (no read), else read and hash (and keep the code).
      const facts = !localHasData
        ? { realized: false }
        : this.codes.get(name, ri.index) ?? await this.files.use(name, async f => {
          const stamp = this.codes.stamp(name, ri.index)
          const buf = Buffer.allocUnsafe(rs)
          const n = await this.images.readFull(f.fd, buf, rs, start)
          this.counters.comparedBytes += n
          const code = await describeBytes(buf.subarray(0, n), true)
          this.codes.set(name, ri.index, code, stamp)
          return code
        })
      const action = decideSync(ri, facts)
      if (action === 'copy') return 'copy'
      // A record applied to the region since the flight began may be missing
      // from the bytes compared: only a copy is safe then.
      if (action === 'keep' && ri.realized && this.replica.fetchTouched(token)) return 'copy'
      if (!this.replica.fetchKnown(token, ri.asOf)) return 'copy'
      // The primary's region is zeros, for `length` bytes: make the DR's
      // read so, also where its copy is shorter (a hole costs nothing).
      // A region that was a hole here when the batch was asked, within the
      // file, in a volume nothing changed since (no record, fetch or
      // truncate: the size then is the size now), reads so already.
      const stillHole = !localHasData && this.replica.changeCount(volume) === atAsk.changes && atAsk.size >= start + ri.length
      if (!ri.realized && !stillHole) this.replica.fetchZero(token, start, ri.length)
      if (action === 'release') this.counters.released++
      else this.counters.kept++
      ok = true
      return action
    } finally {
      this.replica.fetchEnd(token, ok)
    }
  }

  private readonly bucket = { tokens: 0, at: Date.now() }

  private async pace (bytes: number): Promise<void> {
    const rate = this.opts.bytesPerSecond
    if (!Number.isFinite(rate) || rate <= 0) return
    const now = Date.now()
    this.bucket.tokens = Math.min(rate, this.bucket.tokens + (now - this.bucket.at) * rate / 1000)
    this.bucket.at = now
    this.bucket.tokens -= bytes
    if (this.bucket.tokens < 0) await new Promise(resolve => setTimeout(resolve, -this.bucket.tokens / rate * 1000))
  }
}
