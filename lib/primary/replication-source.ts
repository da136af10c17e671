/**
 * replication-source: the primary's side of shipping (DESIGN "Shipping").
 *
 * Groups: every `groupMs` the source closes a group: it flushes the
 * journal's index, makes the journal durable if any DR is registered (a DR
 * must never hold records its primary could lose in a power failure), and
 * moves `groupEnd` to the last indexed seq. Any prefix of the journal is a
 * crash-consistent point (writes are journaled in the order the kernel
 * completed them), so a group is simply "everything up to groupEnd".
 *
 * DRs register once (the registry is persisted); from then on the primary
 * keeps every record after the DR's start until it acknowledges it. A DR
 * waits for groups with a long poll whose `after` is also its
 * acknowledgement. Trimming (by the node, at checkpoints) never passes the
 * lowest acknowledgement.
 *
 * A DR serves downstream DRs with the same class (a cascade, A -> B -> C):
 * its journal holds the primary's records under the primary's seqs, its
 * groups end where it has applied (the primary's group boundaries, so C is
 * always crash-consistent too: `closeAt`), a region it lacks is fetched
 * from upstream before it is read (`prepare`), and the primary's position
 * stands for its own in what downstream DRs see of their lag (`upstream`).
 */
import { VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import type { ImageDir } from '../store/image-dir.js'
import type { Journal } from '../store/journal.js'
import type { BinaryLevel, JsonLevel, StateStore } from '../store/state-store.js'
import { CHUNK_BYTES, RegionBitmap } from '../core/region-map.js'
import type { RegionCodes } from '../store/region-codes.js'
import { LIMITS, type DirtyVolume, type FetchRegionOptions, type ResyncPlan, type GroupBatch, type GroupRequest, type NodeInfo, type PrimaryService, type RegionInfoList, type RegionSink, type RegisterReply, type Registration, type VolumeList, type VolumeInfo } from '../replication/protocol.js'
import { compareHistories, type History } from '../core/history.js'
import type { RegionReader } from './region-reader.js'
import { checkVolumeName } from '../core/volume-name.js'
import type { SyncGate } from './sync-gate.js'

/** DrRecord is what the primary remembers of one DR. */
export interface DrRecord {
  nodeId: string
  epoch: number
  /** Records after this seq are kept for it. */
  startSeq: number
  /** Everything up to here is durably applied on the DR. */
  ackedSeq: number
  registeredAt: string
  lastSeenAt: string
  /** Where the DR serves once promoted (for switchovers and split-brain checks). */
  listenUrl?: string
  /**
   * Set when records the DR had not acknowledged were dropped (the journal
   * outgrew its limit): everything up to here is represented by the DR's
   * dirty bitmap instead, until it has resynced.
   */
  droppedThrough?: number
  /** 'archive' for the journal archive (not a DR); absent for a DR. */
  kind?: 'archive'
}

/** SplitBrain records a split brain this primary detected. */
export interface SplitBrain {
  peer: string
  reason: string
  at: string
}

interface Waiter { after: number, wake: () => void }

/** Births says which volume a name means (the seq of the record that bound it; lib/primary/name-births.ts). */
export interface Births { of (name: string): number }

/** ReplicationSource implements PrimaryService in the primary's process. */
export class ReplicationSource implements PrimaryService {
  private groupEnd = 0
  /**
   * The group boundaries closed recently, ascending (the last is groupEnd).
   * A batch cut by its byte budget is cut further back to the last boundary
   * it holds, so a DR that is behind applies group after group as they
   * arrive instead of storing everything until it reaches the newest one.
   */
  private boundaries: number[] = []
  private timer: NodeJS.Timeout | undefined
  private ticking: Promise<void> = Promise.resolve()
  private waiters = new Set<Waiter>()
  private readonly registry = new Map<string, DrRecord>()
  private readonly drLevel: JsonLevel
  private persistTimer: NodeJS.Timeout | undefined
  /** Set when a peer showed a history this primary cannot reconcile with. */
  splitBrain: SplitBrain | undefined
  /** The primary's history (which node was primary when). */
  history: () => History = () => []
  /** Volumes changed outside the write path (see NodeInfo.flagged). */
  flagged: () => Promise<Array<{ volume: string, seq: number }>> = async () => []
  /** Region codes (checksums kept valid): answer checksum questions without reading. */
  codes: RegionCodes | undefined
  /** Bytes of records kept for DRs before the oldest are replaced by dirty bitmaps (US 6,260,124). */
  journalLimit = Infinity
  /**
   * A long poll with nothing new is answered after this long anyway: the
   * heartbeat tells a DR the primary's position, so the lag it shows is a
   * bound it can trust, and a silent link is noticed at once.
   */
  heartbeatMs = 250
  /** Cascade: where groups may end (a DR serves only what it has applied); default: what is indexed. */
  closeAt: (() => number) | undefined
  /** Cascade: makes a region present before it is read (a DR fetches what it lacks from upstream). */
  prepare: ((volume: string, first: number, count: number) => Promise<void>) | undefined
  /** Cascade: the primary's last seq as this DR heard it, and this DR's own lag bound (downstream lag includes it). */
  upstream: (() => { lastSeq: number | null, lagSeconds: number }) | undefined
  /** Per DR, per volume: regions changed by records dropped while it was away. */
  private readonly dirty = new Map<string, Map<string, RegionBitmap>>()
  private readonly dirtyLevel: BinaryLevel
  private enforcing: Promise<void> | undefined
  /** Sync mode (RPO 0): fsyncs wait until the DRs hold their records durably (see sync-gate.ts). */
  sync: SyncGate | undefined

  constructor (
    private readonly store: StateStore,
    private readonly journal: Journal,
    private readonly images: ImageDir,
    private readonly reader: RegionReader,
    private readonly births: Births,
    private readonly appliedSeq: () => number,
    private readonly log: Logger,
    private readonly groupMs = 100,
  ) {
    this.drLevel = store.json('drs')
    this.dirtyLevel = store.binary('dirty')
  }

  /** open loads the DR registry and starts closing groups. */
  async open (): Promise<void> {
    for await (const [k, v] of this.drLevel.iterator()) {
      this.registry.set(k, v as DrRecord)
      if ((v as DrRecord).kind !== 'archive') this.sync?.register(k, (v as DrRecord).ackedSeq)
    }
    for await (const [k, bytes] of this.dirtyLevel.iterator()) {
      const { nodeId, volume, chunk } = parseDirtyKey(k)
      const map = this.dirtyMap(nodeId, volume)
      map.resize(Math.max(map.length, (chunk + 1) * CHUNK_BYTES * 8))
      map.loadChunk(chunk, bytes)
    }
    this.groupEnd = Math.min(this.journal.indexedSeq, this.closeAt?.() ?? Infinity)
    this.boundary(this.groupEnd)
    // Groups close at a fixed rate (every groupMs from the last start, not
    // from the last end): a slow journal sync does not stretch the next group.
    let due = performance.now() + this.groupMs
    const tick = (): void => {
      this.timer = setTimeout(() => {
        const started = performance.now()
        this.ticking = this.closeGroup().catch(err => this.log.error('group.close_failed', { err })).finally(() => {
          due = Math.max(started, due) + this.groupMs
          if (this.timer) tick()
        })
      }, Math.max(0, due - performance.now()))
      this.timer.unref()
    }
    tick()
  }

  /** close stops closing groups, answers every waiting poll, and persists acknowledgements. */
  async close (): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    this.sync?.close()
    await this.ticking
    for (const w of this.waiters) w.wake()
    clearTimeout(this.persistTimer)
    await this.persistRegistry()
  }

  /** trimLimit is the highest seq every registered DR has acknowledged (Infinity without DRs). */
  trimLimit (): number {
    let min = Infinity
    for (const d of this.registry.values()) min = Math.min(min, d.ackedSeq)
    return min
  }

  /** drs lists the registered DRs (status); the journal archive is not one. */
  drs (): DrRecord[] {
    return [...this.registry.values()].filter(d => d.kind !== 'archive')
  }

  /**
   * forget drops a registered DR (its id, or a prefix of it that names one
   * DR): its acknowledgements no longer hold the journal back, its dirty
   * bitmap goes, sync mode stops waiting for it. A DR forgotten that comes
   * back registers again, as a new DR (full comparison).
   */
  async forget (idOrPrefix: string): Promise<DrRecord> {
    const matches = [...this.registry.keys()].filter(id => id === idOrPrefix || (idOrPrefix.length >= 4 && id.startsWith(idOrPrefix)))
    if (matches.length === 0) throw new VolmirrorError('NOT_FOUND', `no DR ${JSON.stringify(idOrPrefix)} is registered with this primary (registered: ${[...this.registry.keys()].map(k => k.slice(0, 8)).join(', ') || 'none'})`)
    if (matches.length > 1) throw new VolmirrorError('USAGE', `${JSON.stringify(idOrPrefix)} names ${matches.length} DRs (${matches.map(k => k.slice(0, 12)).join(', ')}): give more of the id`)
    const id = matches[0]!
    const rec = this.registry.get(id)!
    this.registry.delete(id)
    this.dirty.delete(id)
    this.sync?.forget(id)
    await this.drLevel.del(id)
    await this.clearDirty(id)
    this.log.warn('dr.forgotten', { dr: id, ackedSeq: rec.ackedSeq, lastSeenAt: rec.lastSeenAt, note: 'its acknowledgements no longer hold the journal; if it comes back it syncs as a new DR' })
    return rec
  }

  /** expire forgets the DRs not seen for longer than `ms` (`--dr-expire`); returns them. */
  async expire (ms: number): Promise<DrRecord[]> {
    const now = Date.now()
    const out: DrRecord[] = []
    for (const d of [...this.registry.values()]) {
      if (now - Date.parse(d.lastSeenAt) <= ms) continue
      out.push(await this.forget(d.nodeId))
    }
    return out
  }

  /** dirtyRegions counts the regions a DR must resync (0 unless it is in bitmap mode). */
  dirtyRegions (nodeId: string): number {
    let n = 0
    for (const m of this.dirty.get(nodeId)?.values() ?? []) n += m.setCount
    return n
  }

  /** dirtyMaps returns, for each DR in bitmap mode, its dirty regions of `volume` (the status page's picture). */
  dirtyMaps (volume: string): RegionBitmap[] {
    const out: RegionBitmap[] = []
    for (const vols of this.dirty.values()) {
      const m = vols.get(volume)
      if (m && m.setCount > 0) out.push(m)
    }
    return out
  }

  /**
   * enforceJournalLimit keeps the journal within `journalLimit` while DRs
   * lag: the oldest records a DR has not acknowledged are replaced, for that
   * DR, by the regions they touched, in a persisted dirty bitmap written
   * (synced) before the records may be trimmed. New writes are journaled as
   * before, so the DR follows them while it resyncs the dirty regions.
   * Called before each trim; a cut leaves half the limit of records.
   */
  enforceJournalLimit (): Promise<void> {
    if (!Number.isFinite(this.journalLimit) || this.journal.stats().bytes <= this.journalLimit) return this.enforcing ?? Promise.resolve()
    this.enforcing ??= this.cut().finally(() => { this.enforcing = undefined })
    return this.enforcing
  }

  private async cut (): Promise<void> {
    await this.journal.indexed()
    await this.dropThrough(Math.min(this.journal.cutFor(this.journalLimit / 2), this.journal.indexedSeq), 'journal limit')
  }

  /**
   * dropDamaged: records the journal holds but cannot read back (damaged on
   * disk; the images have them) are never shipped: every consumer that
   * still needs one resyncs the regions they touched instead (bitmap mode,
   * as past the journal limit), so no DR applies bad bytes or waits forever.
   */
  async dropDamaged (through: number): Promise<void> {
    this.damagedThrough = Math.max(this.damagedThrough, through)
    await this.dropThrough(through, 'damaged journal records')
  }

  /** The last damaged record found by the scrub at start (0: none): never shipped. */
  damagedThrough = 0

  /** dropThrough moves every consumer that has not acknowledged `cut` to bitmap mode: the regions of its records up to `cut` become dirty. */
  private async dropThrough (cut: number, reason: string): Promise<void> {
    const behind = [...this.registry.values()].filter(d => d.ackedSeq < cut)
    if (behind.length === 0) return
    const rs = this.store.identity.regionSize
    const entries = await this.journal.entries(Math.min(...behind.map(d => d.ackedSeq)), cut)
    const ops: Array<{ type: 'put', key: Buffer, value: Buffer, sublevel: BinaryLevel }> = []
    for (const d of behind) {
      for (const e of entries) {
        if (e.seq <= d.ackedSeq) continue
        if (e.op !== 'write' && e.op !== 'zero' && e.op !== 'truncate') continue // namespace: the DR reconciles from the listing
        const map = this.dirtyMap(d.nodeId, e.volume)
        const first = Math.floor(e.offset / rs)
        const last = e.op === 'truncate' ? first : Math.floor((e.offset + Math.max(1, e.length) - 1) / rs)
        map.setRange(first, last + 1)
      }
      for (const [volume, map] of this.dirty.get(d.nodeId) ?? []) {
        for (const c of map.takeDirtyChunks()) ops.push({ type: 'put', key: dirtyKey(d.nodeId, volume, c.chunk), value: Buffer.from(c.bytes), sublevel: this.dirtyLevel })
      }
      d.droppedThrough = Math.max(d.droppedThrough ?? 0, cut)
      d.ackedSeq = cut
    }
    // The bitmap is durable before any record it stands for can go.
    const regOps = behind.map(d => ({ type: 'put' as const, key: d.nodeId, value: d, sublevel: this.drLevel }))
    await this.store.db.batch([...ops, ...regOps] as never, { sync: true })
    for (const d of behind) {
      this.log.warn('dr.bitmap_mode', { dr: d.nodeId, droppedThrough: cut, dirtyRegions: this.dirtyRegions(d.nodeId), reason, journalLimit: this.journalLimit })
    }
  }

  private dirtyMap (nodeId: string, volume: string): RegionBitmap {
    let vols = this.dirty.get(nodeId)
    if (!vols) { vols = new Map(); this.dirty.set(nodeId, vols) }
    let m = vols.get(volume)
    if (!m) { m = new RegionBitmap(0); vols.set(volume, m) }
    return m
  }

  async resync (nodeId: string): Promise<ResyncPlan> {
    const dr = this.registry.get(nodeId)
    if (!dr) throw new VolmirrorError('NOT_REGISTERED', `DR ${nodeId} is not registered with this primary`)
    if (dr.droppedThrough === undefined) {
      throw new VolmirrorError('RESYNC_REQUIRED', 'no resync plan for this DR (its records were not dropped by the journal limit): register again for a full sync')
    }
    const dirty: DirtyVolume[] = []
    for (const [volume, map] of this.dirty.get(nodeId) ?? []) {
      const regions: number[] = []
      for (let r = map.next(0, true); r >= 0; r = map.next(r + 1, true)) regions.push(r)
      if (regions.length > 0) dirty.push({ volume, regions })
    }
    this.log.info('dr.resync_plan', { dr: nodeId, fromSeq: dr.droppedThrough, dirtyRegions: this.dirtyRegions(nodeId) })
    return { fromSeq: dr.droppedThrough, dirty, volumes: await this.volumes() }
  }

  /** currentGroupEnd is the last closed group boundary. */
  get currentGroupEnd (): number { return this.groupEnd }

  /** Called when the journal outgrew its limit: the node checkpoints (and so enforces the limit) at once. */
  onOverLimit: (() => void) | undefined

  private async closeGroup (): Promise<void> {
    if (Number.isFinite(this.journalLimit) && this.journal.stats().bytes > this.journalLimit && !this.enforcing) this.onOverLimit?.()
    if (this.journal.lastSeq <= this.groupEnd) return
    await this.journal.indexed()
    // The group ends at what is indexed now, before the sync starts: records
    // appended while it runs may not be covered by it, and a DR must never
    // hold a record its primary could lose in a crash.
    const end = Math.min(this.journal.indexedSeq, this.closeAt?.() ?? Infinity)
    if (this.registry.size > 0) await this.journal.sync()
    if (end <= this.groupEnd) return
    this.groupEnd = end
    this.boundary(end)
    for (const w of [...this.waiters]) if (w.after < end) w.wake()
  }

  // --- PrimaryService -------------------------------------------------------

  async info (): Promise<NodeInfo> {
    const id = this.store.identity
    const j = this.journal.stats()
    return {
      nodeId: id.nodeId, epoch: id.epoch, history: this.history(), role: id.role, regionSize: id.regionSize,
      lastSeq: Math.max(this.journal.lastSeq, this.upstream?.().lastSeq ?? 0), indexedSeq: this.journal.indexedSeq, groupEnd: this.groupEnd,
      firstSeq: j.firstSeq, journalBytes: j.bytes, time: Date.now(), flagged: await this.flagged(),
    }
  }

  async volumes (): Promise<VolumeList> {
    const asOf = this.appliedSeq()
    const volumes: VolumeInfo[] = (await this.images.listVolumes()).map(({ name, stats }) => ({
      name, size: stats.size, mode: stats.mode & 0o7777, mtimeMs: stats.mtimeMs, birth: this.births.of(name),
    }))
    return { asOf, volumes }
  }

  async readRange (volume: string, offset: number, length: number): Promise<{ asOf: number, size: number, data: Buffer, birth: number }> {
    checkVolumeName(volume)
    checkSpan(offset, length, LIMITS.maxRangeBytes)
    await this.mustBeFile(volume)
    if (this.prepare && length > 0) {
      const rs = this.store.identity.regionSize
      await this.prepare(volume, Math.floor(offset / rs), Math.floor((offset + length - 1) / rs) - Math.floor(offset / rs) + 1)
    }
    return await this.reader.read(volume, offset, length)
  }

  async fetchRegion (volume: string, region: number, sink: RegionSink, opts: FetchRegionOptions = {}): Promise<void> {
    checkVolumeName(volume)
    const rs = this.store.identity.regionSize
    if (!Number.isSafeInteger(region) || region < 0) throw new VolmirrorError('BAD_REQUEST', `bad region index ${region}`)
    await this.mustBeFile(volume)
    await this.prepare?.(volume, region, 1)
    await this.reader.stream(volume, region * rs, rs, opts.first === undefined ? undefined : { at: opts.first, length: opts.firstLength }, sink)
  }

  async regions (volume: string, from: number, count: number, checksums: boolean): Promise<RegionInfoList> {
    checkVolumeName(volume)
    if (!Number.isSafeInteger(from) || from < 0 || !Number.isSafeInteger(count) || count < 1 || count > LIMITS.maxRegionsPerCall) {
      throw new VolmirrorError('BAD_REQUEST', `regions: from must be >= 0 and count between 1 and ${LIMITS.maxRegionsPerCall}`)
    }
    const birth = this.births.of(volume)
    let st = await this.mustBeFile(volume)
    const rs = this.store.identity.regionSize
    if (this.prepare) {
      await this.prepare(volume, from, Math.max(0, Math.min(count, Math.ceil(st.size / rs) - from)))
      st = await this.mustBeFile(volume)
    }
    const last = Math.min(from + count, Math.ceil(st.size / rs))
    const regions = []
    for (let i = from; i < last; i++) {
      const code = this.codes?.get(volume, i)
      if (code) {
        // A valid code: the region has not changed since it was hashed, and
        // says whether it is realized without reading it.
        const { sha256, ...realized } = code
        regions.push({ index: i, length: Math.min(rs, st.size - i * rs), asOf: this.appliedSeq(), ...(checksums ? code : realized) })
        continue
      }
      const stamp = checksums ? this.codes?.stamp(volume, i) ?? 0 : 0
      const info = await this.reader.describe(volume, i, rs, checksums)
      if (checksums && this.codes) this.codes.set(volume, i, info.realized ? { realized: true, sha256: info.sha256! } : { realized: false }, stamp)
      regions.push(info)
    }
    // A rename while describing would make the answer about two volumes: say so by birth.
    return { volume, size: st.size, birth: this.births.of(volume) === birth ? birth : -1, regions }
  }

  async register (r: Registration): Promise<RegisterReply> {
    const id = this.store.identity
    if (typeof r.nodeId !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(r.nodeId)) throw new VolmirrorError('BAD_REQUEST', 'register: invalid node id')
    if (r.regionSize !== id.regionSize) {
      throw new VolmirrorError('BAD_REQUEST', `region size mismatch: the primary uses ${id.regionSize}, the DR ${r.regionSize} (initialise the DR's state directory with --region-size ${id.regionSize})`)
    }
    const known = this.registry.get(r.nodeId)
    const now = new Date().toISOString()
    const history = this.history()
    if (this.splitBrain && this.splitBrain.peer === r.nodeId && r.discardLocal) {
      this.log.warn('split_brain.resolved', { peer: r.nodeId, by: 'the peer discards its side (--discard-local)' })
      this.splitBrain = undefined
    }
    if (this.splitBrain && !r.discardLocal) throw this.refusal()
    const verdict = compareHistories(r.history ?? [], history, r.lastSeq ?? r.appliedSeq ?? 0)
    if (verdict.kind === 'split-brain') {
      this.splitBrain = { peer: r.nodeId, reason: verdict.reason, at: now }
      this.log.error('split_brain.detected', { peer: r.nodeId, reason: verdict.reason, discardLocal: r.discardLocal === true })
      if (!r.discardLocal) {
        throw new VolmirrorError('SPLIT_BRAIN', `${verdict.reason}. Nothing is replicated until an operator picks the side to overwrite: restart that node as a DR of the other with --discard-local`,
          { details: { reason: verdict.reason } })
      }
    }
    // A DR resumes if the journal still has what follows its applied seq,
    // or if what is missing is in its dirty bitmap (it will be told to resync).
    const inBitmap = known?.droppedThrough !== undefined && r.appliedSeq !== undefined && r.appliedSeq <= known.droppedThrough
    const canResume = verdict.kind === 'follow' && !r.discardLocal && known !== undefined && r.appliedSeq !== undefined &&
      ((r.appliedSeq >= this.journal.firstSeq - 1 && r.appliedSeq <= this.journal.indexedSeq) || inBitmap)
    let startSeq: number
    if (canResume) {
      startSeq = r.appliedSeq!
    } else {
      // Start a new DR at a group boundary that everything before is in.
      await this.journal.indexed()
      startSeq = Math.min(this.journal.indexedSeq, this.closeAt?.() ?? Infinity)
      this.groupEnd = Math.max(this.groupEnd, startSeq)
      this.boundary(this.groupEnd)
    }
    const rec: DrRecord = {
      nodeId: r.nodeId, epoch: r.epoch, startSeq, ackedSeq: inBitmap && canResume ? known!.ackedSeq : startSeq, registeredAt: known?.registeredAt ?? now, lastSeenAt: now,
      ...(r.listenUrl ? { listenUrl: r.listenUrl } : {}),
      ...(inBitmap && canResume ? { droppedThrough: known!.droppedThrough! } : {}),
      ...(r.kind === 'archive' ? { kind: 'archive' as const } : {}),
    }
    if (!canResume) {
      this.dirty.delete(r.nodeId)
      void this.clearDirty(r.nodeId)
    }
    this.registry.set(r.nodeId, rec)
    await this.drLevel.put(r.nodeId, rec, { sync: true } as object)
    if (r.kind !== 'archive') this.sync?.register(r.nodeId, startSeq)
    this.log.info(canResume ? 'dr.resumed' : 'dr.registered', { dr: r.nodeId, startSeq, fullSync: !canResume, verdict: verdict.kind })
    return {
      primaryId: id.nodeId, epoch: id.epoch, regionSize: id.regionSize, startSeq, fullSync: !canResume, history,
      ...(verdict.kind !== 'follow' ? { forkSeq: verdict.forkSeq } : {}),
    }
  }

  async groups (req: GroupRequest): Promise<GroupBatch> {
    if (this.splitBrain) throw this.refusal()
    const dr = this.registry.get(req.nodeId)
    if (!dr) throw new VolmirrorError('NOT_REGISTERED', `DR ${req.nodeId} is not registered with this primary (register first)`)
    if (!Number.isSafeInteger(req.after) || req.after < 0) throw new VolmirrorError('BAD_REQUEST', 'groups: bad "after"')
    if (req.after > this.groupEnd) {
      throw new VolmirrorError('PEER_PROTOCOL', `DR ${req.nodeId} claims seq ${req.after}, beyond this primary's last group ${this.groupEnd}`)
    }
    // `after` is only what the DR has stored: it acknowledges separately,
    // once a group is applied (DESIGN "Shipping"). Polling says it is alive,
    // and what it stored (durably: a DR syncs its journal before polling on).
    dr.lastSeenAt = new Date().toISOString()
    this.sync?.stored(req.nodeId, req.after)
    if (dr.droppedThrough !== undefined && req.after < dr.droppedThrough) {
      throw new VolmirrorError('RESYNC_REQUIRED', `records after ${req.after} were dropped while the DR was away (journal limit); it must resync from ${dr.droppedThrough}`,
        { details: { fromSeq: dr.droppedThrough } })
    }
    if (req.after < this.journal.firstSeq - 1) {
      throw new VolmirrorError('RESYNC_REQUIRED', `records after ${req.after} are no longer in the journal (it starts at ${this.journal.firstSeq}); the DR must resync`)
    }
    if (this.groupEnd <= req.after && (req.waitMs ?? 0) > 0) {
      await this.waitForGroup(req.after, Math.min(req.waitMs!, LIMITS.maxWaitMs, this.heartbeatMs), req.signal)
    }
    const maxBytes = Math.min(req.maxBytes ?? LIMITS.maxGroupBytes, LIMITS.maxGroupBytes)
    const end = this.groupEnd
    let records = end > req.after ? await this.journal.read(req.after, { upto: end, maxBytes, unindexed: true }) : []
    let groupEnd = Math.max(end, req.after)
    const last = records.length > 0 ? records[records.length - 1]!.seq : req.after
    if (last < end) {
      // Cut by the budget: end the batch at the last whole group it holds.
      const b = this.lastBoundaryIn(req.after, last)
      if (b !== undefined) {
        records = records.slice(0, b - req.after)
        groupEnd = b
      }
    }
    if (groupEnd >= end) this.sync?.offered(req.nodeId, groupEnd)
    const up = this.upstream?.()
    let oldestPendingTs = await this.tsOf(req.after + 1)
    // Cascade: what this DR may lack of the primary, downstream DRs lack too.
    if (up && up.lagSeconds > 0) {
      const upTs = Date.now() - up.lagSeconds * 1000
      oldestPendingTs = oldestPendingTs === 0 ? upTs : Math.min(oldestPendingTs, upTs)
    }
    return {
      after: req.after,
      records,
      groupEnd,
      lastSeq: Math.max(this.journal.lastSeq, up?.lastSeq ?? 0),
      time: Date.now(),
      oldestPendingTs,
      ...(this.sync?.wanted ? { syncWanted: true } : {}),
    }
  }

  /** boundary notes a closed group's end; boundaries no DR can still ask about are dropped. */
  private boundary (seq: number): void {
    const last = this.boundaries[this.boundaries.length - 1]
    if (last !== undefined && seq <= last) return
    this.boundaries.push(seq)
    if (this.boundaries.length > 4096) {
      const floor = Math.min(this.journal.firstSeq - 1, this.trimLimit())
      let k = 0
      while (k < this.boundaries.length - 1 && this.boundaries[k]! < floor) k++
      this.boundaries = this.boundaries.slice(Math.max(k, this.boundaries.length - 100_000))
    }
  }

  /** lastBoundaryIn is the highest group boundary in (after, upto], if any. */
  private lastBoundaryIn (after: number, upto: number): number | undefined {
    let lo = 0
    let hi = this.boundaries.length - 1
    let found: number | undefined
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const b = this.boundaries[mid]!
      if (b <= upto) { found = b; lo = mid + 1 } else hi = mid - 1
    }
    return found !== undefined && found > after ? found : undefined
  }

  async ack (nodeId: string, seq: number, stored?: number): Promise<void> {
    const dr = this.registry.get(nodeId)
    if (!dr) throw new VolmirrorError('NOT_REGISTERED', `DR ${nodeId} is not registered with this primary`)
    if (!Number.isSafeInteger(seq) || seq < 0 || seq > this.groupEnd) throw new VolmirrorError('BAD_REQUEST', `ack: bad seq ${seq}`)
    if (stored !== undefined && (!Number.isSafeInteger(stored) || stored < 0 || stored > this.groupEnd)) throw new VolmirrorError('BAD_REQUEST', `ack: bad stored seq ${stored}`)
    this.acknowledge(dr, seq)
    this.sync?.stored(nodeId, Math.max(seq, stored ?? 0))
  }

  /**
   * replicated resolves once the DRs in sync hold every record up to `seq`
   * durably (sync mode; at once otherwise). The group up to it closes now,
   * without waiting for the primary's own journal sync: the fsync that asks
   * is making those records durable here meanwhile, so both disks work at
   * once and an fsync costs about one round trip more than without a DR.
   */
  async replicated (seq: number): Promise<void> {
    const gate = this.sync
    if (!gate || this.registry.size === 0) return
    const waiting = gate.wait(seq)
    try {
      await this.closeEarly()
    } catch (err) {
      waiting.catch(() => {})
      throw err
    }
    await waiting
  }

  /**
   * closeEarly ends a group at what is appended now (sync mode, see
   * `replicated`), without waiting for the index either: `groups` reads
   * records not indexed yet from where they were appended.
   */
  private async closeEarly (): Promise<void> {
    this.journal.catchUp?.()
    const end = this.journal.lastSeq
    if (end <= this.groupEnd) return
    this.groupEnd = end
    this.boundary(end)
    for (const w of [...this.waiters]) if (w.after < end) w.wake()
  }

  private refusal (): VolmirrorError {
    const sb = this.splitBrain!
    return new VolmirrorError('SPLIT_BRAIN', `split brain with ${sb.peer.slice(0, 8)} (${sb.reason}): this node does not replicate until an operator restarts the side to overwrite as a DR of the other with --discard-local`,
      { details: { ...sb } })
  }

  private acknowledge (dr: DrRecord, seq: number): void {
    dr.lastSeenAt = new Date().toISOString()
    if (seq > dr.ackedSeq) dr.ackedSeq = seq
    if (dr.droppedThrough !== undefined && seq > dr.droppedThrough) {
      // The DR took its resync plan and went on past it: its bitmap is done.
      delete dr.droppedThrough
      this.dirty.delete(dr.nodeId)
      void this.clearDirty(dr.nodeId)
    }
    // Acknowledgements are persisted lazily: losing one only keeps a few
    // records longer (the DR acknowledges again on its next poll).
    this.persistTimer ??= setTimeout(() => { this.persistTimer = undefined; void this.persistRegistry() }, 1000)
    this.persistTimer.unref()
  }

  private async clearDirty (nodeId: string): Promise<void> {
    const prefix = Buffer.concat([Buffer.from(nodeId), Buffer.from([0])])
    await this.dirtyLevel.clear({ gte: prefix, lt: Buffer.concat([Buffer.from(nodeId), Buffer.from([1])]) }).catch(err => this.log.warn('dr.dirty_clear_failed', { err }))
    await this.persistRegistry()
  }

  private async persistRegistry (): Promise<void> {
    const ops = [...this.registry.values()].map(d => ({ type: 'put' as const, key: d.nodeId, value: d }))
    if (ops.length > 0) await this.drLevel.batch(ops).catch(err => this.log.warn('dr.registry_write_failed', { err }))
  }

  private waitForGroup (after: number, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const w: Waiter = { after, wake: () => done() }
      const timer = setTimeout(() => done(), ms)
      const done = (): void => {
        clearTimeout(timer)
        this.waiters.delete(w)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      this.waiters.add(w)
      signal?.addEventListener('abort', done)
    })
  }

  private async tsOf (seq: number): Promise<number> {
    if (seq > this.journal.lastSeq) return 0
    if (seq > this.journal.indexedSeq) return Date.now()
    const [e] = await this.journal.entries(seq - 1, seq)
    return e?.ts ?? 0
  }

  private async mustBeFile (volume: string): Promise<import('node:fs').Stats> {
    // lstat does not follow the last component, but it does follow the
    // directories above it: a symlinked directory in the image directory
    // must not lead a peer to files outside it (the listing skips it too).
    // Synchronous: metadata from the dentry cache, on every region fetch.
    const parts = volume.split('/')
    for (let i = 1; i < parts.length; i++) {
      const dir = this.images.lstatSync(parts.slice(0, i).join('/'))
      if (!dir?.isDirectory()) throw new VolmirrorError('NOT_FOUND', `${volume} is not a volume`)
    }
    const st = this.images.lstatSync(volume)
    if (!st?.isFile()) throw new VolmirrorError('NOT_FOUND', `${volume} is not a volume`)
    return st
  }
}

function dirtyKey (nodeId: string, volume: string, chunk: number): Buffer {
  const c = Buffer.allocUnsafe(4)
  c.writeUInt32BE(chunk)
  return Buffer.concat([Buffer.from(nodeId), Buffer.from([0]), Buffer.from(volume), Buffer.from([0]), c])
}

function parseDirtyKey (k: Buffer): { nodeId: string, volume: string, chunk: number } {
  const a = k.indexOf(0)
  const b = k.indexOf(0, a + 1)
  return { nodeId: k.toString('utf8', 0, a), volume: k.toString('utf8', a + 1, b), chunk: k.readUInt32BE(b + 1) }
}

function checkSpan (offset: number, length: number, max: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new VolmirrorError('BAD_REQUEST', 'offset and length must be non-negative integers')
  }
  if (length > max) throw new VolmirrorError('TOO_LARGE', `at most ${max} bytes per request`)
}

