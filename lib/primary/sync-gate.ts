/**
 * sync-gate: synchronous replication (RPO 0), the primary's side.
 *
 * In sync mode an `fsync` on the primary's mount returns only once every
 * DR in sync holds the records it covers durably (stored and fdatasynced
 * in its own journal: DRBD's protocol C). The DRs tell the primary what
 * they hold durably with every poll (`after`) and acknowledgement
 * (`stored`); the gate releases every waiting fsync whose seq they all
 * cover, so many fsyncs share one round trip.
 *
 * When a DR does not confirm within `timeoutMs` the user's fallback applies:
 *
 *   - `async`: the DR drops out of sync (said loudly: log, status, metric)
 *     and writers go on without it; it is back in sync once it holds
 *     everything the primary had closed when it last answered it.
 *   - `block`: writers wait, as long as it takes; nothing is given up
 *     without an operator (who can also forget the DR).
 *
 * Pure bookkeeping with timers; no I/O. Which DRs exist comes from the
 * replication source (`drs`).
 */
import { VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'

/** SyncFallback is what happens when a DR does not confirm in time. */
export type SyncFallback = 'async' | 'block'

/** SyncOptions configure a {@link SyncGate}. */
export interface SyncOptions {
  fallback: SyncFallback
  /** How long an fsync waits for a DR before the fallback applies. */
  timeoutMs: number
}

/** SyncState is the gate's state as status shows it. */
export type SyncState = 'in-sync' | 'degraded' | 'blocked' | 'no-dr'

/** SyncStatus is what status and metrics show of sync mode. */
export interface SyncStatus {
  fallback: SyncFallback
  timeoutMs: number
  state: SyncState
  /** Since when the state holds (ISO time). */
  since: string
  /** fsyncs waiting now, and the longest wait so far (s) of those. */
  waiting: number
  oldestWaitSeconds: number
  /** fsyncs released, and how long they waited for DRs in all (s). */
  released: number
  waitSeconds: number
  /** Times a DR dropped out of sync (async fallback). */
  degradations: number
  drs: Array<{ nodeId: string, storedSeq: number, inSync: boolean, outSince?: string }>
}

interface Waiter { seq: number, at: number, resolve: () => void, reject: (e: Error) => void }

interface DrSync {
  storedSeq: number
  inSync: boolean
  outSince?: string
  /** The end of the last batch it was sent that held everything there was (it is caught up once it stored that). */
  offered?: number
}

/** SyncGate holds fsyncs until the DRs in sync hold their records durably. */
export class SyncGate {
  private readonly drs = new Map<string, DrSync>()
  private waiters: Waiter[] = []
  private timer: NodeJS.Timeout | undefined
  private state: SyncState = 'no-dr'
  private since = new Date().toISOString()
  private readonly counters = { released: 0, waitSeconds: 0, degradations: 0 }
  private closed = false

  constructor (
    readonly opts: SyncOptions,
    private readonly log: Logger,
    /** The primary's last seq now (a DR holding it is caught up). */
    private readonly lastSeq: () => number,
  ) {}

  /** wanted tells whether fsyncs are waiting (a DR should confirm what it stored at once). */
  get wanted (): boolean {
    return this.waiters.length > 0
  }

  /** register adds a DR, in sync from `storedSeq` (where it starts following), or updates it. */
  register (nodeId: string, storedSeq: number): void {
    const d = this.drs.get(nodeId)
    if (d) d.storedSeq = Math.max(d.storedSeq, storedSeq)
    else this.drs.set(nodeId, { storedSeq, inSync: true })
    this.settle()
  }

  /** forget drops a DR (it was forgotten by the operator): nobody waits for it any more. */
  forget (nodeId: string): void {
    this.drs.delete(nodeId)
    this.settle()
  }

  /** offered notes that a DR was just sent everything up to `seq`, the newest group there was. */
  offered (nodeId: string, seq: number): void {
    const d = this.drs.get(nodeId)
    if (d) d.offered = seq
  }

  /** stored notes that a DR holds every record up to `seq` durably. */
  stored (nodeId: string, seq: number): void {
    const d = this.drs.get(nodeId)
    if (!d) return
    if (seq > d.storedSeq) d.storedSeq = seq
    // Back in sync once it holds all there was when it was last answered.
    if (!d.inSync && (d.storedSeq >= this.lastSeq() || (d.offered !== undefined && d.storedSeq >= d.offered))) {
      d.inSync = true
      delete d.outSince
      this.log.info('sync.resumed', { dr: nodeId, seq: d.storedSeq, note: 'the DR holds everything again: fsyncs wait for it' })
    }
    this.settle()
  }

  /**
   * wait resolves once every DR in sync holds `seq` durably (at once
   * without DRs); with the async fallback, at the latest after the timeout.
   */
  wait (seq: number): Promise<void> {
    if (this.closed) return Promise.reject(new VolmirrorError('CLOSED', 'the primary is shutting down'))
    if (this.covered(seq)) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ seq, at: performance.now(), resolve, reject })
      this.settle()
    })
  }

  /** close fails every waiting fsync (the node is stopping). */
  close (): void {
    this.closed = true
    clearTimeout(this.timer)
    for (const w of this.waiters.splice(0)) w.reject(new VolmirrorError('CLOSED', 'the primary is shutting down'))
  }

  /** status is what status shows. */
  status (): SyncStatus {
    const now = performance.now()
    return {
      fallback: this.opts.fallback,
      timeoutMs: this.opts.timeoutMs,
      state: this.state,
      since: this.since,
      waiting: this.waiters.length,
      oldestWaitSeconds: this.waiters.length > 0 ? (now - Math.min(...this.waiters.map(w => w.at))) / 1000 : 0,
      ...this.counters,
      drs: [...this.drs].map(([nodeId, d]) => ({ nodeId, storedSeq: d.storedSeq, inSync: d.inSync, ...(d.outSince ? { outSince: d.outSince } : {}) })),
    }
  }

  /** covered tells whether every DR in sync holds `seq`. */
  private covered (seq: number): boolean {
    for (const d of this.drs.values()) if (d.inSync && d.storedSeq < seq) return false
    return true
  }

  /** settle releases what is covered, applies the fallback to what waited too long, and sets the state. */
  private settle (): void {
    const now = performance.now()
    if (this.opts.fallback === 'async') {
      const late = this.waiters.filter(w => now - w.at >= this.opts.timeoutMs)
      if (late.length > 0) {
        const seq = Math.min(...late.map(w => w.seq))
        for (const [nodeId, d] of this.drs) {
          if (!d.inSync || d.storedSeq >= seq) continue
          d.inSync = false
          d.outSince = new Date().toISOString()
          this.counters.degradations++
          this.log.error('sync.degraded', {
            dr: nodeId, storedSeq: d.storedSeq, waitedMs: Math.round(this.opts.timeoutMs),
            note: 'the DR did not confirm in time: writes go on WITHOUT it (RPO 0 is lost until it catches up)',
          })
        }
      }
    }
    const still: Waiter[] = []
    for (const w of this.waiters) {
      if (!this.covered(w.seq)) { still.push(w); continue }
      this.counters.released++
      this.counters.waitSeconds += (now - w.at) / 1000
      w.resolve()
    }
    this.waiters = still
    this.setState(now)
    clearTimeout(this.timer)
    this.timer = undefined
    if (this.waiters.length > 0 && !this.closed) {
      // Look again when the oldest waiter times out, then (block) every
      // second to keep the blocked state's figures current.
      const oldest = Math.min(...this.waiters.map(w => w.at))
      const due = oldest + this.opts.timeoutMs - now
      const next = due > 0 ? due : this.opts.fallback === 'async' ? 1 : 1000
      this.timer = setTimeout(() => this.settle(), next)
      this.timer.unref()
    }
  }

  private setState (now: number): void {
    let state: SyncState
    if (this.drs.size === 0) state = 'no-dr'
    else if ([...this.drs.values()].some(d => !d.inSync)) state = 'degraded'
    else if (this.waiters.some(w => now - w.at >= this.opts.timeoutMs)) state = 'blocked'
    else state = 'in-sync'
    if (state === this.state) return
    if (state === 'blocked') this.log.error('sync.blocked', { note: `a DR has not confirmed for ${this.opts.timeoutMs / 1000} s: writers wait (--sync-fallback block)` })
    if (this.state === 'blocked' && state === 'in-sync') this.log.info('sync.unblocked', {})
    this.state = state
    this.since = new Date().toISOString()
  }
}
