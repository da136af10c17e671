/**
 * fetcher: copy-on-read (DESIGN "DR mount and copy-on-read").
 *
 * `ensure(volume, region)` makes a region present by fetching it from the
 * primary, once: concurrent callers share the flight. The bytes are written
 * into the DR image as they stream in (through the Replica, so by the asOf
 * rule), and a caller that needs only part of the region is released as
 * soon as that part is written: the fetch starts at the offset the reader
 * wants (`first`), so a 4 KiB read at an untouched offset is answered after
 * its own bytes arrive, while the rest of the region streams on.
 *
 * Hydration's fetches (nobody waiting) gather the region in a pooled
 * buffer instead and hand it to a RegionWriter, which writes it in the
 * thread pool while the main thread goes on; a reader that joins such a
 * flight has what arrived so far written at once, and the rest as it comes.
 *
 * If the primary cannot be reached, a fetch is retried with exponential
 * backoff and jitter until its deadline (`timeoutMs`), then fails its
 * callers with PEER_UNREACHABLE (the mount answers EIO) and logs it; reads
 * of present regions are not affected.
 */
import { crc32 } from '@node-rs/crc32'
import { regionKey } from '../core/as-of.js'
import { BufferPool } from '../core/buffer-pool.js'
import type { Replica, FetchToken } from '../core/replica.js'
import { isVolmirrorError, VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import type { PrimaryService } from '../replication/protocol.js'
import { sameVolume, type DrVolumes } from './dr-volumes.js'
import type { RegionWriter } from './region-writer.js'

/** FetchCause says why a region is fetched (status counts bytes by cause). */
export type FetchCause = 'read' | 'hydrate'

/** FetchEvent is one finished fetch of a region, for metrics: why, how long (all attempts), bytes, success. */
export interface FetchEvent {
  cause: FetchCause
  seconds: number
  bytes: number
  ok: boolean
}

/** First is where a reader waits: the bytes to fetch first. */
interface First { at: number, length: number }

interface Waiter { start: number, end: number, resolve: () => void, reject: (e: Error) => void }

interface Flight {
  volume: number
  region: number
  cause: FetchCause
  /** Byte ranges of the region written so far (volume offsets, merged). */
  have: Array<[number, number]>
  waiters: Waiter[]
  done: Promise<void>
  abort: AbortController
  bytes: number
  /** A hydration flight's bytes, gathered to be written off the main thread. */
  gathered?: Gathered
}

/** Gathered is a region's bytes held for the RegionWriter: [start, start + buf.length) of the volume. */
interface Gathered {
  token: FetchToken
  start: number
  buf: Buffer
  /** Ranges received and not written yet (volume offsets). */
  pending: Array<[number, number]>
  /** Set once the writer has them: from then on nothing else may touch `buf`. */
  writing: boolean
}

/** FetcherOptions tune retries and read-ahead. */
export interface FetcherOptions {
  /** How long a fetch keeps retrying before its readers get EIO. */
  timeoutMs: number
  /** Regions to fetch ahead of a sequential reader. */
  readAhead: number
  /** Writes hydration's regions off the main thread; without one they are written as they arrive. */
  writer?: RegionWriter
}

/** Fetcher makes regions present on demand. */
export class Fetcher {
  private readonly flights = new Map<string, Flight>()
  private closed = false
  /** Bytes fetched, by cause; fetches that failed for good. */
  readonly counters = { readBytes: 0, hydrateBytes: 0, fetches: 0, failures: 0, retries: 0, corrupt: 0, changed: 0 }
  private readonly observers = new Set<(e: FetchEvent) => void>()
  private readonly pool: BufferPool

  constructor (
    private readonly service: PrimaryService,
    private readonly replica: Replica,
    private readonly volumes: DrVolumes,
    private readonly log: Logger,
    private readonly opts: FetcherOptions,
  ) {
    this.pool = new BufferPool(replica.regionSize)
  }

  /** inFlight counts fetches under way (hydration yields to readers while there are any). */
  inFlight (cause?: FetchCause): number {
    let n = 0
    for (const f of this.flights.values()) if (!cause || f.cause === cause) n++
    return n
  }

  /**
   * ensure resolves once bytes [start, end) of the region are in the DR
   * image (the whole region if not given); it fetches the region unless it
   * is present or already being fetched.
   */
  ensure (volume: number, region: number, cause: FetchCause, need?: { start: number, end: number }): Promise<void> {
    if (this.replica.present(volume, region)) return Promise.resolve()
    const rs = this.replica.regionSize
    const start = need?.start ?? region * rs
    const end = need?.end ?? (region + 1) * rs
    let f = this.flights.get(`${volume}:${region}`)
    // A reader's fetch starts where it reads; hydration's reads the region in one piece.
    if (!f) f = this.start(volume, region, cause, cause === 'read' ? { at: start, length: end - start } : undefined)
    else if (cause === 'read' && f.cause === 'hydrate') {
      f.cause = 'read'
      this.ungather(f)
    }
    if (covered(f.have, start, end)) return Promise.resolve()
    const flight = f
    return new Promise<void>((resolve, reject) => { flight.waiters.push({ start, end, resolve, reject }) })
  }

  /**
   * prefetchOne starts a fetch of an absent region without waiting for it
   * (read-ahead); returns when it is done, or undefined when the region is
   * here or on its way already.
   */
  prefetchOne (volume: number, region: number): Promise<void> | undefined {
    const map = this.replica.map(volume)
    if (region >= map.length || map.get(region) || this.flights.has(`${volume}:${region}`)) return undefined
    const f = this.start(volume, region, 'read', undefined)
    f.done.catch(() => {})
    return f.done
  }

  /** regions is how many regions a volume has now. */
  regions (volume: number): number {
    return this.replica.map(volume).length
  }

  /** close abandons every fetch (their readers get CLOSED). */
  async close (): Promise<void> {
    this.closed = true
    for (const f of this.flights.values()) f.abort.abort()
    await Promise.allSettled([...this.flights.values()].map(f => f.done))
  }

  get readAhead (): number { return this.opts.readAhead }

  /** onFetch calls `fn` after every fetch that went to the primary (latency metrics); returns a function that stops it. */
  onFetch (fn: (e: FetchEvent) => void): () => void {
    const entry = (e: FetchEvent): void => { fn(e) }
    this.observers.add(entry)
    return () => { this.observers.delete(entry) }
  }

  private fetched (f: Flight, startedAt: number, ok: boolean): void {
    const e: FetchEvent = { cause: f.cause, seconds: (performance.now() - startedAt) / 1000, bytes: f.bytes, ok }
    for (const fn of this.observers) {
      try { fn(e) } catch {}
    }
  }

  private start (volume: number, region: number, cause: FetchCause, first: First | undefined): Flight {
    const key = `${volume}:${region}`
    const f: Flight = { volume, region, cause, have: [], waiters: [], done: Promise.resolve(), abort: new AbortController(), bytes: 0 }
    this.flights.set(key, f)
    f.done = this.run(f, first).then(() => {
      for (const w of f.waiters) w.resolve()
    }, (err: Error) => {
      for (const w of f.waiters) w.reject(err)
      throw err
    }).finally(() => {
      this.flights.delete(key)
    })
    f.done.catch(() => {})
    return f
  }

  private async run (f: Flight, firstAsked: First | undefined): Promise<void> {
    // An attempt in progress at the deadline (a peer that stalls rather
    // than refuses) is cut there too.
    const cut = setTimeout(() => f.abort.abort(new VolmirrorError('TIMEOUT', `no answer within --fetch-timeout (${this.opts.timeoutMs} ms)`)), this.opts.timeoutMs + 50)
    try {
      await this.attempts(f, firstAsked)
    } finally {
      clearTimeout(cut)
    }
  }

  private async attempts (f: Flight, firstAsked: First | undefined): Promise<void> {
    let first = firstAsked
    const deadline = Date.now() + this.opts.timeoutMs
    const startedAt = performance.now()
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new VolmirrorError('CLOSED', 'the DR is shutting down')
      if (this.replica.present(f.volume, f.region)) return
      const v = this.volumes.byIdOf(f.volume)
      if (!v) throw new VolmirrorError('NOT_FOUND', 'the volume was deleted while being fetched')
      // Hydration may be comparing this region (a flight of a few ms): wait
      // for it rather than fail; it may well make the region present.
      if (this.replica.rule.inFlight(regionKey(f.volume, f.region))) {
        if (Date.now() > deadline) throw new VolmirrorError('TIMEOUT', `region ${f.region} of ${v.name} stayed busy`)
        await new Promise(resolve => setTimeout(resolve, 2))
        attempt--
        continue
      }
      const token = this.replica.beginFetch(f.volume, f.region)
      try {
        await this.once(f, token, v.name, first)
        if (this.replica.fetchEnd(token, true)) {
          this.counters.fetches++
          this.fetched(f, startedAt, true)
          return
        }
        // Abandoned (a truncate changed the region meanwhile): fetch it again.
      } catch (err) {
        this.replica.fetchEnd(token, false)
        f.have = []
        if (this.closed) throw new VolmirrorError('CLOSED', 'the DR is shutting down')
        // A write landed in the region while it streamed: fetch it again at once.
        // Without `first` the primary reads the region in one piece, and a
        // region written all the time is then read where writes cannot interleave.
        if (isVolmirrorError(err, 'REGION_CHANGED') && Date.now() < deadline) {
          this.counters.changed++
          first = undefined
          attempt--
          continue
        }
        // Retries go on until the deadline itself, the last one at it: the
        // read fails after --fetch-timeout, not at the last backoff before.
        const left = deadline - Date.now()
        const wait = Math.min(left, Math.min(2000, 50 * 2 ** attempt) * (0.5 + Math.random()))
        if (left <= 0) {
          this.counters.failures++
          this.fetched(f, startedAt, false)
          this.log.error('fetch.failed', { volume: v.name, region: f.region, attempts: attempt + 1, err })
          throw new VolmirrorError('PEER_UNREACHABLE', `cannot fetch region ${f.region} of ${v.name} from the primary: ${(err as Error).message}`, { cause: err })
        }
        this.counters.retries++
        if (attempt === 0) this.log.warn('fetch.retrying', { volume: v.name, region: f.region, err })
        await new Promise(resolve => setTimeout(resolve, wait))
      }
    }
  }

  private async once (f: Flight, token: FetchToken, name: string, first: First | undefined): Promise<void> {
    try {
      await this.stream(f, token, name, first)
      const g = f.gathered
      if (g && g.pending.length > 0) {
        g.writing = true
        for (const [s, e] of g.pending) await this.opts.writer!.write(token, s, g.buf.subarray(s - g.start, e - g.start))
        g.pending = []
      }
    } finally {
      const g = f.gathered
      f.gathered = undefined
      if (g) this.pool.give(g.buf)
    }
    // Done: the region may end before the region size (end of file), and
    // whatever a reader asked for past it reads as end of file.
    addRange(f.have, f.region * this.replica.regionSize, (f.region + 1) * this.replica.regionSize)
  }

  private async stream (f: Flight, token: FetchToken, name: string, first: First | undefined): Promise<void> {
    let known = false
    let moved = false
    let crc = 0
    let sum: number | undefined
    const rs = this.replica.regionSize
    await this.service.fetchRegion(name, f.region, {
      begin: (asOf, _size, birth) => {
        const v = this.volumes.byIdOf(f.volume)
        // The name means another volume on the primary now (renamed, then
        // created again): these are not our bytes. Retry once caught up.
        if (!v || !sameVolume(v, birth)) { moved = true; return }
        known = this.replica.fetchKnown(token, asOf)
        // Gathered only within the image's size: growing it is the main thread's.
        if (known && f.cause === 'hydrate' && this.opts.writer && (f.region + 1) * rs <= this.replica.imageSize(f.volume)) {
          f.gathered = { token, start: f.region * rs, buf: this.pool.take(), pending: [], writing: false }
        }
      },
      data: (offset, chunk) => {
        if (!known) return
        crc = crc32(chunk, crc)
        if (f.cause === 'read') this.counters.readBytes += chunk.length
        else this.counters.hydrateBytes += chunk.length
        f.bytes += chunk.length
        const g = f.gathered
        if (g) {
          g.buf.set(chunk, offset - g.start)
          addRange(g.pending, offset, offset + chunk.length)
          return
        }
        this.replica.fetchData(token, { offset, data: chunk })
        addRange(f.have, offset, offset + chunk.length)
        this.wake(f)
      },
      end: (crc32) => { sum = crc32 },
    }, { ...(first !== undefined ? { first: first.at, firstLength: first.length } : {}), signal: f.abort.signal })
    if (moved) throw new VolmirrorError('INCONSISTENT', `${name} names another volume on the primary now; waiting for the DR to catch up with the rename`)
    if (known && sum !== undefined && sum !== crc) {
      // The bytes written are not what the primary sent: the region stays
      // absent (the flight fails) and is fetched again.
      this.counters.corrupt++
      throw new VolmirrorError('RECORD_CORRUPT', `region ${f.region} of ${name} arrived corrupted (CRC mismatch)`)
    }
  }

  /**
   * ungather turns a hydration flight a reader has joined into a reader's:
   * what it gathered so far is written now, on the main thread, and the
   * rest as it arrives. Once the writer has the bytes, the reader waits.
   */
  private ungather (f: Flight): void {
    const g = f.gathered
    if (!g || g.writing) return
    f.gathered = undefined
    for (const [s, e] of g.pending) {
      this.replica.fetchData(g.token, { offset: s, data: g.buf.subarray(s - g.start, e - g.start) })
      addRange(f.have, s, e)
    }
    this.pool.give(g.buf)
    this.wake(f)
  }

  private wake (f: Flight): void {
    const still: Waiter[] = []
    for (const w of f.waiters) {
      if (covered(f.have, w.start, w.end)) w.resolve()
      else still.push(w)
    }
    f.waiters = still
  }
}

function addRange (ranges: Array<[number, number]>, s: number, e: number): void {
  if (e <= s) return
  ranges.push([s, e])
  ranges.sort((a, b) => a[0] - b[0])
  let w = 0
  for (let i = 1; i < ranges.length; i++) {
    const cur = ranges[w]!
    const nx = ranges[i]!
    if (nx[0] <= cur[1]) cur[1] = Math.max(cur[1], nx[1])
    else ranges[++w] = nx
  }
  ranges.length = w + 1
}

function covered (ranges: Array<[number, number]>, s: number, e: number): boolean {
  for (const [a, b] of ranges) if (a <= s && b >= e) return true
  return false
}
