/**
 * dr-node: wires a DR together: state directory, its own journal (the
 * groups it stored), crash replay, the Replica (asOf rule) over its images,
 * the follower (shipping), the fetcher (copy-on-read), the hydrator
 * (initial sync by comparison), checkpoints, the read-only FUSE mount and
 * the control socket.
 *
 * The primary is a PrimaryService: over HTTP in production
 * (lib/http/client.ts), in process in some tests.
 */
import { constants } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { regionKey, keyVolume } from '../core/as-of.js'
import type { History } from '../core/history.js'
import { Replica } from '../core/replica.js'
import { ControlServer } from '../control/control-socket.js'
import { ApplyLock } from '../dr/apply-lock.js'
import { RegionWriter } from '../dr/region-writer.js'
import { DrApplier, keptAsideName } from '../dr/dr-applier.js'
import { discardLocal, refuseLateWrites } from '../dr/failback.js'
import { reconcile, type ReconcileContext } from '../dr/reconcile.js'
import { DrFs } from '../dr/dr-fs.js'
import { DrVolumes } from '../dr/dr-volumes.js'
import { Fetcher } from '../dr/fetcher.js'
import { Follower, type Lag } from '../dr/follower.js'
import { RecoveryHistory, type RecoveryOptions } from '../dr/recovery-history.js'
import { Hydrator, type SyncReason } from '../dr/hydrator.js'
import { Views, type ViewRequest } from '../dr/views.js'
import { RegionReader, RegionVersions } from '../primary/region-reader.js'
import { ReplicationSource } from '../primary/replication-source.js'
import { entriesAfter, rollback, type RollbackReport } from '../dr/rollback.js'
import type { RecoveryPoint } from '../dr/recovery-history.js'
import { trackVerify, verify, type VerifyProgress } from '../dr/verifier.js'
import { RegionStore } from '../dr/region-store.js'
import { ReplicaFiles } from '../dr/replica-files.js'
import { VolmirrorError } from '../errors.js'
import { FuseMount, prepareMountPoint } from '../fuse/mount.js'
import { defaultDataPath, NativeMount, tuneMemory, writeBehindNative } from '../fuse/native-path.js'
import type { Logger } from '../log.js'
import { PrimaryClient } from '../http/client.js'
import type { CompressMode, WireStatus } from '../http/compression.js'
import type { PrimaryService, RegisterReply, ResyncPlan } from '../replication/protocol.js'
import { RecordApplier } from '../store/applier.js'
import { Checkpointer } from '../store/checkpoint.js'
import { WriteBehind } from '../store/write-behind.js'
import { ImageDir } from '../store/image-dir.js'
import { Journal } from '../store/journal.js'
import { replayJournal } from '../store/replay.js'
import { StateStore } from '../store/state-store.js'
import { RegionCodes } from '../store/region-codes.js'
import { CodeKeeper } from '../store/code-keeper.js'
import { VolumeFiles } from '../store/volume-files.js'
import type { NodeOptions } from './node-options.js'
import type { Discarded, DrStatus, DrVolumeStatus } from './status.js'
export type { Discarded, DrStatus, DrVolumeStatus } from './status.js'
import { serveDr } from './observability.js'

/** DrOptions are the settings of `volmirror dr`. */
export interface DrOptions extends NodeOptions {
  primary: PrimaryService
  /** Shown in status (the primary's URL). */
  primaryLabel?: string
  /** Hydration bytes per second; 0 = fetch on demand only; Infinity = as fast as possible. */
  hydrateRate?: number
  /** How long reads of absent regions keep retrying an unreachable primary before EIO. */
  fetchTimeoutMs?: number
  readAhead?: number
  pollWaitMs?: number
  /** Where this DR will serve if promoted (told to the primary for switchovers and split-brain checks). */
  listenUrl?: string
  /** The peer token: guards what is served on `listen` (the status page and metrics, read-only, until promoted). */
  token?: string
  /** Keep the bytes of discarded writes (failback, --discard-local) here for inspection. */
  keepDiscarded?: string
  /** Give up whatever this node holds that the primary does not (resolves a split brain on this side). */
  discardLocal?: boolean
  /** Keep recovery points (point-in-time views, promote --at) within these bounds; off when unset. */
  recovery?: RecoveryOptions
}




/** DrNode is a running DR. */
export class DrNode {
  private closing: Promise<void> | undefined
  readonly startedAt = new Date()
  private primaryJournalBytes: number | undefined
  private infoTimer: NodeJS.Timeout | undefined
  private discarded: Discarded | undefined
  codes!: RegionCodes
  keeper!: CodeKeeper
  private lastResync: { fromSeq: number, dirtyRegions: number, at: string } | undefined
  private served: { url: string, close: () => Promise<void> } | undefined
  private verifyProgress: VerifyProgress | undefined
  /** The native data path (absent with --data-path js). */
  native: NativeMount | undefined
  writeBehind: WriteBehind | undefined
  /** Recovery points (absent without --history). */
  recovery: RecoveryHistory | undefined
  /** Point-in-time mounts (mount-at, test-failover). */
  views: Views | undefined
  /** What this DR serves downstream DRs (with --listen: a cascade). */
  downstream: ReplicationSource | undefined
  /** Told when this node's history (epochs) changes: downstream DRs are judged against it. */
  onHistory: ((h: History) => void) | undefined
  /** Held by group applies (and a rollback): readers never see half of one. */
  private lock!: ApplyLock

  private constructor (
    readonly opts: DrOptions,
    readonly store: StateStore,
    readonly images: ImageDir,
    readonly journal: Journal,
    readonly files: VolumeFiles,
    readonly volumes: DrVolumes,
    readonly replica: Replica,
    readonly regionStore: RegionStore,
    readonly follower: Follower,
    readonly fetcher: Fetcher,
    readonly hydrator: Hydrator,
    readonly checkpointer: Checkpointer,
    readonly mount: FuseMount,
    readonly control: ControlServer,
  ) {}

  /** start brings a DR up; on failure everything it opened is closed again. */
  static async start (opts: DrOptions): Promise<DrNode> {
    const log = opts.log
    tuneMemory()
    // Everything is checked before anything is created (state, images).
    await prepareMountPoint(opts.mount, log)
    await mkdir(opts.images, { recursive: true })
    const images = new ImageDir(opts.images)
    await images.check()
    const regionSize = opts.regionSize ?? await learnRegionSize(opts)
    // A primary's state directory is accepted: that is failback (an old
    // primary following the new one) or the second half of a switchover.
    const store = await StateStore.open(opts.state, { role: 'dr', allowRoles: ['primary'], ...(regionSize !== undefined ? { regionSize } : {}) })
    const cleanup: Array<() => Promise<void> | void> = [() => store.close()]
    try {
      const wasPrimary = store.identity.role === 'primary'
      if (wasPrimary) {
        log.info('failback.started', { state: store.dir, note: 'this node was a primary; it now follows and compares everything' })
        await store.setIdentity({ role: 'dr' })
        await store.meta.del('dr')
      }
      const journal = new Journal(store, log)
      await journal.open()
      const files = new VolumeFiles(images)
      cleanup.unshift(() => files.closeAll())
      const volumes = new DrVolumes(store)
      await volumes.load()
      const missing = await ensureImages(images, volumes, log)
      const codes = new RegionCodes(store, store.identity.regionSize)
      await codes.load()
      const history = opts.recovery ? new RecoveryHistory(store, images, log, opts.recovery) : undefined
      if (history) {
        await history.open()
        cleanup.unshift(() => history.close())
        // A node that was a primary has no recovery points of this line of history.
        if (wasPrimary) await history.reset()
      }
      // A former primary (failback) may have died with writes past its last
      // checkpoint: their codes were never cleared on disk.
      if (wasPrimary) codes.invalidateEntries(await journal.entries((await store.getMeta<number>('imageSeq')) ?? 0))
      const replicaFiles = new ReplicaFiles(images, files, volumes, codes)
      replicaFiles.history = history
      const replica = new Replica(store.identity.regionSize, replicaFiles)
      // The native data path serves reads of present regions: it mirrors
      // presence (per volume id), and which id each open image has.
      const native = (opts.dataPath ?? defaultDataPath()) === 'native' ? new NativeMount('dr', store.identity.regionSize) : undefined
      if (native) {
        cleanup.unshift(() => { native.stop(); files.detachNative(); native.close() })
        files.attachNative(native)
        replica.onTrack = (id, map) => map.attach({
          set: (from, to, on) => native.presenceSet(id, from, to, on),
          resize: n => native.presenceResize(id, n),
          load: (bits, n) => native.presenceLoad(id, bits, n),
        })
        replica.onForget = id => native.presenceDrop(id)
        volumes.onBind = (name, id) => {
          const f = files.peek(name)
          if (f && f.slot !== 0) native.setVolumeId(f.slot, id)
        }
      }
      const regionStore = new RegionStore(store)
      await regionStore.load(replica, volumes)
      const namespace = new RecordApplier(images, files, {
        zeroes: 'punch',
        deletes: rec => images.reservedPath('deleted', keptAsideName(rec.seq, rec.volume)),
      })
      const applier = new DrApplier(replica, volumes, namespace, log, codes, id => { void regionStore.forget(id) },
        history ? { history, asideOf: (seq, name) => path.relative(images.root, images.reservedPath('deleted', keptAsideName(seq, name))) } : undefined)
      const lock = new ApplyLock()
      if (native) lock.native = native
      const fetcher = new Fetcher(opts.primary, replica, volumes, log, {
        timeoutMs: opts.fetchTimeoutMs ?? 30_000,
        readAhead: opts.readAhead ?? 16,
        writer: new RegionWriter(replica, replicaFiles, lock),
      })
      let node: DrNode | undefined
      const follower = new Follower(opts.primary, store, journal, lock, log, {
        registration: async () => ({
          history: await store.history(),
          lastSeq: journal.lastSeq,
          ...(opts.listenUrl ? { listenUrl: opts.listenUrl } : {}),
          ...(opts.discardLocal ? { discardLocal: true } : {}),
        }),
        fullSync: async reply => await node!.fullSync(reply),
        resync: async plan => await node!.resync(plan),
        apply: rec => applier.apply(rec),
        applied: (seq, ts) => {
          replica.settle(seq)
          history?.applied(seq, ts, follower.state !== undefined && replica.complete(seq))
        },
      }, opts.pollWaitMs !== undefined ? { waitMs: opts.pollWaitMs } : {})
      const state = await follower.load()
      // An image that went missing cannot be trusted region by region: compare everything.
      if (missing > 0) follower.requireFullSync()
      const checkpointer = new Checkpointer(store, images, files, log, {
        appliedSeq: () => follower.appliedSeq,
        appendedBytes: () => journal.appendedBytes,
        capture: () => {
          const maps = regionStore.capture(replica, volumes)
          const sums = codes.capture()
          return async () => { await maps(); await sums() }
        },
        // Records downstream DRs have not acknowledged stay (a cascade).
        onCheckpoint: async (imageSeq) => { await journal.trim(Math.min(imageSeq, node?.downstream?.trimLimit() ?? Infinity)) },
        ...(opts.checkpointMs !== undefined ? { intervalMs: opts.checkpointMs } : {}),
      })
      const imageSeq = await checkpointer.load()
      if (state && state.appliedSeq > imageSeq) {
        // Groups applied before a crash may not be durable: apply them again.
        await replayJournal(journal, applier, imageSeq, log, state.appliedSeq)
      }
      replica.settle(follower.appliedSeq)
      const hydrator = new Hydrator(opts.primary, replica, volumes, fetcher, images, files, log, {
        bytesPerSecond: opts.hydrateRate ?? Infinity,
      }, codes)
      const keeper = new CodeKeeper(codes, {
        volumes: async () => volumes.list().map(v => ({ name: v.name, size: images.lstatSync(v.name)?.size ?? 0 })),
        // Only regions the DR holds: an absent region's bytes mean nothing yet.
        read: async (volume, region) => {
          const v = volumes.get(volume)
          if (!v || !replica.present(v.id, region)) throw new Error('absent')
          const rs = store.identity.regionSize
          return await files.use(volume, async f => {
            const buf = Buffer.allocUnsafe(rs)
            return buf.subarray(0, await images.readFull(f.fd, buf, rs, region * rs))
          })
        },
        lastWriteAt: () => replicaFiles.lastWriteAt,
      }, log, { bytesPerSecond: opts.codesRate ?? 64 * 1024 * 1024 })
      const dfs = new DrFs(images, files, volumes, replica, fetcher, lock)
      dfs.attachNative(native)
      dfs.asyncReads = opts.asyncReads ?? false
      const mount = new FuseMount(opts.mount, dfs, {
        log,
        directIo: true, // files change under readers when groups are applied
        ...(native ? { nativeHooks: native.hooks() } : {}),
        opTimeoutMs: (opts.fetchTimeoutMs ?? 30_000) + 30_000,
        fsname: `volmirror-dr:${path.basename(images.root)}`,
      })
      const control = new ControlServer(store.dir, log)
      node = new DrNode(opts, store, images, journal, files, volumes, replica, regionStore, follower, fetcher, hydrator, checkpointer, mount, control)
      node.native = native
      node.lock = lock
      node.recovery = history
      node.codes = codes
      node.keeper = keeper
      await mount.mount()
      cleanup.unshift(() => mount.unmount())
      control.handle('status', async () => await node!.status())
      if (history) {
        const views = node.views = new Views(history, images, volumes, store.dir, log)
        cleanup.unshift(() => views.closeAll())
        control.handle('history', async () => ({ status: history.status(), spans: await history.spans(), views: views.list() }))
        control.handle('view.open', async body => await views.start(viewRequest(body)))
        control.handle('view.hold', async (body, ctx) => { await views.hold(Number(body.id), ctx.signal); return {} })
        control.handle('view.close', async body => await views.close(Number(body.id)))
      } else {
        const off = async (): Promise<never> => { throw new VolmirrorError('USAGE', 'this DR keeps no history: start it with --history (e.g. --history 24h)') }
        for (const c of ['history', 'view.open', 'view.hold', 'view.close']) control.handle(c, off)
      }
      control.handle('verify', async body => {
        const t = trackVerify(log)
        node!.verifyProgress = t.progress
        return await verify({
          service: opts.primary, replica, volumes, files, images, fetcher, codes, appliedSeq: () => follower.appliedSeq, log,
        }, { repair: body.repair === true, onProgress: t.onProgress }).finally(t.end)
      })
      await control.listen()
      cleanup.unshift(() => control.close())
      if (opts.listen) {
        // A DR serves downstream DRs on --listen (a cascade), and its status page.
        const source = node.downstream = await downstreamSource(node, applier, replicaFiles)
        cleanup.unshift(() => source.close())
        const served = node.served = await serveDr(node, opts.listen, opts.token ?? '', opts.tls, source)
        cleanup.unshift(() => served.close())
      }
      const writeBehind = new WriteBehind(files, writeBehindNative(), log)
      node.writeBehind = writeBehind
      cleanup.unshift(() => writeBehind.stop())
      writeBehind.start()
      checkpointer.start()
      follower.start()
      hydrator.start()
      keeper.start()
      node.watchPrimaryInfo()
      log.info('node.ready', { role: 'dr', mount: mount.mountPoint, images: images.root, state: store.dir, primary: opts.primaryLabel, appliedSeq: follower.appliedSeq, pid: process.pid })
      return node
    } catch (err) {
      for (const fn of cleanup) {
        try { await fn() } catch (e) { log.warn('node.cleanup_failed', { err: e }) }
      }
      throw err
    }
  }

  /**
   * fullSync makes the DR's volumes those of the primary, all regions
   * absent (to be compared and copied by the hydrator); local copies of
   * volumes the primary does not have are kept aside.
   */
  private async fullSync (reply: RegisterReply): Promise<void> {
    if (reply.forkSeq !== undefined && !this.opts.discardLocal) await refuseLateWrites(this.journal, reply)
    // Everything is compared again from the primary's current seq: the
    // recovery points kept so far are of a line of history that ends here.
    if (this.recovery?.active) {
      this.log.warn('history.reset', { points: this.recovery.status().points, note: 'a full sync starts over: recovery points start again once the DR is consistent' })
      await this.recovery.reset()
    }
    if (reply.forkSeq !== undefined) this.discarded = await discardLocal(this.journal, this.images, this.replica.regionSize, this.opts.keepDiscarded, this.log, reply.forkSeq)
    // A node that was a primary once and syncs in full from another is failing back.
    const wasPrimary = (await this.store.history()).some(e => e.nodeId === this.store.identity.nodeId)
    if (reply.history) {
      await this.store.setHistory(reply.history)
      this.onHistory?.(reply.history)
    }
    await reconcile(this.reconcileContext(), await this.opts.primary.volumes(), reply.startSeq, true)
    this.log.info('dr.full_sync_started', { volumes: this.volumes.list().length, startSeq: reply.startSeq, ...(wasPrimary ? { failback: true } : {}) })
    this.hydrator.kick(wasPrimary ? 'failback' : 'initialSync')
  }

  private get log (): Logger { return this.opts.log }

  private reconcileContext (): ReconcileContext {
    return { images: this.images, files: this.files, volumes: this.volumes, replica: this.replica, regionStore: this.regionStore, codes: this.codes, recovery: this.recovery, log: this.log }
  }

  /**
   * resync takes a resync plan (DESIGN "Resync after an outage"): volumes
   * reconciled with the primary's listing (a volume whose name was born
   * otherwise is another volume: all its regions absent), the dirty regions
   * and those of records stored here but never applied made absent. The
   * hydrator then fetches them by the asOf rule while new groups are
   * applied. The region maps are made durable before this DR moves on.
   */
  private async resync (plan: ResyncPlan): Promise<void> {
    // Records stored but not applied (a group cut off by the outage).
    const applied = this.follower.appliedSeq
    await this.journal.indexed()
    const unapplied = await this.journal.entries(applied)
    const invalid = new Map<string, Set<number>>()
    const mark = (volume: string, r: number): void => {
      let s = invalid.get(volume)
      if (!s) { s = new Set(); invalid.set(volume, s) }
      s.add(r)
    }
    const rs = this.replica.regionSize
    for (const e of unapplied) {
      if (e.op !== 'write' && e.op !== 'zero' && e.op !== 'truncate') continue
      for (let r = Math.floor(e.offset / rs); r * rs < e.offset + Math.max(1, e.length); r++) mark(e.volume, r)
    }
    for (const d of plan.dirty) for (const r of d.regions) mark(d.volume, r)
    await reconcile(this.reconcileContext(), plan.volumes, plan.fromSeq, false)
    let count = 0
    for (const [volume, set] of invalid) {
      const v = this.volumes.get(volume)
      if (!v) continue
      for (const r of set) { this.replica.invalidate(v.id, r); count++ }
    }
    this.lastResync = { fromSeq: plan.fromSeq, dirtyRegions: count, at: new Date().toISOString() }
    await this.checkpointer.run()
    this.hydrator.kick('resync')
  }

  private watchPrimaryInfo (): void {
    void this.opts.primary.warm?.()
    const tick = (): void => {
      this.infoTimer = setTimeout(() => {
        void this.opts.primary.warm?.()
        this.notePoint()
        if (this.onHistory) void this.store.history().then(h => this.onHistory?.(h), () => {})
        this.opts.primary.info().then(async i => {
          this.primaryJournalBytes = i.journalBytes
          await this.compareFlagged(i.flagged ?? [])
        }).catch(() => {}).finally(() => { if (this.infoTimer) tick() })
      }, 2000)
      this.infoTimer.unref()
    }
    tick()
  }

  /**
   * compareFlagged handles volumes the primary says changed behind its
   * back (never journaled): every region of each is made absent, once per
   * flag, so hydration compares it by checksum and copies what differs.
   */
  private async compareFlagged (flagged: Array<{ volume: string, seq: number }>): Promise<void> {
    if (flagged.length === 0) return
    const handled = (await this.store.getMeta<Record<string, number>>('flagsHandled')) ?? {}
    let changed = false
    for (const f of flagged) {
      if (handled[f.volume] === f.seq) continue
      const v = this.volumes.get(f.volume)
      if (v) {
        const map = this.replica.map(v.id)
        for (let r = 0; r < map.length; r++) this.replica.invalidate(v.id, r)
        this.log.warn('dr.compare_flagged', { volume: f.volume, regions: map.length, note: 'changed outside the primary\'s mount: compared by checksum' })
      }
      handled[f.volume] = f.seq
      changed = true
    }
    if (changed) {
      // The absent regions are durable (checkpoint) before the flags count as handled.
      await this.checkpointer.run()
      await this.store.putMeta('flagsHandled', handled, true)
      this.hydrator.kick('compare')
    }
  }

  /** status is what `volmirror status` shows for a DR. */
  async status (): Promise<DrStatus> {
    const id = this.store.identity
    const applied = this.follower.appliedSeq
    const ahead = new Map<number, number>()
    for (const k of this.replica.rule.aheadOf(applied)) ahead.set(keyVolume(k), (ahead.get(keyVolume(k)) ?? 0) + 1)
    const volumes: DrVolumeStatus[] = []
    for (const v of this.volumes.list()) {
      const st = await this.images.lstat(v.name).catch(() => undefined)
      const map = this.replica.map(v.id)
      let inFlight = false
      for (let r = map.next(0, false); r >= 0 && !inFlight; r = map.next(r + 1, false)) inFlight = this.replica.rule.inFlight(regionKey(v.id, r))
      const absent = map.length - map.setCount
      const aheadN = ahead.get(v.id) ?? 0
      volumes.push({
        name: v.name,
        size: st?.size ?? 0,
        allocated: (st?.blocks ?? 0) * 512,
        state: absent === 0 && aheadN === 0 ? 'consistent' : 'inconsistent',
        regions: { total: map.length, present: map.setCount, absent, aheadOfApplied: aheadN },
        hydratedPercent: map.length === 0 ? 100 : Math.floor(1000 * map.setCount / map.length) / 10,
      })
    }
    const f = this.fetcher.counters
    const h = this.hydrator.counters
    const lag = this.follower.lagNow()
    return {
      role: 'dr',
      nodeId: id.nodeId,
      epoch: id.epoch,
      regionSize: id.regionSize,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      images: this.images.root,
      state: this.store.dir,
      mount: this.mount.mountPoint,
      dataPath: { mount: this.mount.dataPath, ...(this.native ? { native: this.nativeStats(this.native) } : {}) },
      ...wireStatus(this.opts.primary, this.opts.compress ?? 'auto'),
      primary: { label: this.opts.primaryLabel ?? '', id: this.follower.state?.primaryId, journalBytes: this.primaryJournalBytes },
      seq: { applied, stored: this.journal.lastSeq, primaryLast: lag.primaryLastSeq, durableInImages: this.checkpointer.imageSeq },
      lag,
      // Nothing is consistent before the DR has registered and listed its volumes once.
      consistent: this.follower.state !== undefined && lag.stalled === undefined && volumes.every(v => v.state === 'consistent'),
      volumes,
      ...(this.lastResync ? { resync: this.lastResync } : {}),
      fetched: { onDemandBytes: f.readBytes, hydrationBytes: f.hydrateBytes, fetches: f.fetches, retries: f.retries, failures: f.failures },
      hydration: {
        bytesPerSecond: this.opts.hydrateRate ?? Infinity,
        complete: this.follower.state !== undefined && volumes.every(v => v.regions.absent === 0),
        kept: h.kept, released: h.released, copied: h.copied, comparedBytes: h.comparedBytes,
        window: { regions: this.hydrator.window.window, measuredBytesPerSecond: this.hydrator.window.measured.bytesPerSecond, baseLatencyMs: this.hydrator.window.measured.baseLatencyMs },
      },
      replication: { ...this.follower.counters },
      moved: movedOf(this.follower.counters.bytes, f.readBytes + f.hydrateBytes, this.hydrator.moved()),
      history: await this.store.history(),
      ...(this.discarded ? { discarded: this.discarded } : {}),
      ...(lag.splitBrain ? { splitBrain: lag.splitBrain } : {}),
      ...(lag.stalled ? { stalled: lag.stalled } : {}),
      ...(this.verifyProgress ? { verifyProgress: { ...this.verifyProgress } } : {}),
      codes: { valid: this.codes.size },
      ...(this.recovery ? { recovery: this.recovery.status() } : {}),
      ...this.promotionPoint(applied, volumes, lag),
    }
  }

  /**
   * rollbackTo puts the images back to a recovery point and makes it this
   * DR's state (applied seq, journal, watermark); replication stops first
   * and does not resume: the node is about to be promoted, or closed.
   */
  async rollbackTo (point: RecoveryPoint): Promise<RollbackReport> {
    const history = this.recovery
    if (!history) throw new VolmirrorError('USAGE', 'this DR keeps no history (--history): it cannot go back to a recovery point')
    clearTimeout(this.infoTimer)
    this.infoTimer = undefined
    await this.views?.closeAll()
    await this.hydrator.stop()
    await this.keeper.stop()
    await this.follower.stop()
    await this.fetcher.close()
    const entries = await entriesAfter(history.undo, point)
    const report = await this.lock.write(() => rollback({ undo: history.undo, images: this.images, files: this.files, volumes: this.volumes, log: this.log }, point, entries))
    // Every region of every volume is as it was at the point: present, nothing newer.
    for (const v of this.volumes.list()) {
      this.replica.forget(v.id)
      this.replica.track(v.id, true)
      this.codes.deleted(v.name)
    }
    await this.journal.truncateAfter(point.seq)
    this.follower.state = { ...this.follower.state!, appliedSeq: point.seq }
    await this.store.putMeta('dr', this.follower.state, true)
    await this.checkpointer.rewind(point.seq)
    await history.forgetAfter(point.seq, point.useq)
    return report
  }

  /**
   * notePoint makes the applied seq a recovery point if the DR became
   * consistent without a group being applied (hydration or a resync
   * finished while the primary was idle).
   */
  private notePoint (): void {
    const applied = this.follower.appliedSeq
    if (!this.recovery || (this.recovery.latest?.seq ?? -1) >= applied && this.recovery.active) return
    const consistent = this.follower.state !== undefined && this.follower.lagNow().stalled === undefined && this.replica.complete(applied)
    this.recovery.applied(applied, this.follower.lastAppliedTs ?? Date.now(), consistent)
  }

  /** promotionPoint says where a promotion would land now (see DrStatus.promotionPoint). */
  private promotionPoint (applied: number, volumes: DrVolumeStatus[], lag: Lag): Pick<DrStatus, 'promotionPoint'> {
    const consistent = this.follower.state !== undefined && lag.stalled === undefined && volumes.every(v => v.state === 'consistent')
    const latest = this.recovery?.latest
    if (consistent) {
      const ts = latest?.seq === applied ? latest.ts : Date.now() - (lag.seconds ?? 0) * 1000
      return { promotionPoint: { seq: applied, ts, ageSeconds: Math.max(0, (Date.now() - ts) / 1000), rollback: false } }
    }
    if (!latest) return {}
    return { promotionPoint: { seq: latest.seq, ts: latest.ts, ageSeconds: Math.max(0, (Date.now() - latest.ts) / 1000), rollback: true } }
  }

  private nativeStats (n: NativeMount): { reads: number, readBytes: number, passedReads: number } {
    const s = n.stats()
    return { reads: s.reads, readBytes: s.readBytes, passedReads: s.passedReads }
  }

  /** close stops following and hydrating, unmounts, checkpoints and closes the state; safe to call twice. */
  close (): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    const log = this.opts.log
    clearTimeout(this.infoTimer)
    this.infoTimer = undefined
    await this.views?.closeAll()
    await this.served?.close().catch(err => log.warn('node.close_step_failed', { step: 'http', err }))
    await this.control.close().catch(err => log.warn('node.close_step_failed', { step: 'control', err }))
    await this.hydrator.stop()
    await this.keeper.stop()
    await this.follower.stop()
    await this.fetcher.close()
    await this.mount.unmount().catch(err => log.warn('node.close_step_failed', { step: 'unmount', err }))
    // No native read is in flight after this; presence changes go nowhere.
    const left = this.native?.stop() ?? 0
    if (left > 0) log.warn('native.stop_inflight', { calls: left, note: 'hook calls still running 5 s after unmount' })
    await this.writeBehind?.stop()
    this.checkpointer.stop()
    await this.checkpointer.run().catch(err => log.warn('node.close_step_failed', { step: 'checkpoint', err }))
    await this.journal.close()
    this.files.closeAll()
    this.files.detachNative()
    this.native?.close()
    await this.store.close()
    log.info('node.stopped', { role: 'dr', appliedSeq: this.follower.appliedSeq })
  }
}

/**
 * downstreamSource is what a DR serves downstream DRs: the replication API
 * over its own journal (the primary's records under the primary's seqs) and
 * images, groups ending where it has applied, regions it lacks fetched from
 * upstream before they are read, and the primary's position for their lag.
 */
async function downstreamSource (node: DrNode, applier: DrApplier, files: ReplicaFiles): Promise<ReplicationSource> {
  const rs = node.replica.regionSize
  const versions = new RegionVersions(rs)
  const floorOf = (name: string, offset: number, length: number): number => {
    const v = node.volumes.get(name)
    if (!v) return 0
    let floor = 0
    for (let r = Math.floor(offset / rs); r * rs < offset + Math.max(1, length); r++) floor = Math.max(floor, node.replica.rule.asOfOf(regionKey(v.id, r)) ?? 0)
    return floor
  }
  // A change made by a record carries its seq; fetched bytes carry their asOf.
  files.onChange = (_id, name, offset, length, whole) => {
    const seq = applier.current || Math.max(node.follower.appliedSeq, floorOf(name, offset, length))
    if (whole) versions.changedWhole(name, seq)
    else versions.wrote(name, offset, length, seq)
  }
  const reader = new RegionReader(node.images, node.files, versions, () => node.follower.appliedSeq, name => node.volumes.get(name)?.birth ?? 0)
  reader.floorOf = floorOf
  const source = new ReplicationSource(node.store, node.journal, node.images, reader, { of: name => node.volumes.get(name)?.birth ?? 0 }, () => node.follower.appliedSeq, node.opts.log)
  let history = await node.store.history()
  source.history = () => history
  node.onHistory = h => { history = h }
  source.codes = node.codes
  source.closeAt = () => node.follower.appliedSeq
  source.prepare = async (volume, first, count) => {
    const v = node.volumes.get(volume)
    if (!v) return
    const waits: Array<Promise<void>> = []
    for (let r = first; r < first + count; r++) waits.push(node.fetcher.ensure(v.id, r, 'read'))
    await Promise.all(waits)
  }
  source.upstream = () => { const l = node.follower.lagNow(); return { lastSeq: l.primaryLastSeq, lagSeconds: l.seconds ?? 0 } }
  await source.open()
  return source
}

/** wireStatus is the traffic a DR received, when it reaches its primary over HTTP (PrimaryClient). */
function wireStatus (p: PrimaryService, compress: CompressMode): { wire?: WireStatus } {
  if (!(p instanceof PrimaryClient)) return {}
  return { wire: { direction: 'received', compress, asking: p.asksCompression(), ...(p.rttMs !== undefined ? { rttMs: Math.round(p.rttMs * 1000) / 1000, rttSamples: p.rttSamples } : {}), ...structuredClone(p.wire) } }
}

/** viewRequest reads a `view.open` control request. */
function viewRequest (body: Record<string, unknown>): ViewRequest {
  const num = (k: string): number | undefined => {
    const v = body[k]
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new VolmirrorError('BAD_REQUEST', `view: "${k}" must be a non-negative integer`)
    return v
  }
  if (typeof body.mount !== 'string' || body.mount === '') throw new VolmirrorError('BAD_REQUEST', 'view: "mount" must be a directory')
  const seq = num('seq')
  const at = num('at')
  return {
    mount: body.mount,
    ...(seq !== undefined ? { seq } : {}),
    ...(at !== undefined ? { at } : {}),
    ...(body.writable === true ? { writable: true } : {}),
    ...(typeof body.scratch === 'string' ? { scratch: body.scratch } : {}),
    ...(body.keep === true ? { keep: true } : {}),
  }
}

/** learnRegionSize asks the primary for its region size when a DR's state directory is new. */
async function learnRegionSize (opts: DrOptions): Promise<number | undefined> {
  if (await StateStore.exists(opts.state)) return undefined
  try {
    return (await opts.primary.info()).regionSize
  } catch (err) {
    throw new VolmirrorError('PEER_UNREACHABLE',
      `a new DR learns its region size from the primary, which cannot be reached (${(err as Error).message}); start it when the primary is up, or give --region-size`, { cause: err })
  }
}

/** ensureImages recreates empty images for volumes whose files went missing; returns how many. */
async function ensureImages (images: ImageDir, volumes: DrVolumes, log: Logger): Promise<number> {
  let missing = 0
  for (const v of volumes.list()) {
    if (images.lstatSync(v.name)?.isFile()) continue
    log.warn('dr.image_missing', { volume: v.name, action: 'full sync' })
    await mkdir(path.dirname(images.path(v.name)), { recursive: true })
    images.closeSync(images.openSync(v.name, constants.O_CREAT | constants.O_RDWR))
    missing++
  }
  return missing
}

function movedOf (recordBytes: number, fetchedBytes: number, by: Record<SyncReason, number>): DrStatus['moved'] {
  return {
    recordBytes, fetchedBytes,
    initialSyncBytes: by.initialSync, resyncBytes: by.resync, failbackBytes: by.failback, compareBytes: by.compare,
  }
}
