/**
 * archiver: the primary's journal, shipped to an object store as sealed
 * chunks, with base snapshots now and then (lib/archive/layout.ts says what
 * the objects are).
 *
 * It is one more consumer of the primary's replication source, like a DR
 * in the same process: it registers (the journal keeps what it has not
 * archived, up to --journal-limit like for any DR), takes groups, and
 * acknowledges a chunk once the store has it. Writers never wait for it:
 * when the store is away longer than the journal limit allows, the source
 * drops the records for the archiver alone (as for a slow DR), and the
 * archiver takes a new base snapshot once the store is back; the points
 * in the gap are not restorable, and `status` says so meanwhile.
 *
 * A base snapshot lists the volumes (as of seq S), then each realized
 * region with its SHA-256 (the primary's region codes, cached): regions
 * the archive already holds are referenced, the others are read (as of
 * some seq >= S, the asOf rule) and uploaded. Bases are taken at start
 * when the archive has none for this journal, after a gap, and every
 * --archive-base-every.
 *
 * Uploads retry with a backoff (0.5 s doubling to 30 s) for as long as it
 * takes; `status` shows the state, the last error and the lag.
 */
import type { History } from '../core/history.js'
import { eachLimited } from '../core/each-limited.js'
import { VolmirrorError, isVolmirrorError } from '../errors.js'
import { compressBody } from '../http/compression.js'
import type { Logger } from '../log.js'
import type { GroupBatch, PrimaryService, RegisterReply } from '../replication/protocol.js'
import {
  baseKey, chunkKey, decodeManifest, encodeChunk, encodeManifest, parseBaseKey, parseChunkKey, parseRegionKey, regionKey, regionShas, retained, spans,
  type ArchivedRegion, type ArchivedVolume, type BaseInfo, type BaseManifest, type ChunkInfo,
} from './layout.js'
import type { ObjectStore } from './object-store.js'
import { describeBytes } from '../store/realization.js'

/** ArchiverOptions: who the primary is, and when to seal, snapshot and forget. */
export interface ArchiverOptions {
  /** The consumer id it registers with (stable per archive URL: it resumes after a restart). */
  nodeId: string
  primaryId: string
  epoch: number
  regionSize: number
  history: () => History | undefined
  log: Logger
  /** A chunk is sealed once it holds this much (bytes; default 16 MiB) ... */
  sealBytes?: number
  /** ... or its oldest record is this old (ms; default 10 s): the archive's RPO. */
  sealMs?: number
  /** A new base every so often (ms; default 24 h). */
  baseEveryMs?: number
  /** Objects older than this are deleted, keeping every point inside it restorable (ms; default: keep all). */
  retentionMs?: number
  /** Regions read and uploaded at once while taking a base. */
  concurrency?: number
}

/** ArchiveStatus is the archive's part of the primary's status. */
export interface ArchiveStatus {
  url: string
  /** ok, or retrying (the store failed: see lastError), or starting. */
  state: 'starting' | 'ok' | 'retrying'
  /** Every record up to here is in the archive. */
  archivedSeq: number
  /** Age of the oldest record not archived yet (s); 0 when everything is. */
  lagSeconds: number
  /** Records taken but not uploaded yet (bytes). */
  pendingBytes: number
  uploaded: { chunks: number, chunkBytes: number, rawBytes: number, regions: number, regionBytes: number, regionsReused: number }
  bases: number
  lastBase?: { seq: number, complete: number, at: string }
  building?: { volumes: number, regionsDone: number }
  /** Records the journal dropped before they were archived (the store was away past the journal limit): a new base closes the gap. */
  gap?: { afterSeq: number, fromSeq: number }
  /** Gaps since start (each closed by a base once the store is back). */
  gaps: number
  failures: number
  lastError?: { code: string, message: string, at: string }
  lastUploadAt?: string
}

/** Upload is a sealed chunk on its way to the store. */
interface Upload { chunk: ChunkInfo, raw: number, since: number, finished: boolean, done: Promise<true | undefined> }

const MAX_BACKOFF_MS = 30_000
/** Chunks uploaded at once (an object store answers each put after a round trip or more). */
const UPLOADS_IN_FLIGHT = 4

export class Archiver {
  private stopped = false
  private readonly stopper = new AbortController()
  private loops: Promise<void>[] = []
  private cursor = 0
  private pending: Buffer[] = []
  private pendingBytes = 0
  private pendingFirst = 0
  private pendingSince = 0
  private pendingEnds: Array<[number, number]> = []
  /** Sealed chunks being uploaded, oldest first. */
  private uploads: Upload[] = []
  private chunks: ChunkInfo[] = []
  private bases: BaseInfo[] = []
  /** SHA-256 of every region object the archive holds (from the newest base, and uploaded since). */
  private readonly held = new Set<string>()
  private needBase = false
  /** When a due base was found unneeded (nothing written since the newest). */
  private baseCheckedAt = 0
  private baseWake: (() => void) | undefined
  private readonly st: ArchiveStatus

  constructor (private readonly source: PrimaryService, private readonly store: ObjectStore, private readonly opts: ArchiverOptions) {
    this.st = {
      url: store.url, state: 'starting', archivedSeq: 0, lagSeconds: 0, pendingBytes: 0,
      uploaded: { chunks: 0, chunkBytes: 0, rawBytes: 0, regions: 0, regionBytes: 0, regionsReused: 0 },
      bases: 0, gaps: 0, failures: 0,
    }
  }

  status (): ArchiveStatus {
    const oldest = this.uploads[0]?.since ?? (this.pending.length > 0 ? this.pendingSince : undefined)
    const lag = oldest !== undefined ? (Date.now() - oldest) / 1000 : 0
    const inAir = this.uploads.reduce((n, u) => n + u.raw, 0)
    return { ...this.st, lagSeconds: Math.max(0, lag), pendingBytes: this.pendingBytes + inAir, bases: this.bases.length }
  }

  start (): void {
    this.loops = [this.journalLoop().catch(err => this.opts.log.error('archive.stopped', { err }))]
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.stopper.abort()
    this.baseWake?.()
    // The base loop is started by the journal loop: wait for whichever exist.
    for (let i = 0; i < this.loops.length; i++) await this.loops[i]
    this.store.close()
  }

  /** journalLoop: find where the archive stands, register, then take groups and seal chunks, forever. */
  private async journalLoop (): Promise<void> {
    await this.retry('discover', () => this.discover())
    const reply = await this.retry('register', () => this.register())
    if (this.stopped || !reply) return
    this.cursor = reply.startSeq
    const last = this.st.archivedSeq
    if (reply.fullSync && last > 0 && reply.startSeq > last) this.gap(last, reply.startSeq)
    if (reply.fullSync || this.bases.length === 0) this.needBase = true
    this.loops.push(this.baseLoop().catch(err => this.opts.log.error('archive.base_stopped', { err })))
    const sealMs = this.opts.sealMs ?? 10_000
    const sealBytes = this.opts.sealBytes ?? 16 * 1024 * 1024
    while (!this.stopped) {
      // While the store fails, the backlog stays in the journal (bounded by
      // --journal-limit), not in memory: take nothing until it answers.
      if (this.st.state === 'retrying' && this.uploads.length > 0) { await this.settleOldest(); continue }
      let batch: GroupBatch
      try {
        let due = this.pending.length > 0 ? Math.max(0, this.pendingSince + sealMs - Date.now()) : sealMs
        if (this.uploads.length > 0) due = Math.min(due, 100)
        batch = await this.source.groups({ nodeId: this.opts.nodeId, after: this.cursor, maxBytes: sealBytes, waitMs: Math.max(50, due), signal: this.stopper.signal })
      } catch (err) {
        if (this.stopped) break
        if (isVolmirrorError(err, 'RESYNC_REQUIRED')) { await this.afterDrop(); continue }
        if (isVolmirrorError(err, 'NOT_REGISTERED')) { await this.retry('register', () => this.register()).then(r => { if (r) this.resume(r) }); continue }
        this.opts.log.warn('archive.groups_failed', { err })
        await this.sleep(1000)
        continue
      }
      this.take(batch)
      await this.settleFinished()
      const atEnd = this.pendingEnds.length > 0 && this.pendingEnds[this.pendingEnds.length - 1]![0] === this.cursor
      if (atEnd && (this.pendingBytes >= sealBytes || Date.now() - this.pendingSince >= sealMs)) await this.seal()
    }
  }

  /** take copies a batch's records into the chunk being filled. */
  private take (batch: GroupBatch): void {
    try {
      for (const r of batch.records) {
        if (this.pending.length === 0) { this.pendingFirst = r.seq; this.pendingSince = r.ts || Date.now() }
        this.pending.push(Buffer.from(r.bytes))
        this.pendingBytes += r.bytes.length
        this.cursor = r.seq
      }
      const last = batch.records[batch.records.length - 1]
      if (last && this.cursor === batch.groupEnd) this.pendingEnds.push([batch.groupEnd, last.ts])
    } finally {
      batch.release?.()
    }
  }

  /**
   * seal starts the upload of the chunk being filled (it ends at a group
   * boundary: sealed only there) and lets the next fill meanwhile; at most
   * UPLOADS_IN_FLIGHT chunks are in the air, acknowledged in seq order
   * once each is in the store.
   */
  private async seal (): Promise<void> {
    if (this.pending.length === 0) return
    const first = this.pendingFirst
    const [last, lastTs] = this.pendingEnds[this.pendingEnds.length - 1]!
    const raw = this.pendingBytes
    const body = encodeChunk(this.pending, first, last, this.pendingEnds)
    const key = chunkKey(first, last, lastTs)
    const u: Upload = { chunk: { key, first, last, lastTs, size: body.length }, raw, since: this.pendingSince, finished: false, done: Promise.resolve(undefined) }
    u.done = this.retry(`upload ${key}`, async () => { await this.store.put(key, body); return true as const }).finally(() => { u.finished = true })
    this.uploads.push(u)
    this.pending = []
    this.pendingBytes = 0
    this.pendingEnds = []
    while (this.uploads.length >= UPLOADS_IN_FLIGHT) await this.settleOldest()
  }

  /** settleFinished takes in the chunks whose upload ended, oldest first, without waiting. */
  private async settleFinished (): Promise<void> {
    while (this.uploads.length > 0 && this.uploads[0]!.finished) await this.settleOldest()
  }

  /** settleAll waits for every chunk in the air. */
  private async settleAll (): Promise<void> {
    while (this.uploads.length > 0) await this.settleOldest()
  }

  private async settleOldest (): Promise<void> {
    const u = this.uploads[0]!
    const ok = await u.done
    this.uploads.shift()
    if (ok !== true) return // stopped: the journal still has it for the next start
    this.chunks.push(u.chunk)
    this.st.archivedSeq = u.chunk.last
    this.st.uploaded.chunks++
    this.st.uploaded.chunkBytes += u.chunk.size
    this.st.uploaded.rawBytes += u.raw
    this.st.lastUploadAt = new Date().toISOString()
    this.opts.log.debug('archive.chunk', { key: u.chunk.key, raw: u.raw, bytes: u.chunk.size })
    await this.source.ack(this.opts.nodeId, u.chunk.last).catch(err => this.opts.log.warn('archive.ack_failed', { err }))
  }

  /** afterDrop: the journal dropped records before they were archived; seal what was taken, take a new base. */
  private async afterDrop (): Promise<void> {
    await this.seal()
    await this.settleAll()
    const plan = await this.retry('resync', () => this.source.resync(this.opts.nodeId))
    if (plan) this.restartAt(plan.fromSeq)
  }

  private resume (reply: RegisterReply): void {
    if (reply.fullSync && reply.startSeq !== this.cursor) this.restartAt(reply.startSeq)
  }

  /** restartAt goes on from `seq` after a gap: what was taken is dropped, a base will close the gap. */
  private restartAt (seq: number): void {
    this.gap(this.cursor, seq)
    this.pending = []
    this.pendingBytes = 0
    this.pendingEnds = []
    this.cursor = seq
    this.needBase = true
    this.baseWake?.()
  }

  private gap (afterSeq: number, fromSeq: number): void {
    this.st.gap = { afterSeq, fromSeq }
    this.st.gaps++
    this.opts.log.warn('archive.gap', { afterSeq, fromSeq, note: 'records were dropped before they reached the archive (the store was away past the journal limit); points in between cannot be restored; a new base snapshot follows' })
  }

  private async register (): Promise<RegisterReply> {
    const last = this.st.archivedSeq
    return await this.source.register({
      nodeId: this.opts.nodeId,
      epoch: this.opts.epoch,
      regionSize: this.opts.regionSize,
      ...(last > 0 ? { appliedSeq: last, lastSeq: last } : {}),
      ...(this.opts.history() ? { history: this.opts.history()! } : {}),
      kind: 'archive',
    })
  }

  /** discover reads what the archive holds: its chunks, its bases, and the regions of the newest base. */
  private async discover (): Promise<void> {
    this.chunks = (await this.store.list('journal/')).map(o => parseChunkKey(o.key, o.size)).filter((c): c is ChunkInfo => c !== undefined)
    this.bases = (await this.store.list('bases/')).map(o => parseBaseKey(o.key)).filter((b): b is BaseInfo => b !== undefined).sort((a, b) => a.seq - b.seq)
    this.st.archivedSeq = this.chunks.reduce((m, c) => Math.max(m, c.last), 0)
    const newest = this.bases[this.bases.length - 1]
    if (newest) {
      const m = decodeManifest(await this.store.get(newest.key), newest.key)
      if (m.regionSize !== this.opts.regionSize) {
        throw new VolmirrorError('INVALID_ARGUMENT', `${this.store.url} holds an archive of regions of ${m.regionSize} bytes; this primary uses ${this.opts.regionSize}: use another prefix`)
      }
      for (const sha of regionShas(m)) this.held.add(sha)
      this.st.lastBase = { seq: newest.seq, complete: newest.complete, at: new Date(newest.ts).toISOString() }
    }
    this.opts.log.info('archive.opened', { url: this.store.url, chunks: this.chunks.length, bases: this.bases.length, archivedSeq: this.st.archivedSeq })
  }

  /** baseLoop takes a base when one is needed or due, then applies retention. */
  private async baseLoop (): Promise<void> {
    const every = this.opts.baseEveryMs ?? 24 * 3600_000
    while (!this.stopped) {
      const newest = this.bases[this.bases.length - 1]
      const due = this.needBase || !newest ? 0 : Math.max(newest.ts, this.baseCheckedAt) + every - Date.now()
      if (due > 0) {
        await new Promise<void>(resolve => {
          const t = setTimeout(resolve, Math.min(due, 60_000))
          this.baseWake = () => { clearTimeout(t); resolve() }
        })
        this.baseWake = undefined
        continue
      }
      // Nothing written since the newest base: it is still the latest state.
      if (!this.needBase && newest && this.st.archivedSeq <= newest.seq && this.pending.length === 0) {
        this.baseCheckedAt = Date.now()
        continue
      }
      this.needBase = false
      const ok = await this.retry('base snapshot', () => this.takeBase())
      if (ok === undefined && !this.stopped) this.needBase = true
      if (this.opts.retentionMs !== undefined && !this.stopped) {
        await this.retry('retention', () => this.applyRetention(this.opts.retentionMs!))
      }
    }
  }

  /** takeBase writes one base snapshot: regions the archive holds are referenced, the others uploaded. */
  async takeBase (): Promise<BaseInfo> {
    const list = await this.source.volumes()
    const rs = this.opts.regionSize
    const volumes: ArchivedVolume[] = []
    let complete = list.asOf
    this.st.building = { volumes: list.volumes.length, regionsDone: 0 }
    try {
      for (const v of list.volumes) {
        const regions: ArchivedRegion[] = []
        const n = Math.ceil(v.size / rs)
        for (let from = 0; from < n; from += 4096) {
          // Checksums only when the archive holds regions they could match:
          // a code the primary lacks costs a read and a hash, and a region
          // to upload is read and hashed anyway.
          const info = await this.source.regions(v.name, from, Math.min(4096, n - from), this.held.size > 0)
          if (info.birth !== v.birth) throw new VolmirrorError('REGION_CHANGED', `${v.name} was renamed or replaced while the base was taken; taking it again`)
          const todo = info.regions.filter(r => r.realized && r.length > 0)
          await eachLimited(todo, this.opts.concurrency ?? 16, async r => {
            if (this.stopped) throw new VolmirrorError('CLOSED', 'the archiver stopped')
            if (r.sha256 && this.held.has(r.sha256)) {
              regions.push([r.index, r.length, r.sha256, r.asOf])
              complete = Math.max(complete, r.asOf)
              this.st.uploaded.regionsReused++
            } else {
              const got = await this.readRegion(v.name, r.index, v.birth)
              if (got) {
                regions.push([r.index, got.data.length, got.sha, got.asOf])
                complete = Math.max(complete, got.asOf)
              }
            }
            this.st.building!.regionsDone++
          })
        }
        regions.sort((a, b) => a[0] - b[0])
        volumes.push({ name: v.name, size: v.size, mode: v.mode, mtimeMs: v.mtimeMs, ...(v.birth !== undefined ? { birth: v.birth } : {}), regions })
      }
      const history = this.opts.history()
      const manifest: BaseManifest = {
        v: 1, primaryId: this.opts.primaryId, epoch: this.opts.epoch, ...(history ? { history } : {}),
        regionSize: rs, seq: list.asOf, complete, ts: Date.now(), volumes,
      }
      const key = baseKey(manifest.seq, complete, manifest.ts)
      await this.store.put(key, encodeManifest(manifest))
      const info: BaseInfo = { key, seq: manifest.seq, complete, ts: manifest.ts }
      this.bases.push(info)
      this.st.lastBase = { seq: info.seq, complete, at: new Date(info.ts).toISOString() }
      if (this.st.gap && info.seq >= this.st.gap.fromSeq) delete this.st.gap
      this.opts.log.info('archive.base', { key, volumes: volumes.length, regions: volumes.reduce((k, v) => k + v.regions.length, 0), seq: info.seq, complete })
      return info
    } finally {
      delete this.st.building
    }
  }

  /** readRegion reads one region from the primary (as of its answer's seq) and uploads it unless the archive holds it; undefined for zeros. */
  private async readRegion (volume: string, index: number, birth: number | undefined): Promise<{ sha: string, asOf: number, data: Buffer } | undefined> {
    const rs = this.opts.regionSize
    const buf = Buffer.alloc(rs)
    let asOf = 0
    let length = 0
    let moved = false
    await this.source.fetchRegion(volume, index, {
      begin: (a, size, b) => {
        asOf = a
        length = Math.max(0, Math.min(rs, size - index * rs))
        if (b !== birth) moved = true
      },
      data: (offset, chunk) => { buf.set(chunk, offset - index * rs) },
    })
    if (moved) throw new VolmirrorError('REGION_CHANGED', `${volume} was renamed or replaced while the base was taken; taking it again`)
    const data = buf.subarray(0, length)
    // The zero test and SHA-256 (off the main thread) the region codes use.
    const facts = await describeBytes(data, true)
    if (!facts.realized) return undefined
    const sha = facts.sha256!
    if (!this.held.has(sha)) {
      const body = compressBody([data])
      await this.store.put(regionKey(sha), body)
      this.held.add(sha)
      this.st.uploaded.regions++
      this.st.uploaded.regionBytes += body.length
    } else {
      this.st.uploaded.regionsReused++
    }
    return { sha, asOf, data }
  }

  /**
   * applyRetention deletes what no point inside the window needs: bases
   * before the newest one older than the cutoff, the chunks before it,
   * then the regions no kept base references. Manifests go first, so a
   * restore never finds a base whose regions are gone.
   */
  async applyRetention (retentionMs: number): Promise<void> {
    const decision = retained(this.bases, this.chunks, Date.now() - retentionMs)
    if (decision.dropBases.length === 0 && decision.dropChunks.length === 0) return
    await this.store.delete(decision.dropBases.map(b => b.key))
    this.bases = decision.bases
    await this.store.delete(decision.dropChunks.map(c => c.key))
    const dropped = new Set(decision.dropChunks.map(c => c.key))
    this.chunks = this.chunks.filter(c => !dropped.has(c.key))
    const keep = new Set<string>()
    for (const b of this.bases) {
      const m = decodeManifest(await this.store.get(b.key), b.key)
      for (const sha of regionShas(m)) keep.add(sha)
    }
    const orphans = (await this.store.list('regions/')).map(o => parseRegionKey(o.key)).filter((sha): sha is string => sha !== undefined && !keep.has(sha))
    await this.store.delete(orphans.map(regionKey))
    for (const sha of orphans) this.held.delete(sha)
    this.opts.log.info('archive.retention', { bases: decision.dropBases.length, chunks: decision.dropChunks.length, regions: orphans.length })
  }

  /** restorable is what `status` and `archive ls` call the restorable stretches. */
  restorable (): Array<{ fromSeq: number, toSeq: number }> {
    return spans(this.bases, this.chunks).filter(s => s.last >= s.base.complete).map(s => ({ fromSeq: s.base.complete, toSeq: s.last }))
  }

  /** retry runs `fn` until it succeeds or the archiver stops (undefined then), backing off and saying why. */
  private async retry<T> (what: string, fn: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const r = await fn()
        if (this.st.state !== 'ok') this.opts.log.info('archive.ok', { after: what, failures: this.st.failures })
        this.st.state = 'ok'
        this.st.failures = 0
        return r
      } catch (err) {
        if (this.stopped) return undefined
        const e = isVolmirrorError(err) ? err : new VolmirrorError('ARCHIVE_UNREACHABLE', (err as Error).message ?? String(err), { cause: err })
        this.st.state = 'retrying'
        this.st.failures++
        this.st.lastError = { code: e.code, message: `${what}: ${e.message}`, at: new Date().toISOString() }
        if (this.st.failures === 1 || this.st.failures % 10 === 0) this.opts.log.warn('archive.retrying', { what, failures: this.st.failures, err: e })
        await this.sleep(Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempt, 10)) * (0.75 + Math.random() / 2))
      }
    }
    return undefined
  }

  private async sleep (ms: number): Promise<void> {
    if (this.stopped) return
    await new Promise<void>(resolve => {
      const t = setTimeout(resolve, ms)
      this.stopper.signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
    })
  }
}

