/**
 * primary-node: wires a primary together (like LiteFS's cmd): state
 * directory, journal, crash replay, the write path, checkpoints and
 * trimming, the image watcher, the FUSE mount, the control socket.
 *
 * Start order matters: the state directory's lock comes first (so a second
 * node never touches this node's mount), then replay (so the images are
 * whole before anyone sees them), then the mount.
 */
import { createHash } from 'node:crypto'
import path from 'node:path'
import { readdirSync } from 'node:fs'
import { compareHistories, promoted, type History } from '../core/history.js'
import { ControlServer } from '../control/control-socket.js'
import { VolmirrorError } from '../errors.js'
import { PrimaryClient } from '../http/client.js'
import type { PrimaryService } from '../replication/protocol.js'
import { ensureToken } from '../http/auth.js'
import { PrimaryHttpServer } from '../http/server.js'
import { FuseMount, prepareMountPoint } from '../fuse/mount.js'
import { defaultDataPath, NativeMount, tuneMemory, writeBehindNative } from '../fuse/native-path.js'
import { NativeWrites } from '../primary/native-writes.js'
import { observePrimary, type Observability } from './observability.js'
import type { Logger } from '../log.js'
import { ImageWatcher } from '../primary/image-watcher.js'
import { PrimaryFs } from '../primary/primary-fs.js'
import { NameBirths } from '../primary/name-births.js'
import { RegionReader, RegionVersions } from '../primary/region-reader.js'
import { ReplicationSource } from '../primary/replication-source.js'
import { VolumeFlags } from '../primary/volume-flags.js'
import { SyncGate, type SyncOptions } from '../primary/sync-gate.js'
import { RecordApplier } from '../store/applier.js'
import { Checkpointer } from '../store/checkpoint.js'
import { WriteBehind } from '../store/write-behind.js'
import { ImageDir, type FaultHook } from '../store/image-dir.js'
import { Journal } from '../store/journal.js'
import { replayJournal } from '../store/replay.js'
import { StateStore } from '../store/state-store.js'
import { VolumeFiles } from '../store/volume-files.js'
import { RegionCodes } from '../store/region-codes.js'
import { CodeKeeper } from '../store/code-keeper.js'
import { Archiver } from '../archive/archiver.js'
import { ObjectStore, parseArchiveUrl } from '../archive/object-store.js'
import type { NodeOptions } from './node-options.js'
import type { NativeWriteStats, PrimaryStatus, VolumeStatus } from './status.js'
export type { Flag, NativeWriteStats, PrimaryStatus, VolumeStatus } from './status.js'

/** PrimaryOptions are the settings of `volmirror primary`. */
export interface PrimaryOptions extends NodeOptions {
  /** Keep journal records even when no DR needs them (audit, tests). */
  retainJournal?: boolean
  /** Fault-injection seam for tests. */
  faults?: FaultHook
  opTimeoutMs?: number
  /** How often a replication group is closed. */
  groupMs?: number
  /** The peer token's file (created, mode 0600, at first start); default STATE/token. */
  tokenFile?: string
  /**
   * Start as a promoted DR: the state directory is a DR's (closed cleanly
   * by the promotion); its applied seq ends the old epoch, a new one begins.
   */
  promote?: boolean
  /** The primary this node followed before it was promoted: watched for split brain. */
  formerPrimary?: PrimaryService
  /** Bytes of journal kept for lagging DRs before their oldest records become dirty regions (default 1 GiB). */
  journalLimit?: number
  /** Sync mode (RPO 0): fsyncs wait until the DRs hold their records durably; what to do when one does not confirm in time. */
  sync?: SyncOptions
  /** Forget a DR not seen for this long (ms): it no longer holds the journal back (`--dr-expire`). */
  drExpireMs?: number
  /** `--archive`: the journal archive in an S3-compatible store. */
  archive?: ArchiveSettings
}

/** ArchiveSettings are the `--archive*` flags. */
export interface ArchiveSettings {
  /** `s3://bucket/prefix`. */
  url: string
  endpoint?: string
  region?: string
  sealMs?: number
  baseEveryMs?: number
  retentionMs?: number
}





/** PrimaryNode is a running primary. */
export class PrimaryNode {
  private closing: Promise<void> | undefined
  readonly startedAt = new Date()

  private constructor (
    readonly opts: PrimaryOptions,
    readonly store: StateStore,
    readonly images: ImageDir,
    readonly journal: Journal,
    readonly files: VolumeFiles,
    readonly fs: PrimaryFs,
    readonly checkpointer: Checkpointer,
    readonly flags: VolumeFlags,
    readonly mount: FuseMount,
    readonly watcher: ImageWatcher,
    readonly control: ControlServer,
    readonly source: ReplicationSource,
    readonly http: PrimaryHttpServer | undefined,
    readonly history: History,
    readonly token: string,
  ) {}

  private peerTimer: NodeJS.Timeout | undefined
  private demoting = false
  keeper: CodeKeeper | undefined
  codes: RegionCodes | undefined
  /** The native write path (absent with --data-path js). */
  nativeWrites: NativeWrites | undefined
  writeBehind: WriteBehind | undefined
  /** Metrics and the status page (served on the HTTP endpoint when listening). */
  observability: Observability | undefined
  /** The journal archive (absent without --archive). */
  archiver: Archiver | undefined

  /** start brings a primary up; on failure everything it opened is closed again. */
  static async start (opts: PrimaryOptions): Promise<PrimaryNode> {
    const log = opts.log
    tuneMemory()
    // Everything is checked before anything is created (the state directory).
    await prepareMountPoint(opts.mount, log)
    const images = new ImageDir(opts.images, opts.faults ? { faults: opts.faults } : {})
    await images.check()
    const store = await StateStore.open(opts.state, {
      role: 'primary', ...(opts.regionSize !== undefined ? { regionSize: opts.regionSize } : {}), ...(opts.promote ? { allowRoles: ['dr' as const] } : {}),
    })
    const cleanup: Array<() => Promise<void> | void> = [() => store.close()]
    try {
      const journal = new Journal(store, log)
      await journal.open()
      const history = store.identity.role === 'dr' ? await promoteState(store, journal, log) : await store.ensureHistory()
      const files = new VolumeFiles(images)
      cleanup.unshift(() => files.closeAll())
      const applier = new RecordApplier(images, files, { zeroes: 'write', deletes: 'unlink' })
      let fsRef: PrimaryFs | undefined
      let sourceRef: ReplicationSource | undefined
      const codes = new RegionCodes(store, store.identity.regionSize)
      await codes.load()
      let checkpointerCatchUp: (() => void) | undefined
      const checkpointer = new Checkpointer(store, images, files, log, {
        appliedSeq: () => fsRef?.appliedSeq ?? journal.lastSeq,
        catchUp: () => checkpointerCatchUp?.(),
        appendedBytes: () => journal.appendedBytes,
        ...(opts.checkpointMs !== undefined ? { intervalMs: opts.checkpointMs } : {}),
        // Checkpoint often enough that a small journal limit is enforced in time.
        maxBytes: Math.min(256 * 1024 * 1024, Math.max(1024 * 1024, Math.floor((opts.journalLimit ?? Infinity) / 4))),
        capture: () => codes.capture(),
        onCheckpoint: async (imageSeq) => {
          // A record is kept while a DR has not acknowledged it (up to the
          // journal limit; past it, as dirty regions); without a DR, once it
          // is durable in the image nobody needs it (a DR that registers
          // later starts with a full initial sync).
          await sourceRef?.enforceJournalLimit()
          if (!opts.retainJournal) await journal.trim(Math.min(imageSeq, sourceRef?.trimLimit() ?? Infinity))
        },
      })
      const imageSeq = await checkpointer.load()
      // Every record kept is read back and checked before anything uses it.
      const damaged = await journal.scrub()
      if (damaged.length > 0) {
        const seqs = spansOf(damaged.map(e => e.seq))
        const lost = damaged.filter(e => e.seq > imageSeq)
        log.error('journal.damaged', { records: damaged.length, seqs, volumes: [...new Set(damaged.map(e => e.volume))].join(','), inImages: lost.length === 0 })
        if (lost.length > 0) {
          throw new VolmirrorError('RECORD_CORRUPT', `journal records ${spansOf(lost.map(e => e.seq))} are damaged on disk and not in the images yet ` +
            `(${lost.slice(0, 3).map(e => `${e.op} ${e.volume} at ${e.offset}`).join('; ')}): their writes cannot be applied. Check the disk; ` +
            `the state directory ${store.dir} is left as it is`, { details: { seqs: lost.map(e => e.seq) } })
        }
      }
      // Replayed records change bytes before any listener exists: clear their codes here.
      codes.invalidateEntries(await journal.entries(imageSeq))
      await replayJournal(journal, applier, imageSeq, log)
      const fs = new PrimaryFs(images, files, journal, applier, checkpointer, log)
      fs.asyncReads = opts.asyncReads ?? false
      fsRef = fs
      const versions = new RegionVersions(store.identity.regionSize)
      const nativeWrites = (opts.dataPath ?? defaultDataPath()) === 'native'
        ? new NativeWrites(new NativeMount('primary', store.identity.regionSize), journal, files, fs, log)
        : undefined
      if (nativeWrites) {
        const nm = nativeWrites.native
        versions.native = (volume, offset, length) => {
          const f = files.peek(volume)
          return f && f.slot !== 0 ? nm.version(f.slot, offset, length) : 0
        }
        checkpointerCatchUp = () => nativeWrites.drain()
      }
      const births = new NameBirths(store)
      await births.load()
      let lastWriteAt = 0
      fs.onApplied((r) => {
        lastWriteAt = Date.now()
        if (r.op === 'write' || r.op === 'zero') { versions.wrote(r.volume, r.offset, r.length, r.seq); codes.invalidate(r.volume, r.offset, r.length) }
        else if (r.op === 'truncate') { versions.changedWhole(r.volume, r.seq); codes.invalidateFrom(r.volume, r.offset) }
        else if (r.op === 'create') { versions.changedWhole(r.volume, r.seq); births.born(r.volume, r.seq); codes.deleted(r.volume) }
        else if (r.op === 'rename') { versions.renamed(r.volume, r.target, r.seq); births.renamed(r.volume, r.target, r.seq, filesAt(images, r.target)); codes.renamed(r.volume, r.target) }
        else if (r.op === 'delete') { versions.deleted(r.volume); births.deleted(r.volume); codes.deleted(r.volume) }
      })
      const reader = new RegionReader(images, files, versions, () => fs.appliedSeq, name => births.of(name))
      if (nativeWrites) {
        reader.catchUp = () => nativeWrites.drain()
        reader.exclusive = fn => nativeWrites.exclusive(fn)
      }
      const source = new ReplicationSource(store, journal, images, reader, births, () => fs.appliedSeq, log, opts.groupMs)
      source.history = () => history
      source.codes = codes
      source.journalLimit = opts.journalLimit ?? 1024 * 1024 * 1024
      source.onOverLimit = () => { void checkpointer.run().catch(err => log.warn('checkpoint.failed', { err })) }
      if (opts.sync) {
        source.sync = new SyncGate(opts.sync, log, () => journal.lastSeq)
        fs.replicated = seq => source.replicated(seq)
      }
      sourceRef = source
      await source.open()
      cleanup.unshift(() => source.close())
      // Damaged records are in the images: DRs that need them resync those regions from there.
      if (damaged.length > 0) await source.dropDamaged(Math.max(...damaged.map(e => e.seq)))
      await checkpointer.run()
      checkpointer.start()
      cleanup.unshift(() => checkpointer.stop())
      // Image writeback spread out between checkpoints (lag, see write-behind.ts).
      const writeBehind = new WriteBehind(files, writeBehindNative(), log)
      writeBehind.start()
      cleanup.unshift(() => writeBehind.stop())

      const flags = new VolumeFlags(store.json('flags'), log)
      source.flagged = async () => await flags.toCompare()
      let noteTouchedNow: (() => void) | undefined
      const watcher = new ImageWatcher(images.root, log, (c) => {
        // Births follow journaled namespace records only: a file added behind
        // the mount keeps birth 0, as a DR that listed it knows it (it is
        // flagged for a checksum resync anyway).
        if (c.kind === 'removed') births.deleted(c.volume)
        // Bytes changed behind volmirror's back: no code of that volume can be trusted.
        codes.deleted(c.volume)
        void flags.outside(c, journal.lastSeq)
      })
      // Judge what the watcher sees only once our own native writes are known.
      if (nativeWrites) watcher.settle = () => { nativeWrites.drain(); noteTouchedNow?.() }
      await watcher.start()
      cleanup.unshift(() => watcher.close())
      // Tell the watcher what our own writes did to each image (size, mtime),
      // once per event-loop turn, so it can tell them from outside changes.
      const touched = new Set<string>()
      const noteTouched = (): void => {
        for (const name of touched) {
          const f = files.peek(name)
          const st = f ? images.fstatSync(f.fd) : images.lstatSync(name)
          if (st?.isFile()) watcher.wrote(name, st)
        }
        touched.clear()
      }
      noteTouchedNow = noteTouched
      fs.onApplied((r) => {
        if (r.op === 'delete') { touched.delete(r.volume); watcher.deleted(r.volume); return }
        if (r.op === 'rename') {
          // rename(2) moves the file's ctime too: tell the watcher at once,
          // before a poll takes it for an outside change.
          noteTouched()
          watcher.renamed(r.volume, r.target)
          for (const name of filesAt(images, r.target)) {
            const st = images.lstatSync(name)
            if (st) watcher.wrote(name, st)
          }
          return
        }
        if (r.op === 'create') { const f = files.peek(r.volume); if (f) watcher.created(r.volume, images.fstatSync(f.fd)); return }
        if (r.op === 'write' || r.op === 'zero' || r.op === 'truncate' || r.op === 'chmod') {
          if (touched.size === 0) setImmediate(noteTouched)
          touched.add(r.volume)
        }
      })
      fs.onUnjournaledChange = (name) => {
        void images.lstat(name).then(st => { if (st.isFile()) watcher.wrote(name, st) }, () => {})
      }
      // A write journaled but not in the image (its writer got the error):
      // counted per volume, and the volume flagged so DRs compare it (they
      // end equal to the image, without the failed writes).
      fs.onApplyFailed = (volume, seq, err) => {
        // A failed write may still have changed the file (part of it, its
        // ctime): ours, not an outside change.
        if (touched.size === 0) setImmediate(noteTouched)
        touched.add(volume)
        flags.applyFailed(volume, seq, err)
      }

      const keeper = new CodeKeeper(codes, {
        volumes: async () => (await listVolumes(images)).map(v => ({ name: v.name, size: v.size })),
        read: async (volume, region) => (await reader.read(volume, region * store.identity.regionSize, store.identity.regionSize)).data,
        lastWriteAt: () => lastWriteAt,
      }, log, { bytesPerSecond: opts.codesRate ?? 64 * 1024 * 1024 })
      keeper.start()
      cleanup.unshift(() => keeper.stop())

      const mount = new FuseMount(opts.mount, fs, {
        log, ...(opts.opTimeoutMs ? { opTimeoutMs: opts.opTimeoutMs } : {}), fsname: `volmirror:${path.basename(images.root)}`,
        ...(nativeWrites ? { nativeHooks: nativeWrites.native.hooks() } : {}),
      })
      if (nativeWrites) {
        nativeWrites.start()
        cleanup.unshift(() => nativeWrites.stop())
      }
      await mount.mount()
      cleanup.unshift(() => mount.unmount())

      // The peer token exists from the first start, so it can be copied to a
      // DR before this primary listens.
      const token = await ensureToken(opts.tokenFile ?? path.join(store.dir, 'token'))
      let http: PrimaryHttpServer | undefined
      if (opts.listen) {
        http = new PrimaryHttpServer(source, { token, log, ...(opts.tls ? { tls: opts.tls } : {}), ...(opts.compress ? { compress: opts.compress } : {}) })
        await http.listen(opts.listen.host, opts.listen.port)
        cleanup.unshift(() => http!.close())
        log.info('http.listening', { url: http.url, tls: opts.tls !== undefined })
      }

      const control = new ControlServer(store.dir, log)
      const node = new PrimaryNode(opts, store, images, journal, files, fs, checkpointer, flags, mount, watcher, control, source, http, history, token)
      node.keeper = keeper
      node.codes = codes
      node.nativeWrites = nativeWrites
      node.writeBehind = writeBehind
      const observability = node.observability = observePrimary(node)
      cleanup.unshift(() => observability.close())
      if (http) http.observability = observability.routes
      control.handle('status', async () => await node.status())
      control.handle('dr.forget', async body => {
        if (typeof body.id !== 'string' || body.id === '') throw new VolmirrorError('BAD_REQUEST', 'dr forget: give the id of a DR (see volmirror status)')
        return await source.forget(body.id)
      })
      await control.listen()
      if (opts.archive) {
        const a = opts.archive
        const objects = new ObjectStore(parseArchiveUrl(a.url), { ...(a.endpoint ? { endpoint: a.endpoint } : {}), ...(a.region ? { region: a.region } : {}) })
        const archiver = node.archiver = new Archiver(source, objects, {
          nodeId: `archive-${createHash('sha256').update(objects.url).digest('hex').slice(0, 16)}`,
          primaryId: store.identity.nodeId, epoch: store.identity.epoch, regionSize: store.identity.regionSize,
          history: () => node.history, log,
          ...(a.sealMs !== undefined ? { sealMs: a.sealMs } : {}),
          ...(a.baseEveryMs !== undefined ? { baseEveryMs: a.baseEveryMs } : {}),
          ...(a.retentionMs !== undefined ? { retentionMs: a.retentionMs } : {}),
        })
        archiver.start()
        cleanup.unshift(async () => { await archiver.stop() })
      }
      node.watchPeers()
      log.info('node.ready', { role: 'primary', mount: mount.mountPoint, images: images.root, state: store.dir, lastSeq: journal.lastSeq, pid: process.pid })
      return node
    } catch (err) {
      for (const fn of cleanup) {
        try { await fn() } catch (e) { log.warn('node.cleanup_failed', { err: e }) }
      }
      throw err
    }
  }

  /** status is what `volmirror status` shows. */
  async status (): Promise<PrimaryStatus> {
    const flags = await this.flags.all()
    const volumes = await listVolumes(this.images)
    const present = new Set(volumes.map(v => v.name))
    for (const v of volumes) {
      const f = flags.get(v.name)
      if (f) v.flagged = f
    }
    const id = this.store.identity
    return {
      role: 'primary',
      nodeId: id.nodeId,
      epoch: id.epoch,
      regionSize: id.regionSize,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      images: this.images.root,
      state: this.store.dir,
      mount: this.mount.mountPoint,
      ...(this.http ? { listen: this.http.url } : {}),
      dataPath: { mount: this.mount.dataPath, ...(this.nativeWrites ? { native: this.nativeStats(this.nativeWrites) } : {}) },
      ...(this.http ? { wire: { direction: 'sent' as const, compress: this.http.compression.mode, ...structuredClone(this.http.compression.counters) } } : {}),
      seq: { last: this.journal.lastSeq, applied: this.fs.appliedSeq, durableInImages: this.checkpointer.imageSeq },
      journal: { ...this.journal.stats(), retained: this.opts.retainJournal ?? false },
      ...(this.checkpointer.last ? { checkpoint: { ...this.checkpointer.last } } : {}),
      ...(this.source.damagedThrough > 0 ? { journalDamage: { through: this.source.damagedThrough, note: 'records damaged on disk were found at start: DRs that needed them resync those regions from the images' } } : {}),
      history: this.history,
      codes: { valid: this.codes?.size ?? 0, ...(this.codes?.counters ?? {}) },
      ...(this.source.splitBrain ? { splitBrain: this.source.splitBrain } : {}),
      ...(this.source.sync ? { sync: this.source.sync.status() } : {}),
      ...(this.demoting ? { demoting: true } : {}),
      ...(this.archiver ? { archive: this.archiver.status() } : {}),
      drs: this.source.drs().map(d => ({
        nodeId: d.nodeId, ackedSeq: d.ackedSeq, lagSeq: Math.max(0, this.journal.lastSeq - d.ackedSeq), lastSeenAt: d.lastSeenAt,
        lastContactSeconds: Math.max(0, (Date.now() - Date.parse(d.lastSeenAt)) / 1000),
        ...(d.listenUrl ? { listenUrl: d.listenUrl } : {}),
        mode: d.droppedThrough !== undefined ? 'bitmap' as const : 'journaling' as const,
        dirtyBytes: this.source.dirtyRegions(d.nodeId) * this.store.identity.regionSize,
      })),
      volumes,
      removedOutside: [...flags].filter(([name, f]) => f.reason === 'removed-outside' && !present.has(name)).map(([name, f]) => ({ name, ...f })),
    }
  }

  private nativeStats (w: NativeWrites): NativeWriteStats {
    const j = w.state()
    const m = w.native.stats()
    return {
      writes: j?.writes ?? 0, writeBytes: j?.writeBytes ?? 0, reads: m.reads, readBytes: m.readBytes,
      passedReads: m.passedReads, passedWrites: m.passedWrites,
      holdSeconds: j?.holdSeconds ?? 0, maxHoldSeconds: j?.maxHoldSeconds ?? 0, waitSeconds: j?.waitSeconds ?? 0,
      waitsFull: j?.waitsFull ?? 0, waitsSpare: j?.waitsSpare ?? 0, waitsPaused: j?.waitsPaused ?? 0,
      pending: j?.pending ?? 0, drains: w.counters.drains,
    }
  }

  /**
   * demote prepares a planned switchover: it stops accepting writes, makes
   * the journal durable, and waits until every registered DR acknowledged
   * everything. Nothing is lost: the DR that is then promoted has it all.
   * On timeout writes resume and NOT_CAUGHT_UP is thrown. Returns the last
   * seq and where the DR to follow will serve once promoted.
   */
  async demote (timeoutMs: number): Promise<{ lastSeq: number, follow: string | undefined }> {
    const drs = this.source.drs()
    if (drs.length === 0) throw new VolmirrorError('NOT_CAUGHT_UP', 'no DR is registered with this primary: there is nobody to hand over to')
    this.demoting = true
    this.fs.setReadOnly('this primary is being demoted (planned switchover)')
    try {
      await this.fs.quiesce()
      await this.journal.sync()
      const last = this.journal.lastSeq
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const behind = this.source.drs().filter(d => d.ackedSeq < last)
        if (behind.length === 0) break
        if (Date.now() > deadline) {
          throw new VolmirrorError('NOT_CAUGHT_UP', `DRs have not acknowledged everything within ${Math.round(timeoutMs / 1000)} s: ` +
            behind.map(d => `${d.nodeId.slice(0, 8)} at ${d.ackedSeq} of ${last}`).join(', '), { details: { lastSeq: last } })
        }
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      this.opts.log.info('node.demoted', { lastSeq: last, drs: drs.length })
      return { lastSeq: last, follow: drs.find(d => d.listenUrl)?.listenUrl }
    } catch (err) {
      this.fs.setReadOnly(undefined)
      this.demoting = false
      throw err
    }
  }

  /**
   * watchPeers looks for split brain while running: a primary this node
   * replaced that still serves (it takes writes in an old epoch), or a DR
   * of this node that now serves in a newer epoch (this node is the old
   * one). Either is reported and stops replication (see ReplicationSource).
   */
  private watchPeers (): void {
    const peers: Array<{ label: string, service: PrimaryService }> = []
    if (this.opts.formerPrimary) peers.push({ label: 'former primary', service: this.opts.formerPrimary })
    const tick = (): void => {
      this.peerTimer = setTimeout(() => {
        void this.checkPeers(peers).finally(() => { if (this.peerTimer) tick() })
      }, 3000)
      this.peerTimer.unref()
    }
    tick()
  }

  private async checkPeers (fixed: Array<{ label: string, service: PrimaryService }>): Promise<void> {
    if (this.opts.drExpireMs) await this.source.expire(this.opts.drExpireMs).catch(err => this.opts.log.warn('dr.expire_failed', { err }))
    const peers = [...fixed]
    for (const d of this.source.drs()) {
      if (d.listenUrl) peers.push({ label: `DR ${d.nodeId.slice(0, 8)}`, service: this.peerClient(d.listenUrl) })
    }
    for (const p of peers) {
      const info = await p.service.info().catch(() => undefined)
      if (!info || info.role !== 'primary' || info.nodeId === this.store.identity.nodeId || !info.history) continue
      // Judge the peer as if it were to follow us, and us as if we were to follow it.
      const theirs = compareHistories(info.history, this.history, info.lastSeq)
      const ours = compareHistories(this.history, info.history, this.journal.lastSeq)
      let reason: string | undefined
      if (theirs.kind === 'split-brain') reason = theirs.reason
      else if (ours.kind === 'split-brain') reason = ours.reason
      else if (theirs.kind === 'discard') reason = `the ${p.label} (${info.nodeId.slice(0, 8)}) still serves epoch ${info.epoch} and has taken writes past seq ${theirs.forkSeq - 1}, where epoch ${this.store.identity.epoch} began`
      if (reason && !this.source.splitBrain) {
        this.source.splitBrain = { peer: info.nodeId, reason, at: new Date().toISOString() }
        this.opts.log.error('split_brain.detected', { peer: info.nodeId, reason })
      }
    }
  }

  private readonly peerClients = new Map<string, PrimaryService>()
  private peerClient (url: string): PrimaryService {
    let c = this.peerClients.get(url)
    if (!c) { c = new PrimaryClient(url, { token: this.token, timeoutMs: 2000 }); this.peerClients.set(url, c) }
    return c
  }

  /** close unmounts, finishes what is in flight, checkpoints and closes the state; safe to call twice. */
  close (): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    const log = this.opts.log
    clearTimeout(this.peerTimer)
    this.peerTimer = undefined
    for (const c of this.peerClients.values()) await (c as PrimaryClient).close().catch(() => {})
    const step = (name: string): void => log.debug('node.closing', { step: name })
    step('control')
    await this.control.close().catch(err => log.warn('node.close_step_failed', { step: 'control', err }))
    step('http')
    await this.http?.close().catch(err => log.warn('node.close_step_failed', { step: 'http', err }))
    this.observability?.close()
    step('unmount')
    await this.mount.unmount().catch(err => log.warn('node.close_step_failed', { step: 'unmount', err }))
    step('native')
    try {
      this.nativeWrites?.stop()
    } catch (err) {
      log.warn('node.close_step_failed', { step: 'native', err })
    }
    step('watcher')
    await this.watcher.close().catch(() => {})
    step('codes')
    await this.keeper?.stop()
    step('archive')
    await this.archiver?.stop().catch(err => log.warn('node.close_step_failed', { step: 'archive', err }))
    step('replication')
    await this.source.close().catch(err => log.warn('node.close_step_failed', { step: 'replication', err }))
    step('write-behind')
    await this.writeBehind?.stop()
    this.checkpointer.stop()
    step('quiesce')
    await this.fs.quiesce().catch(() => {})
    step('checkpoint')
    await this.checkpointer.run().catch(err => log.warn('node.close_step_failed', { step: 'checkpoint', err }))
    step('journal')
    await this.journal.close()
    this.files.closeAll()
    step('state')
    await this.store.close()
    log.info('node.stopped', { role: 'primary', lastSeq: this.journal.lastSeq })
  }
}

/**
 * promoteState turns a DR's state directory (closed cleanly by a
 * promotion) into a primary's: records it stored past its last applied
 * group are dropped, a new epoch begins after the applied seq, and the role
 * becomes primary.
 */
async function promoteState (store: StateStore, journal: Journal, log: Logger): Promise<History> {
  const follow = await store.getMeta<{ appliedSeq: number, primaryId: string }>('dr')
  const applied = follow?.appliedSeq ?? 0
  const imageSeq = (await store.getMeta<number>('imageSeq')) ?? 0
  if (imageSeq < applied) {
    throw new VolmirrorError('STATE_INVALID', `this DR was not closed cleanly (images durable to ${imageSeq}, applied ${applied}): start it as a DR once, then promote it`)
  }
  await journal.indexed()
  if (journal.lastSeq > applied) await journal.truncateAfter(applied)
  const history = promoted(await store.history(), store.identity.nodeId, applied)
  await store.setHistory(history)
  await store.setIdentity({ role: 'primary', epoch: history[history.length - 1]!.epoch })
  log.info('node.promoted', { epoch: history[history.length - 1]!.epoch, fromSeq: applied + 1, formerPrimary: follow?.primaryId })
  return history
}

/** filesAt lists the volume names at or under `name` (a file, or a directory's files). */
function filesAt (images: ImageDir, name: string): string[] {
  const st = images.lstatSync(name)
  if (!st) return []
  if (st.isFile()) return [name]
  const out: string[] = []
  for (const e of readdirSync(images.path(name), { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.relative(images.root, path.join(e.parentPath ?? e.path, e.name)).split(path.sep).join('/'))
  }
  return out
}

async function listVolumes (images: ImageDir): Promise<VolumeStatus[]> {
  return (await images.listVolumes()).map(({ name, stats }) => ({ name, size: stats.size, allocated: stats.blocks * 512 }))
}

/** spansOf writes seqs as ranges: "5..9, 12". */
function spansOf (seqs: number[]): string {
  const out: string[] = []
  const xs = [...seqs].sort((a, b) => a - b)
  for (let i = 0; i < xs.length;) {
    let j = i
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++
    out.push(i === j ? `${xs[i]}` : `${xs[i]}..${xs[j]}`)
    i = j + 1
  }
  return out.join(', ')
}
