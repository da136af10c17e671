/**
 * flight-window: how many region fetches to keep in flight so the link
 * stays full, sized to the bandwidth-delay product as it is measured.
 *
 * A fixed window of W regions moves at most W regions per round trip: 16
 * MiB per 80 ms is 200 MB/s, whatever the link could do. The window here
 * follows what the fetches themselves show, as BBR does for TCP:
 *
 *   delivery rate  bytes completed over the last `sampleMs` (at least a few
 *                  base latencies)
 *   base latency   how long a fetch takes alone: a round trip plus one
 *                  region's transfer, without queueing behind others
 *   window         gain x rate x base latency / region size, within [min, max]
 *
 * While the window is what limits, rate = W x size / latency, so the next
 * window is `gain` times larger: it grows until the link (or the primary)
 * is what limits, then holds at `gain` times the bandwidth-delay product,
 * so fetches do not pile up in the link ahead of a reader's.
 *
 * Every fetch in a full window queues behind the others, so the base
 * latency is measured alone: the first fetch of all, and every `baseTtlMs`
 * a probe (the window drops to 1 until a fetch that started with nothing
 * else in flight completes; a round trip or two of a link every 10 s).
 * A route that became slower or faster is learned at the next probe.
 *
 * Pure: the caller reports completions with their times (ms).
 */

/** FlightWindowOptions bound the window. */
export interface FlightWindowOptions {
  /** Fetches in flight at least (the fixed window this replaces). */
  min: number
  /** At most (each holds a region's buffer). */
  max: number
  /** Bytes one fetch moves (a region). */
  unit: number
  /** Window over the measured bandwidth-delay product. */
  gain?: number
  /** How long a delivery-rate sample spans, at least. */
  sampleMs?: number
  /** How long the shortest latency seen stands before it is measured again. */
  baseTtlMs?: number
}

/** FlightWindow sizes the number of fetches in flight to the measured bandwidth-delay product. */
export class FlightWindow {
  private size: number
  private readonly gain: number
  private readonly sampleMs: number
  private readonly baseTtlMs: number
  /** Fetches started and not completed or failed. */
  private inFlight = 0
  /** Completions in the current sample: bytes, and when it started. */
  private sample = { bytes: 0, since: -1 }
  private base = { ms: Infinity, at: -Infinity }
  /** While the base latency is measured: the start time of the fetch that runs alone (-1 until it starts). */
  private probe: { startedAt: number } | undefined = { startedAt: -1 }
  /** Last measured rate (bytes/ms) and base latency (ms), for status. */
  private last = { rate: 0, baseMs: 0 }

  constructor (private readonly opts: FlightWindowOptions) {
    if (!(opts.min >= 1 && opts.max >= opts.min && opts.unit > 0)) throw new RangeError('flight window: need 1 <= min <= max and unit > 0')
    this.size = opts.min
    this.gain = opts.gain ?? 2
    this.sampleMs = opts.sampleMs ?? 250
    this.baseTtlMs = opts.baseTtlMs ?? 10_000
  }

  /** window is how many fetches may be in flight now (1 while the base latency is probed, after the first). */
  get window (): number {
    return this.probe && this.base.ms !== Infinity ? 1 : this.size
  }

  /** measured is the last delivery rate (bytes/s) and base latency (ms) the window was sized from. */
  get measured (): { bytesPerSecond: number, baseLatencyMs: number } {
    return { bytesPerSecond: this.last.rate * 1000, baseLatencyMs: this.last.baseMs }
  }

  /** started reports a fetch beginning at `now` (ms); pass the same `now` to `completed`. */
  started (now: number): void {
    if (this.probe && this.probe.startedAt < 0 && this.inFlight === 0) this.probe.startedAt = now
    if (this.sample.since < 0) this.sample = { bytes: 0, since: now }
    this.inFlight++
  }

  /** completed reports one fetch: `bytes` moved, begun at `startedAt`, done at `now` (ms). */
  completed (bytes: number, startedAt: number, now: number): void {
    this.inFlight = Math.max(0, this.inFlight - 1)
    const latency = Math.max(now - startedAt, 0.05)
    if (this.probe && this.probe.startedAt === startedAt) {
      // The fetch that ran alone: its latency is the base, whatever it was before.
      this.base = { ms: latency, at: now }
      this.probe = undefined
      this.sample = { bytes: 0, since: now }
      return
    }
    if (latency < this.base.ms) this.base = { ms: latency, at: now }
    if (!this.probe && now - this.base.at > this.baseTtlMs) this.probe = { startedAt: -1 }
    if (this.sample.since < 0) return
    this.sample.bytes += bytes
    const span = now - this.sample.since
    if (span < Math.max(this.sampleMs, 4 * this.base.ms)) return
    const rate = this.sample.bytes / span
    this.last = { rate, baseMs: this.base.ms }
    const bdp = rate * this.base.ms / this.opts.unit
    this.size = Math.max(this.opts.min, Math.min(this.opts.max, Math.ceil(this.gain * bdp)))
    this.sample = { bytes: 0, since: now }
  }

  /** failed reports a fetch that ended without its bytes. */
  failed (startedAt: number): void {
    this.inFlight = Math.max(0, this.inFlight - 1)
    if (this.probe?.startedAt === startedAt) this.probe.startedAt = -1
  }

  /** idle ends a busy period: the next rate sample starts with the next fetch. */
  idle (): void {
    this.sample = { bytes: 0, since: -1 }
  }
}
