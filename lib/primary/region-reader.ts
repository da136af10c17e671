/**
 * region-reader: reads of the primary's images that a DR can rely on.
 *
 * A DR applies the journal by the asOf rule, which needs fetched bytes to
 * be exactly the image as of one seq (`asOf`), never a mix of before and
 * after a write. Reads run in the thread pool while writes are applied on
 * the main thread, so a read is made consistent like a seqlock: note the
 * versions (last applied seq) of the regions it covers and the applied seq,
 * read, compare the versions again, and retry if a write to those regions
 * landed meanwhile. After a few collisions (a very hot region) the read is
 * done synchronously on the main thread, where no write can interleave.
 *
 * Native writers (lib/primary/native-writes.ts) write on FUSE threads: they
 * stamp the versions of a write's regions (natively) before touching the
 * image, so a read is also retried when a version is above the seq it
 * would claim (a write in progress, or one not yet caught up with:
 * `catchUp` brings those in), and the synchronous fallback runs with the
 * writers held (`exclusive`).
 *
 * A region fetch is streamed (`stream`): the piece a DR reader waits for
 * is read, checked like any read, and sent first; the rest follows, and is
 * good only if no write touched the region since that first check. If one
 * did, the stream ends with REGION_CHANGED and the DR fetches the region
 * again: bytes as of one seq, or none.
 *
 * Realization and checksums come from lib/store/realization.ts (shared
 * with the DR, which describes its own regions the same way).
 */
import fs from 'node:fs'
import { crc32 } from '@node-rs/crc32'
import { BufferPool } from '../core/buffer-pool.js'
import { regionSpans } from '../core/region-map.js'
import { isUnder, renamePrefix } from '../core/volume-name.js'
import type { ImageDir } from '../store/image-dir.js'
import { describeBytes, isHole } from '../store/realization.js'
import type { VolumeFiles } from '../store/volume-files.js'
import { VolmirrorError } from '../errors.js'
import type { RegionInfo, RegionSink } from '../replication/protocol.js'

const RETRIES = 3
/** How much of a region is read and sent first for a reader that did not say how much it needs (one largest FUSE read). */
const FIRST_PIECE = 128 * 1024
/** The rest of a streamed region is read in pieces this big, so that another reader's first piece waits for one at most. */
const REST_PIECE = 256 * 1024
/** A first piece this small is read on the main thread: a thread-pool round trip costs more than the read. */
const SYNC_FIRST_MAX = 64 * 1024
/**
 * Readers first: the rest of a region waits while a reader's first piece is
 * being read or was sent less than this long ago (a reader going from one
 * untouched place to the next), so that a burst of first reads is not
 * queued behind megabytes of earlier regions on the disk, the socket and
 * both nodes' main threads...
 */
const READERS_QUIET_MS = 3
/** ...but a piece waits at most this long: a reader waiting for the rest of its region is not starved... */
const READERS_MAX_DEFER_MS = 100
/** ...and at most this many streams wait at once (each holds one of the DR's connections): past it, the oldest goes on. */
const READERS_MAX_HELD = 32

/** RegionVersions remembers, per region, the seq of the last write applied to it. */
export class RegionVersions {
  private readonly regions = new Map<string, Map<number, number>>()
  /** Per volume: the last seq that changed the volume as a whole (truncate, rename, delete). */
  private readonly whole = new Map<string, number>()
  /** The native writers' versions of a range (their seqlock stamps), when they run. */
  native: ((volume: string, offset: number, length: number) => number) | undefined

  constructor (readonly regionSize: number) {}

  /** wrote notes a write or zero of [offset, offset+length) at `seq`. */
  wrote (volume: string, offset: number, length: number, seq: number): void {
    let m = this.regions.get(volume)
    if (!m) { m = new Map(); this.regions.set(volume, m) }
    const first = Math.floor(offset / this.regionSize)
    const last = Math.floor((offset + Math.max(length, 1) - 1) / this.regionSize)
    for (let r = first; r <= last; r++) m.set(r, seq)
  }

  /** changedWhole notes an operation that touches the whole volume (truncate). */
  changedWhole (volume: string, seq: number): void {
    this.whole.set(volume, seq)
  }

  renamed (from: string, to: string, seq: number): void {
    for (const map of [this.regions, this.whole] as Array<Map<string, unknown>>) {
      for (const [name, v] of [...map]) {
        if (!isUnder(name, from)) continue
        map.delete(name)
        map.set(renamePrefix(name, from, to), v)
      }
    }
    for (const name of [...this.whole.keys()]) if (isUnder(name, to)) this.whole.set(name, seq)
    this.whole.set(to, seq)
  }

  deleted (volume: string): void {
    this.regions.delete(volume)
    this.whole.delete(volume)
  }

  /** version is the highest seq that changed any byte of [offset, offset+length). */
  version (volume: string, offset: number, length: number): number {
    let v = Math.max(this.whole.get(volume) ?? 0, this.native?.(volume, offset, length) ?? 0)
    const m = this.regions.get(volume)
    if (!m) return v
    for (const s of regionSpans(offset, Math.max(length, 1), this.regionSize)) v = Math.max(v, m.get(s.region) ?? 0)
    return v
  }
}

/** ConsistentRead is bytes of a volume as of one applied seq. */
export interface ConsistentRead {
  asOf: number
  /** The volume's size at that seq. */
  size: number
  /** The name's birth at that seq: which volume the bytes are of. */
  birth: number
  data: Buffer
}

/** RegionReader reads consistent ranges and region descriptions from a primary's images. */
export class RegionReader {
  private readonly pools = new Map<number, BufferPool>()
  /** Reads that had to be retried because a write landed, reads done on the main thread, rest pieces held back for readers. */
  readonly counters = { reads: 0, retries: 0, syncFallbacks: 0, deferred: 0 }
  /** First pieces being read now, and when the last one was sent. */
  private firstsPending = 0
  private lastFirstAt = -Infinity
  /** Streams whose rest waits for readers, oldest first. */
  private held: Array<{ since: number, go: () => void }> = []
  private heldTimer: NodeJS.Timeout | undefined
  /** Brings in what off-thread writers applied (so appliedSeq covers it). */
  catchUp: (() => void) | undefined
  /** Runs a synchronous read where no write can interleave (with off-thread writers held). */
  exclusive: <T>(fn: () => T) => T = fn => fn()
  /**
   * The least asOf bytes of a range are as of (a DR serving downstream: a
   * region fetched from upstream holds records up to its own asOf, past
   * the DR's applied seq).
   */
  floorOf: ((volume: string, offset: number, length: number) => number) | undefined

  /** settled notes versions and the seq the bytes will be as of; undefined while a write is not accounted for yet. */
  private settled (volume: string, offset: number, length: number): { before: number, asOf: number } | undefined {
    const floor = this.floorOf?.(volume, offset, length) ?? 0
    let before = this.versions.version(volume, offset, length)
    let asOf = Math.max(this.appliedSeq(), floor)
    if (before > asOf && this.catchUp) {
      this.catchUp()
      before = this.versions.version(volume, offset, length)
      asOf = Math.max(this.appliedSeq(), floor)
    }
    return before > asOf ? undefined : { before, asOf }
  }

  constructor (
    private readonly images: ImageDir,
    private readonly files: VolumeFiles,
    readonly versions: RegionVersions,
    private readonly appliedSeq: () => number,
    private readonly birthOf: (volume: string) => number,
  ) {}

  /** read reads [offset, offset+length) as of one seq (short at end of file). */
  async read (volume: string, offset: number, length: number): Promise<ConsistentRead> {
    this.counters.reads++
    return await this.files.use(volume, async (f) => {
      for (let attempt = 0; attempt < RETRIES; attempt++) {
        const at = this.settled(volume, offset, length)
        if (!at) { this.counters.retries++; continue }
        const { before, asOf } = at
        const birth = this.birthOf(volume)
        const size = this.images.fstatSync(f.fd).size
        const data = await this.readAt(f.fd, offset, Math.max(0, Math.min(length, size - offset)))
        if (this.versions.version(volume, offset, length) === before) return { asOf, size, birth, data }
        this.counters.retries++
      }
      // The region is being written continuously: read where writes cannot interleave.
      this.counters.syncFallbacks++
      return this.exclusive(() => this.readSyncConsistent(f.fd, volume, offset, length))
    })
  }

  /**
   * stream sends [offset, offset+length) to `sink` as of one seq, in body
   * order: from `first.at` (when inside the range) to the end, then from
   * the start to there; `end` gets the CRC-32 of the bytes in that order.
   * The `first.length` bytes a reader waits for go out before the rest is
   * read; without `first` the range is read in one piece. The bytes are
   * read into a pooled buffer, given back once the sink is done with them.
   */
  async stream (volume: string, offset: number, length: number, first: { at: number, length?: number | undefined } | undefined, sink: RegionSink): Promise<void> {
    this.counters.reads++
    const pool = this.poolFor(length)
    const buf = pool.take()
    const sent: Array<Promise<void>> = []
    let crc = 0
    const send = (s: number, e: number): void => {
      if (e <= s) return
      const chunk = buf.subarray(s - offset, e - offset)
      crc = crc32(chunk, crc)
      const p = sink.data(s, chunk)
      if (p) sent.push(p)
    }
    try {
      await this.files.use(volume, async (f) => {
        for (let attempt = 0; attempt < RETRIES; attempt++) {
          const at = this.settled(volume, offset, length)
          if (!at) { this.counters.retries++; continue }
          const { before, asOf } = at
          const birth = this.birthOf(volume)
          const size = this.images.fstatSync(f.fd).size
          const end = Math.max(offset, Math.min(offset + length, size))
          const from = first !== undefined && first.at > offset && first.at < end ? first.at : offset
          // The first piece: what the reader waits for (the whole range for hydration).
          const pieceEnd = first === undefined ? end : Math.min(end, from + Math.max(4096, first.length ?? FIRST_PIECE))
          const n = await this.readFirst(f.fd, buf.subarray(from - offset), pieceEnd - from, from, first !== undefined)
          if (this.versions.version(volume, offset, length) !== before || n < pieceEnd - from) { this.counters.retries++; continue }
          sink.begin(asOf, size, birth)
          send(from, pieceEnd)
          if (first !== undefined) this.lastFirstAt = performance.now()
          for (const [s, e] of pieces([[pieceEnd, end], [offset, from]], REST_PIECE)) {
            // One piece on its way at a time: a slow peer holds the read back (and the memory bounded).
            await Promise.all(sent)
            await this.yieldToReaders()
            const k = await this.images.readFull(f.fd, buf.subarray(s - offset), e - s, s)
            if (this.versions.version(volume, offset, length) !== before || k < e - s) {
              this.counters.retries++
              throw new VolmirrorError('REGION_CHANGED', `${volume} was written at [${offset}, ${offset + length}) while it was being sent; fetch it again`)
            }
            send(s, e)
          }
          await Promise.all(sent)
          sink.end?.(crc)
          return
        }
        // The region is being written continuously: read where writes cannot interleave.
        this.counters.syncFallbacks++
        const { asOf, birth, size, n } = this.exclusive(() => {
          const asOf = this.appliedSeq()
          const birth = this.birthOf(volume)
          const size = this.images.fstatSync(f.fd).size
          return { asOf, birth, size, n: readSyncFull(f.fd, buf, Math.max(0, Math.min(length, size - offset)), offset) }
        })
        const from = first !== undefined && first.at > offset && first.at < offset + n ? first.at : offset
        sink.begin(asOf, size, birth)
        send(from, offset + n)
        send(offset, from)
        await Promise.all(sent)
        sink.end?.(crc)
      })
    } finally {
      // The sink may still hold chunks of a body that failed: give the
      // buffer back only once it has let go of all of them.
      void Promise.allSettled(sent).then(() => pool.give(buf))
    }
  }

  /**
   * readFirst reads the first piece of a stream. A reader's piece counts as
   * pending meanwhile (other streams' rest waits), and a small one is read
   * on this thread.
   */
  private async readFirst (fd: number, buf: Buffer, length: number, position: number, reader: boolean): Promise<number> {
    if (!reader) return await this.images.readFull(fd, buf, length, position)
    this.firstsPending++
    try {
      if (length > SYNC_FIRST_MAX) return await this.images.readFull(fd, buf, length, position)
      let n = 0
      while (n < length) {
        const k = this.images.readSync(fd, buf.subarray(n), length - n, position + n)
        if (k === 0) break
        n += k
      }
      return n
    } finally {
      this.firstsPending--
    }
  }

  /** readersBusy tells whether a reader's first piece is under way or just went out. */
  private readersBusy (now: number): boolean {
    return this.firstsPending > 0 || now - this.lastFirstAt < READERS_QUIET_MS
  }

  /** yieldToReaders holds the rest of a stream back while readers are busy (READERS_* above). */
  private async yieldToReaders (): Promise<void> {
    if (!this.readersBusy(performance.now())) return
    this.counters.deferred++
    await new Promise<void>(resolve => {
      this.held.push({ since: performance.now(), go: resolve })
      while (this.held.length > READERS_MAX_HELD) this.held.shift()!.go()
      this.releaseHeld()
    })
  }

  /** releaseHeld lets held streams go once readers are quiet (or they waited long enough), and looks again later if some still wait. */
  private releaseHeld (): void {
    clearTimeout(this.heldTimer)
    this.heldTimer = undefined
    const now = performance.now()
    const busy = this.readersBusy(now)
    this.held = this.held.filter(h => {
      if (busy && now - h.since < READERS_MAX_DEFER_MS) return true
      h.go()
      return false
    })
    if (this.held.length === 0) return
    const quietIn = this.lastFirstAt + READERS_QUIET_MS - now
    const oldestIn = this.held[0]!.since + READERS_MAX_DEFER_MS - now
    this.heldTimer = setTimeout(() => this.releaseHeld(), Math.max(1, Math.ceil(Math.min(Math.max(quietIn, 1), oldestIn))))
  }

  private poolFor (size: number): BufferPool {
    let p = this.pools.get(size)
    if (!p) { p = new BufferPool(size); this.pools.set(size, p) }
    return p
  }

  private async readAt (fd: number, position: number, length: number): Promise<Buffer> {
    const data = Buffer.allocUnsafe(length)
    const n = length > 0 ? await this.images.readFull(fd, data, length, position) : 0
    return data.subarray(0, n)
  }

  /** readSyncConsistent reads on the main thread, where no write can interleave. */
  private readSyncConsistent (fd: number, volume: string, offset: number, length: number): ConsistentRead {
    const asOf = this.appliedSeq()
    const birth = this.birthOf(volume)
    const size = this.images.fstatSync(fd).size
    const data = Buffer.allocUnsafe(Math.max(0, Math.min(length, size - offset)))
    const n = readSyncFull(fd, data, data.length, offset)
    return { asOf, size, birth, data: data.subarray(0, n) }
  }

  /** describe reports whether a region is realized and, if asked, its SHA-256. */
  async describe (volume: string, index: number, regionSize: number, checksum: boolean): Promise<RegionInfo> {
    const start = index * regionSize
    const hole = await this.files.use(volume, async f => {
      // Synchronous from here: asOf, size and the hole check describe one moment.
      const asOf = this.appliedSeq()
      const length = Math.max(0, Math.min(regionSize, this.images.fstatSync(f.fd).size - start))
      return isHole(this.images, f.fd, start, regionSize) ? { index, length, realized: false, asOf } : undefined
    })
    if (hole) return hole
    const r = await this.read(volume, start, regionSize)
    return { index, length: r.data.length, asOf: r.asOf, ...await describeBytes(r.data, checksum) }
  }
}

/** pieces cuts the spans [s, e) into pieces of at most `size` bytes, in order. */
function pieces (spans: Array<[number, number]>, size: number): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const [s, e] of spans) for (let p = s; p < e; p += size) out.push([p, Math.min(e, p + size)])
  return out
}

/** readSyncFull reads `length` bytes at `position` into `buf` on this thread; fewer only at end of file. */
function readSyncFull (fd: number, buf: Buffer, length: number, position: number): number {
  let n = 0
  while (n < length) {
    const k = fs.readSync(fd, buf, n, length - n, position + n)
    if (k === 0) break
    n += k
  }
  return n
}
