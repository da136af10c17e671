/**
 * follower: a DR following its primary's journal (DESIGN "Shipping").
 *
 * The loop: register (once; again after a RESYNC_REQUIRED), then wait for
 * groups with a long poll. Every batch is checked (CRC of every record, seqs
 * contiguous: lib/replication/group-frame.ts), stored whole in the DR's own
 * journal and made durable, and, once everything up to the batch's group
 * boundary is stored, applied all at once under the apply lock (readers of
 * the mount never see half a group), recorded, and acknowledged. A DR crash
 * mid-group finishes it at restart (replay), so the images are always at a
 * group boundary.
 *
 * When the primary cannot be reached the loop retries with exponential
 * backoff and jitter; reads of present regions keep working meanwhile.
 */
import type { JournalRecord } from '../core/record.js'
import { isVolmirrorError, VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import type { GroupBatch, PrimaryService, RegisterReply, Registration, ResyncPlan } from '../replication/protocol.js'
import type { Journal } from '../store/journal.js'
import type { StateStore } from '../store/state-store.js'
import type { ApplyLock } from './apply-lock.js'

/** isLocalFailure tells a failure of this DR's own disk from one of the link or the primary. */
function isLocalFailure (err: unknown): boolean {
  const code = (err as VolmirrorError)?.code
  return code === 'NO_SPACE' || code === 'IO_ERROR' || code === 'READ_ONLY' || code === 'PERMISSION_DENIED'
}

/** FollowState is persisted in meta `dr`. */
export interface FollowState {
  primaryId: string
  /** Last seq applied to the images (a group boundary). */
  appliedSeq: number
  /** Seq the DR started following at, and whether its initial sync (hydration) was asked for. */
  startSeq: number
}

/** Lag is what status shows about replication delay. */
export interface Lag {
  /** The primary's last seq as last heard (null before the DR heard from it). */
  primaryLastSeq: number | null
  /** Seqs the DR has not applied yet. */
  seq: number
  /**
   * What a failover now could lose, at most (the RPO), seconds: the age of
   * the oldest write the DR knows it has not applied, or the time since the
   * primary last told it where it is, whichever is more (anything written
   * since may be missing; the primary answers at least every heartbeat).
   * null before the DR heard from its primary at all: unknown.
   */
  seconds: number | null
  /** Age of the oldest write the DR knows it has not applied, seconds. */
  pendingSeconds: number
  /** When the primary last answered (ms, local clock), and whether the link is up. */
  lastContact: number
  connected: boolean
  lastError?: string
  /** Set while the primary refuses this DR for a split brain. */
  splitBrain?: string
  /** Set while applying is stalled by a local failure (disk full): the DR keeps the group and retries. */
  stalled?: string
  /** Set when the link is down: `seconds` is then a lower bound (time since the primary last answered). */
  estimated?: boolean
}

/** FollowerHooks let the node react to registration and applied groups. */
export interface FollowerHooks {
  /** What the DR tells the primary about itself beyond its identity (history, last seq, where it would serve). */
  registration: () => Promise<Partial<Registration>>
  /** Called when the primary says the DR must compare everything (new DR, or records gone). */
  fullSync: (reply: RegisterReply) => Promise<void>
  /**
   * Called when the primary dropped records this DR had not acknowledged
   * (journal limit): mark the regions they touched (and those of records
   * stored but not applied here) absent, reconcile the volumes; the journal
   * then continues from `plan.fromSeq`.
   */
  resync: (plan: ResyncPlan) => Promise<void>
  /** Called (synchronously, under the apply lock) to apply one record. */
  apply: (rec: JournalRecord) => void
  /** Called after a group is applied up to `seq`, its last record written at `ts` (the primary's clock). */
  applied?: (seq: number, ts: number) => void
}

/** Follower runs the shipping loop of a DR. */
export class Follower {
  state: FollowState | undefined
  private running = false
  private loop: Promise<void> | undefined
  private abort = new AbortController()
  private pending: JournalRecord[] = []
  /** Releases of lent batches whose records are still pending (see GroupBatch.release). */
  private lent: Array<() => void> = []
  private readonly lag: Lag = { primaryLastSeq: null, seq: 0, seconds: null, pendingSeconds: 0, lastContact: 0, connected: false }
  /** Age of the oldest pending write as the primary saw it at its last answer (ms), and when that answer came. */
  private pendingAgeMs = 0
  private pendingAgeAt = 0
  /** The primary's time of the last record applied (ms), once one was. */
  lastAppliedTs: number | undefined
  /** Groups applied, records and bytes received. */
  readonly counters = { groups: 0, records: 0, bytes: 0, reconnects: 0, resyncs: 0 }

  constructor (
    private readonly service: PrimaryService,
    private readonly store: StateStore,
    private readonly journal: Journal,
    private readonly lock: ApplyLock,
    private readonly log: Logger,
    private readonly hooks: FollowerHooks,
    private readonly opts: { waitMs?: number, maxBytes?: number } = {},
  ) {}

  /** load reads the persisted follow state. */
  async load (): Promise<FollowState | undefined> {
    this.state = await this.store.getMeta<FollowState>('dr')
    return this.state
  }

  /** appliedSeq is the last group boundary applied. */
  get appliedSeq (): number { return this.state?.appliedSeq ?? 0 }

  start (): void {
    if (this.running) return
    this.running = true
    this.abort = new AbortController()
    this.loop = this.run()
  }

  async stop (): Promise<void> {
    this.running = false
    this.abort.abort()
    await this.loop
  }

  /** lagNow reports the replication lag as of now. */
  lagNow (): Lag {
    const now = Date.now()
    // From the applied seq as of now: a group applied since the primary's
    // last answer (its acknowledgement still on the way) is no longer lag.
    const seq = this.lag.primaryLastSeq === null ? 0 : Math.min(this.lag.seq, Math.max(0, this.lag.primaryLastSeq - this.appliedSeq))
    // Aged from the last answer (which may also say what an upstream DR lacks of its primary).
    const pendingSeconds = this.pendingAgeMs > 0 ? Math.max(0, (this.pendingAgeMs + now - this.pendingAgeAt) / 1000) : 0
    if (this.lag.lastContact === 0) return { ...this.lag, seq, pendingSeconds, seconds: null, estimated: true }
    // Whatever the primary wrote since it last answered may be missing:
    // the bound is at least the silence (pessimistic, as a DR should be).
    const seconds = Math.max(pendingSeconds, (now - this.lag.lastContact) / 1000)
    return { ...this.lag, seq, pendingSeconds, seconds, ...(this.lag.connected ? {} : { estimated: true }) }
  }

  private async run (): Promise<void> {
    let failures = 0
    while (this.running) {
      try {
        if (!this.registered) await this.register()
        await this.pollOnce()
        failures = 0
      } catch (err) {
        if (!this.running) return
        this.lag.connected = false
        this.lag.lastError = (err as Error).message
        if (isVolmirrorError(err, 'SPLIT_BRAIN')) {
          if (this.lag.splitBrain === undefined) this.log.error('follow.split_brain', { err })
          this.lag.splitBrain = (err as Error).message
        }
        if (isVolmirrorError(err, 'NOT_REGISTERED')) {
          // The primary forgot this DR (its state was reset): register again.
          this.log.warn('follow.not_registered', { err })
          this.registered = false
          continue
        }
        if (isVolmirrorError(err, 'RESYNC_REQUIRED')) {
          this.log.warn('follow.resync_required', { err })
          try {
            await this.resync()
          } catch (e) {
            // No plan (the records are simply gone): compare everything.
            this.log.warn('follow.full_sync_needed', { err: e })
            this.registered = false
            this.forceFullSync = true
          }
          continue
        }
        failures++
        // From 50 ms, doubling up to 10 s: a primary back after a restart (a second or so) is found again at once.
        const wait = Math.min(10_000, 25 * 2 ** Math.min(failures, 9)) * (0.5 + Math.random())
        if (isLocalFailure(err)) {
          // The DR's own disk (full, failing): the group stays stored and is
          // applied again once it can be; the link is fine.
          this.lag.connected = true
          if (this.lag.stalled === undefined) this.log.error('follow.apply_stalled', { err, note: 'the group is kept and applied again when this is fixed' })
          this.lag.stalled = `${(err as VolmirrorError).code}: ${(err as Error).message}`
        } else {
          this.counters.reconnects++
          if (failures === 1 || failures % 20 === 0) this.log.warn('follow.primary_unreachable', { err, retryInMs: Math.round(wait), failures })
          this.registered = false
        }
        await new Promise<void>(resolve => {
          const t = setTimeout(resolve, wait)
          this.abort.signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
        })
      }
    }
  }

  private registered = false
  private forceFullSync = false

  /** requireFullSync makes the next registration start over (compare everything). */
  requireFullSync (): void {
    this.forceFullSync = true
    this.registered = false
  }

  private async register (): Promise<void> {
    const id = this.store.identity
    const resume = this.state && !this.forceFullSync ? { appliedSeq: this.journal.lastSeq } : {}
    const reply = await this.service.register({ ...await this.hooks.registration(), nodeId: id.nodeId, epoch: id.epoch, regionSize: id.regionSize, ...resume })
    this.lag.splitBrain = undefined
    if (this.state && this.state.primaryId !== reply.primaryId && !this.forceFullSync && !reply.fullSync) {
      throw new VolmirrorError('PEER_PROTOCOL', `this DR followed primary ${this.state.primaryId}, not ${reply.primaryId}`)
    }
    this.lag.connected = true
    this.lag.lastError = undefined
    this.lag.lastContact = Date.now()
    if (reply.fullSync) {
      // Start over from the primary's current position: everything is
      // compared (hydration); the journal restarts at startSeq.
      this.pending = []
      this.giveBack()
      // The node looks at what it holds first (an old primary reports the
      // records it is about to discard), then the journal starts over.
      await this.hooks.fullSync(reply)
      await this.journal.restartAt(reply.startSeq)
      this.state = { primaryId: reply.primaryId, appliedSeq: reply.startSeq, startSeq: reply.startSeq }
      await this.store.putMeta('dr', this.state, true)
      this.forceFullSync = false
      this.log.info('follow.full_sync', { primary: reply.primaryId, startSeq: reply.startSeq })
    } else {
      this.log.info('follow.resumed', { primary: reply.primaryId, appliedSeq: this.appliedSeq })
    }
    this.registered = true
  }

  private async resync (): Promise<void> {
    const plan = await this.service.resync(this.store.identity.nodeId)
    this.pending = []
    this.giveBack()
    await this.hooks.resync(plan)
    await this.journal.restartAt(plan.fromSeq)
    this.state = { ...this.state!, appliedSeq: plan.fromSeq }
    await this.store.putMeta('dr', this.state, true)
    this.counters.resyncs++
    this.log.info('follow.resyncing', { fromSeq: plan.fromSeq, dirtyVolumes: plan.dirty.length, dirtyRegions: plan.dirty.reduce((n, d) => n + d.regions.length, 0) })
  }

  private async pollOnce (): Promise<void> {
    const id = this.store.identity
    const after = Math.max(this.journal.lastSeq, this.appliedSeq)
    const batch = await this.service.groups({
      nodeId: id.nodeId, after, waitMs: this.opts.waitMs ?? 10_000, maxBytes: this.opts.maxBytes ?? 16 * 1024 * 1024, signal: this.abort.signal,
    })
    this.lag.connected = true
    this.lag.lastError = undefined
    this.lag.lastContact = Date.now()
    this.lag.primaryLastSeq = batch.lastSeq
    if (batch.records.length > 0) {
      // Stored whole and durable before anything of it is applied or acknowledged.
      await this.journal.storeAll(batch.records, true)
      for (const r of batch.records) { this.counters.records++; this.counters.bytes += r.bytes.length }
      this.pending.push(...batch.records)
      // Sync mode: fsyncs on the primary wait for this; say it before applying.
      if (batch.syncWanted) this.sendAck(this.appliedSeq, this.journal.lastSeq)
    }
    if (batch.release) this.lent.push(batch.release)
    try {
      if (this.journal.lastSeq >= batch.groupEnd && batch.groupEnd > this.appliedSeq) await this.applyGroup(batch.groupEnd)
    } finally {
      this.giveBack()
    }
    this.noteLag(batch)
  }

  /** giveBack returns lent batch buffers once no record of theirs is pending. */
  private giveBack (): void {
    if (this.pending.length > 0) return
    for (const r of this.lent) r()
    this.lent = []
  }

  private async applyGroup (end: number): Promise<void> {
    const records = this.pending.filter(r => r.seq > this.appliedSeq && r.seq <= end)
    if (records.length === 0 || records[0]!.seq !== this.appliedSeq + 1) {
      // Records stored before a restart: read them back.
      records.splice(0, records.length, ...await this.journal.read(this.appliedSeq, { upto: end, unindexed: true }))
    }
    await this.lock.write(() => {
      for (const r of records) this.hooks.apply(r)
    })
    this.pending = this.pending.filter(r => r.seq > end)
    this.state = { ...this.state!, appliedSeq: end }
    await this.store.putMeta('dr', this.state)
    this.counters.groups++
    if (this.lag.stalled !== undefined) {
      this.log.info('follow.apply_resumed', { appliedSeq: end })
      this.lag.stalled = undefined
    }
    this.lastAppliedTs = records.at(-1)?.ts ?? Date.now()
    this.hooks.applied?.(end, this.lastAppliedTs)
    this.sendAck(end)
  }

  /**
   * sendAck tells the primary what is applied (and, in sync mode, stored)
   * without waiting for the answer: the next long poll goes out at once, so
   * a group closed meanwhile (an fsync in sync mode) finds it waiting. A
   * lost acknowledgement is covered by the next one, and the poll itself
   * says what is stored.
   */
  private sendAck (applied: number, stored?: number): void {
    this.service.ack(this.store.identity.nodeId, applied, stored).catch(err => { this.log.debug('follow.ack_failed', { err }) })
  }

  // The RPO: how old the oldest write the DR does not have is. Measured on
  // the primary's clock (its answer's time minus that write's timestamp), so
  // clocks need not agree, and aged locally until the next answer.
  private noteLag (b: GroupBatch): void {
    this.lag.seq = Math.max(0, b.lastSeq - this.appliedSeq)
    this.pendingAgeMs = b.oldestPendingTs > 0 ? Math.max(0, b.time - b.oldestPendingTs) : 0
    this.pendingAgeAt = Date.now()
  }
}
