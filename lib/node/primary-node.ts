/**
 * primary-node: wires a primary together (like LiteFS's cmd): state
 * directory, journal, crash replay, the write path, checkpoints and
 * trimming, the image watcher, the FUSE mount, the control socket.
 *
 * Start order matters: the state directory's lock comes first (so a second
 * node never touches this node's mount), then replay (so the images are
 * whole before anyone sees them), then the mount.
 */
import path from 'node:path'
import { readdirSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { ControlServer } from '../control/control-socket.js'
import { ensureToken } from '../http/auth.js'
import { PrimaryHttpServer } from '../http/server.js'
import { FuseMount } from '../fuse/mount.js'
import type { Logger } from '../log.js'
import { ImageWatcher, type OutsideChange } from '../primary/image-watcher.js'
import { PrimaryFs } from '../primary/primary-fs.js'
import { NameBirths } from '../primary/name-births.js'
import { RegionReader, RegionVersions } from '../primary/region-reader.js'
import { ReplicationSource } from '../primary/replication-source.js'
import { RecordApplier } from '../store/applier.js'
import { Checkpointer } from '../store/checkpoint.js'
import { ImageDir, type FaultHook } from '../store/image-dir.js'
import { Journal, type JournalStats } from '../store/journal.js'
import { replayJournal } from '../store/replay.js'
import { StateStore, type JsonLevel } from '../store/state-store.js'
import { VolumeFiles } from '../store/volume-files.js'

/** PrimaryOptions are the settings of `volmirror primary`. */
export interface PrimaryOptions {
  images: string
  state: string
  mount: string
  regionSize?: number
  log: Logger
  /** Keep journal records even when no DR needs them (audit, tests). */
  retainJournal?: boolean
  checkpointMs?: number
  /** Fault-injection seam for tests. */
  faults?: FaultHook
  opTimeoutMs?: number
  /** How often a replication group is closed. */
  groupMs?: number
  /** Serve DRs over HTTP(S) here. */
  listen?: { host: string, port: number }
  /** The peer token's file (created, mode 0600, at first start); default STATE/token. */
  tokenFile?: string
  /** Serve HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string, key: string }
}

/** VolumeStatus is one volume in `status`. */
export interface VolumeStatus {
  name: string
  size: number
  /** Bytes allocated on disk (sparse images allocate less than their size). */
  allocated: number
  /** Set when the volume changed outside volmirror's write path and needs a checksum resync. */
  flagged?: Flag
}

/** Flag says why a volume must be compared by checksum before it is trusted. */
export interface Flag {
  reason: 'added-outside' | 'changed-outside' | 'removed-outside' | 'apply-failed'
  since: string
  seq: number
}

/** PrimaryStatus is `status --json` of a primary. */
export interface PrimaryStatus {
  role: 'primary'
  nodeId: string
  epoch: number
  regionSize: number
  pid: number
  startedAt: string
  images: string
  state: string
  mount: string
  /** Where DRs reach this primary (absent when not listening). */
  listen?: string
  seq: { last: number, applied: number, durableInImages: number }
  journal: JournalStats & { retained: boolean }
  drs: Array<{ nodeId: string, ackedSeq: number, lagSeq: number, lastSeenAt: string }>
  volumes: VolumeStatus[]
  removedOutside: Array<{ name: string } & Flag>
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
    readonly flags: JsonLevel,
    readonly mount: FuseMount,
    readonly watcher: ImageWatcher,
    readonly control: ControlServer,
    readonly source: ReplicationSource,
    readonly http: PrimaryHttpServer | undefined,
  ) {}

  /** start brings a primary up; on failure everything it opened is closed again. */
  static async start (opts: PrimaryOptions): Promise<PrimaryNode> {
    const log = opts.log
    const images = new ImageDir(opts.images, opts.faults ? { faults: opts.faults } : {})
    await images.check()
    const store = await StateStore.open(opts.state, { role: 'primary', ...(opts.regionSize !== undefined ? { regionSize: opts.regionSize } : {}) })
    const cleanup: Array<() => Promise<void> | void> = [() => store.close()]
    try {
      const journal = new Journal(store, log)
      await journal.open()
      const files = new VolumeFiles(images)
      cleanup.unshift(() => files.closeAll())
      const applier = new RecordApplier(images, files, { zeroes: 'write', deletes: 'unlink' })
      let fsRef: PrimaryFs | undefined
      let sourceRef: ReplicationSource | undefined
      const checkpointer = new Checkpointer(store, images, files, log, {
        appliedSeq: () => fsRef?.appliedSeq ?? journal.lastSeq,
        appendedBytes: () => journal.appendedBytes,
        ...(opts.checkpointMs !== undefined ? { intervalMs: opts.checkpointMs } : {}),
        onCheckpoint: async (imageSeq) => {
          // A record is kept while a DR has not acknowledged it; without a
          // DR, once it is durable in the image nobody needs it (a DR that
          // registers later starts with a full initial sync).
          if (!opts.retainJournal) await journal.trim(Math.min(imageSeq, sourceRef?.trimLimit() ?? Infinity))
        },
      })
      const imageSeq = await checkpointer.load()
      await replayJournal(journal, applier, imageSeq, log)
      const fs = new PrimaryFs(images, files, journal, applier, checkpointer, log)
      fsRef = fs
      const versions = new RegionVersions(store.identity.regionSize)
      const births = new NameBirths(store)
      await births.load()
      fs.onApplied((r) => {
        if (r.op === 'write' || r.op === 'zero') versions.wrote(r.volume, r.offset, r.length, r.seq)
        else if (r.op === 'truncate') versions.changedWhole(r.volume, r.seq)
        else if (r.op === 'create') { versions.changedWhole(r.volume, r.seq); births.born(r.volume, r.seq) }
        else if (r.op === 'rename') { versions.renamed(r.volume, r.target, r.seq); births.renamed(r.volume, r.target, r.seq, filesAt(images, r.target)) }
        else if (r.op === 'delete') { versions.deleted(r.volume); births.deleted(r.volume) }
      })
      const reader = new RegionReader(images, files, versions, () => fs.appliedSeq, name => births.of(name))
      const source = new ReplicationSource(store, journal, images, reader, births, () => fs.appliedSeq, log, opts.groupMs)
      sourceRef = source
      await source.open()
      cleanup.unshift(() => source.close())
      await checkpointer.run()
      checkpointer.start()
      cleanup.unshift(() => checkpointer.stop())

      const flags = store.json('flags')
      const watcher = new ImageWatcher(images.root, log, (c) => {
        // Births follow journaled namespace records only: a file added behind
        // the mount keeps birth 0, as a DR that listed it knows it (it is
        // flagged for a checksum resync anyway).
        if (c.kind === 'removed') births.deleted(c.volume)
        void recordOutsideChange(flags, c, journal.lastSeq, log)
      })
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
      fs.onApplyFailed = (volume, seq) => {
        void setFlag(flags, volume, { reason: 'apply-failed', since: new Date().toISOString(), seq }, log)
      }

      const mount = new FuseMount(opts.mount, fs, { log, ...(opts.opTimeoutMs ? { opTimeoutMs: opts.opTimeoutMs } : {}), fsname: `volmirror:${path.basename(images.root)}` })
      await mount.mount()
      cleanup.unshift(() => mount.unmount())

      // The peer token exists from the first start, so it can be copied to a
      // DR before this primary listens.
      const token = await ensureToken(opts.tokenFile ?? path.join(store.dir, 'token'))
      let http: PrimaryHttpServer | undefined
      if (opts.listen) {
        http = new PrimaryHttpServer(source, { token, log, ...(opts.tls ? { tls: opts.tls } : {}) })
        await http.listen(opts.listen.host, opts.listen.port)
        cleanup.unshift(() => http!.close())
        log.info('http.listening', { url: http.url, tls: opts.tls !== undefined })
      }

      const control = new ControlServer(store.dir, log)
      const node = new PrimaryNode(opts, store, images, journal, files, fs, checkpointer, flags, mount, watcher, control, source, http)
      control.handle('status', async () => await node.status())
      await control.listen()
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
    const flags = new Map<string, Flag>()
    for await (const [k, v] of this.flags.iterator()) flags.set(k, v as Flag)
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
      seq: { last: this.journal.lastSeq, applied: this.fs.appliedSeq, durableInImages: this.checkpointer.imageSeq },
      journal: { ...this.journal.stats(), retained: this.opts.retainJournal ?? false },
      drs: this.source.drs().map(d => ({ nodeId: d.nodeId, ackedSeq: d.ackedSeq, lagSeq: Math.max(0, this.journal.lastSeq - d.ackedSeq), lastSeenAt: d.lastSeenAt })),
      volumes,
      removedOutside: [...flags].filter(([name, f]) => f.reason === 'removed-outside' && !present.has(name)).map(([name, f]) => ({ name, ...f })),
    }
  }

  /** close unmounts, finishes what is in flight, checkpoints and closes the state; safe to call twice. */
  close (): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    const log = this.opts.log
    await this.control.close().catch(err => log.warn('node.close_step_failed', { step: 'control', err }))
    await this.http?.close().catch(err => log.warn('node.close_step_failed', { step: 'http', err }))
    await this.mount.unmount().catch(err => log.warn('node.close_step_failed', { step: 'unmount', err }))
    await this.watcher.close().catch(() => {})
    await this.source.close().catch(err => log.warn('node.close_step_failed', { step: 'replication', err }))
    this.checkpointer.stop()
    await this.fs.quiesce().catch(() => {})
    await this.checkpointer.run().catch(err => log.warn('node.close_step_failed', { step: 'checkpoint', err }))
    await this.journal.close()
    this.files.closeAll()
    await this.store.close()
    log.info('node.stopped', { role: 'primary', lastSeq: this.journal.lastSeq })
  }
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
  const out: VolumeStatus[] = []
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(images.path(dir), { withFileTypes: true }).catch(() => [])
    for (const e of entries) {
      const name = dir ? `${dir}/${e.name}` : e.name
      if (!dir && e.name.startsWith('.volmirror')) continue
      if (e.isDirectory()) { await walk(name); continue }
      if (!e.isFile()) continue
      const st = await images.lstat(name).catch(() => undefined)
      if (st) out.push({ name, size: st.size, allocated: st.blocks * 512 })
    }
  }
  await walk('')
  return out.sort((a, b) => a.name < b.name ? -1 : 1)
}

async function setFlag (flags: JsonLevel, volume: string, flag: Flag, log: Logger): Promise<void> {
  try {
    await flags.put(volume, flag)
  } catch (err) {
    log.error('flag.write_failed', { volume, err })
  }
}

async function recordOutsideChange (flags: JsonLevel, c: OutsideChange, seq: number, log: Logger): Promise<void> {
  const reason = c.kind === 'added' ? 'added-outside' : c.kind === 'removed' ? 'removed-outside' : 'changed-outside'
  const existing = await flags.get(c.volume).catch(() => undefined) as Flag | undefined
  await setFlag(flags, c.volume, { reason, since: existing?.since ?? new Date().toISOString(), seq }, log)
}
