/**
 * journal: the ordered, durable list of records.
 *
 * Two parts. The record bytes (header, payload, CRC: lib/core/record.ts)
 * are appended to journal segments (journal-segments.ts), synchronously,
 * before the caller touches an image: that append is the write-ahead step.
 * LevelDB holds one entry per record, keyed by seq (8 bytes, big-endian):
 * the record's header (seq, ts, op, volume, offset, length, mode, target)
 * and where its bytes are ({@link encodeIndexEntry}). Entries are written
 * behind, with group commit: one LevelDB batch carries every record
 * appended while the previous batch was being written.
 *
 * Why the split: a LevelDB round trip costs ~40 µs here (a libuv thread-pool
 * hop) and ~390 µs with a 128 KiB value, while appending to a cached segment
 * costs 3 µs (4 KiB) to 21 µs (128 KiB). The segment record is
 * self-describing, so nothing is lost if the process dies before its entry
 * is written: `open` parses the segments past the last entry and indexes
 * what it finds. Readers (shipping, replay) read through the index.
 *
 * Durability is the same as with LevelDB in the path: an append survives
 * the process being killed (it is in the page cache), and `sync()`
 * (fdatasync of the segments written since the last sync; concurrent
 * callers share one) makes everything appended before it survive power loss.
 *
 * Seqs are contiguous: assigned at append, and a failed append hands its
 * seq to the next one.
 *
 * With the native data path (`startNative`), native writers assign seqs and
 * append on FUSE threads; the journal indexes what they appended when it is
 * drained (`acceptNative`, through `catchUp`), and its own appends go
 * through the native side too, with the writers paused by the caller.
 */
import path from 'node:path'
import { GroupCommit } from '../core/group-commit.js'
import {
  decodeRecord, encodeHead, encodeRecord, HEADER_SIZE, keySeq, peekSeq, recordParts, seqKey,
  type DecodedRecord, type EncodedRecord, type Op, type RecordFields, type RecordHeader, OP_CODES,
} from '../core/record.js'
import { VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import { SegmentRing, type SegmentAppender, type SegmentLocation } from './journal-segments.js'
import type { BinaryLevel, StateStore } from './state-store.js'

interface PendingEntry { seq: number, loc: SegmentLocation, head: Uint8Array }

interface JournalState {
  lastSeq: number
  /** The oldest seq still kept; everything below it was trimmed. */
  firstSeq: number
}

/** JournalStats is what status shows about the journal. */
export interface JournalStats {
  firstSeq: number
  lastSeq: number
  records: number
  bytes: number
  /** LevelDB batches written, and records they carried (records / batches = the group commit factor). */
  batches: number
  batchedRecords: number
  segments: number
}

/** IndexEntry is a decoded LevelDB entry: the record's header fields and where its bytes are. */
export interface IndexEntry extends RecordHeader {
  loc: SegmentLocation
  mode: number
  target: string
  /** Where the payload starts within the record (header and names before it). */
  payloadAt: number
}

const INDEX_VERSION = 1
const INDEX_FIXED = 13

/**
 * encodeIndexEntry lays out a LevelDB journal entry (version 1):
 *   u8 version, u32 segment, u32 offset in segment, u32 record size,
 *   then the record's head (header and names, as in the record itself).
 * `fixtures/journal-index-v1.bin` pins it.
 */
export function encodeIndexEntry (loc: SegmentLocation, head: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(INDEX_FIXED + head.length)
  b[0] = INDEX_VERSION
  b.writeUInt32BE(loc.segment, 1)
  b.writeUInt32BE(loc.offset, 5)
  b.writeUInt32BE(loc.size, 9)
  b.set(head, INDEX_FIXED)
  return b
}

const OPS: Op[] = []
for (const [op, code] of Object.entries(OP_CODES)) OPS[code] = op as Op

/** decodeIndexEntry reads an entry made by {@link encodeIndexEntry}. */
export function decodeIndexEntry (b: Buffer): IndexEntry {
  if (b[0] !== INDEX_VERSION || b.length < INDEX_FIXED + HEADER_SIZE) {
    throw new VolmirrorError('RECORD_CORRUPT', `journal index entry has version ${b[0]} or is too short (${b.length} bytes)`)
  }
  const h = b.subarray(INDEX_FIXED)
  const op = OPS[h[1]!]
  if (!op) throw new VolmirrorError('RECORD_CORRUPT', `journal index entry has unknown op code ${h[1]}`)
  const n = h.readUInt16BE(40)
  const m = h.readUInt16BE(42)
  return {
    seq: peekSeq(h),
    ts: readU64(h, 12),
    op,
    volume: h.toString('utf8', HEADER_SIZE, HEADER_SIZE + n),
    offset: readU64(h, 20),
    length: readU64(h, 28),
    mode: h.readUInt32BE(36),
    target: h.toString('utf8', HEADER_SIZE + n, HEADER_SIZE + n + m),
    payloadAt: HEADER_SIZE + n + m,
    loc: { segment: b.readUInt32BE(1), offset: b.readUInt32BE(5), size: b.readUInt32BE(9) },
  }
}

function readU64 (b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 0x100000000 + b.readUInt32BE(at + 4)
}

/** Journal is a node's record log: segment files plus a LevelDB index. */
export class Journal {
  private readonly level: BinaryLevel
  private readonly segments: SegmentRing
  private readonly index: GroupCommit<PendingEntry>
  /** Indexed position, persisted with every index batch. */
  private state: JournalState = { lastSeq: 0, firstSeq: 1 }
  private appendedSeq = 0
  /** Bytes appended since open (monotonic): drives checkpoints. */
  appendedBytes = 0
  private readonly sizes = new SeqSizes()
  private opened = false
  private syncing: Promise<void> | undefined
  private syncAgain: Promise<void> | undefined
  /** Serialises everything that changes the index and its meta (index batches, trims, truncations). */
  private metaChain: Promise<unknown> = Promise.resolve()
  /** The native writers, while they append (see startNative). */
  private native: NativeAppender | undefined
  /** Brings in what the native writers appended (set with startNative): called before a sync or a flush. */
  catchUp: (() => void) | undefined
  /** Entries appended whose index entry is not written yet: `read` with `unindexed` finds them here. */
  private readonly unindexed = new Map<number, PendingEntry>()

  /** The meta key of its position: `journal` for the node's journal, `journal:NAME` for others (a DR's undo log). */
  private readonly metaKey: string

  constructor (private readonly store: StateStore, private readonly log: Logger, opts: { name?: string, segmentSize?: number } = {}) {
    const name = opts.name ?? 'journal'
    this.metaKey = name === 'journal' ? 'journal' : `journal:${name}`
    this.level = store.binary(name)
    this.segments = new SegmentRing(path.join(store.dir, name), log, opts.segmentSize ? { segmentSize: opts.segmentSize } : {})
    this.index = new GroupCommit<PendingEntry>(batch => this.writeIndex(batch, false), {
      // Nobody waits for an entry on the write path: let a few milliseconds
      // of appends share one LevelDB batch (readers can ask for a flush).
      delayMs: 5,
      onError: (err, batch) => this.log.error('journal.index_write_failed', { records: batch.length, retry: true, err }),
    })
  }

  /**
   * open loads the index, checks it is gap-free, opens the segments, and
   * indexes records that were appended but not yet indexed when the process
   * stopped.
   */
  async open (): Promise<void> {
    const saved = await this.store.getMeta<JournalState>(this.metaKey)
    if (saved) this.state = { ...saved }
    const live = new Map<number, number>()
    let tail: SegmentLocation | undefined
    let expect = this.state.firstSeq
    for await (const [key, value] of this.level.iterator()) {
      const seq = keySeq(key)
      if (seq !== expect) {
        throw new VolmirrorError('STATE_INVALID', `journal has a gap: expected seq ${expect}, found ${seq}`, { details: { expected: expect, found: seq } })
      }
      const e = decodeIndexEntry(value)
      live.set(e.loc.segment, seq)
      tail = e.loc
      this.sizes.push(e.loc.size)
      expect++
    }
    if (expect !== this.state.firstSeq && expect - 1 !== this.state.lastSeq) {
      throw new VolmirrorError('STATE_INVALID', `journal ends at seq ${expect - 1} but its meta says ${this.state.lastSeq}`)
    }
    this.sizes.first = this.state.firstSeq
    const found = await this.segments.open(live, tail, this.state.lastSeq + 1)
    if (found.length > 0) {
      await this.writeIndex(found.map(r => ({ seq: r.seq, loc: r.loc, head: headOf(r.bytes) })), true)
      this.log.info('journal.tail_indexed', { from: found[0]!.seq, to: found[found.length - 1]!.seq })
    }
    this.appendedSeq = this.state.lastSeq
    this.opened = true
  }

  /** lastSeq is the last seq appended (in a segment; maybe not yet indexed, or drained from native writers). */
  get lastSeq (): number { return this.native ? this.native.lastSeq : this.appendedSeq }
  /** indexedSeq is the last seq whose LevelDB entry is written: readers see up to here. */
  get indexedSeq (): number { return this.state.lastSeq }
  /** firstSeq is the oldest seq still kept. */
  get firstSeq (): number { return this.state.firstSeq }

  /**
   * append assigns the next seq to a mutation and writes the record to the
   * current segment (synchronously: the payload is written straight from
   * `fields.data`, never copied). Its LevelDB entry follows in the next
   * index batch. Throws (and gives the seq back) if the segment write fails.
   */
  append (fields: RecordFields, now = Date.now()): EncodedRecord & { loc: SegmentLocation } {
    if (!this.opened) throw new VolmirrorError('CLOSED', 'journal is not open')
    if (this.native && (!this.native.isPaused || this.native.lastSeq !== this.appendedSeq)) {
      throw new VolmirrorError('STATE_INVALID', 'journal append with native writers running: pause them and catch up first')
    }
    const record = encodeRecord(this.appendedSeq + 1, now, fields)
    const [loc] = this.segments.appendSync([{ seq: record.seq, parts: recordParts(record), size: record.size }])
    this.appendedSeq = record.seq
    this.appendedBytes += record.size
    this.pushEntry({ seq: record.seq, loc: loc!, head: record.head })
    return Object.assign(record, { loc: loc! })
  }

  /**
   * readSync reads `buf.length` bytes at `at` within the record at `loc`
   * (e.g. part of its payload), on this thread: for readers that must see
   * one moment, like a DR's history views.
   */
  readSync (loc: SegmentLocation, at: number, buf: Buffer): void {
    if (at < 0 || at + buf.length > loc.size) throw new VolmirrorError('INVALID_ARGUMENT', `read of ${buf.length} bytes at ${at} outside a record of ${loc.size}`)
    this.segments.readSync(loc.segment, loc.offset + at, buf)
  }

  /**
   * startNative hands appending to native writers at the journal's current
   * position: `start` starts them there and returns their handle.
   */
  startNative (start: (at: ReturnType<SegmentRing['position']> & { lastSeq: number }) => NativeAppender, catchUp: () => void): void {
    if (this.native) throw new VolmirrorError('STATE_INVALID', 'native writers already started')
    const native = start({ ...this.segments.position(), lastSeq: this.appendedSeq })
    this.segments.attachNative(native)
    this.native = native
    this.catchUp = catchUp
  }

  /** stopNative takes appending back once the native writers stopped and their last entries were accepted. */
  stopNative (): void {
    const native = this.native
    if (!native) return
    const at = native.state()
    this.native = undefined
    this.catchUp = undefined
    this.segments.detachNative({ segment: at.segment, segmentOffset: at.segmentOffset, nextSegment: at.nextSegment })
    this.appendedSeq = at.lastSeq
  }

  /**
   * acceptNative takes records the native writers appended (drained, in
   * seq order): they get their index entries like any append.
   */
  acceptNative (entries: Array<{ seq: number, ts: number, op: Op, offset: number, length: number, segment: number, segOffset: number, size: number }>,
    volumeOf: (entry: number) => string): void {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!
      if (e.seq !== this.appendedSeq + 1) throw new VolmirrorError('STATE_INVALID', `native writers appended seq ${e.seq} where ${this.appendedSeq + 1} was expected`)
      const loc = { segment: e.segment, offset: e.segOffset, size: e.size }
      this.segments.noteNative(loc, e.seq)
      this.appendedSeq = e.seq
      this.appendedBytes += e.size
      this.pushEntry({ seq: e.seq, loc, head: encodeHead(e.seq, e.ts, { op: e.op, volume: volumeOf(i), offset: e.offset, length: e.length }) })
    }
  }

  /**
   * sync resolves once every record appended before it is durable on disk.
   * Calls that arrive while a sync runs share the next one.
   */
  sync (): Promise<void> {
    this.catchUp?.()
    if (!this.syncing) {
      this.syncing = this.segments.syncDirty().finally(() => { this.syncing = undefined })
      return this.syncing
    }
    this.syncAgain ??= this.syncing.catch(() => {}).then(() => {
      this.syncAgain = undefined
      return this.sync()
    })
    return this.syncAgain
  }

  /** indexed resolves once every record appended so far has its LevelDB entry. */
  indexed (): Promise<void> {
    this.catchUp?.()
    return this.index.flushed()
  }

  /**
   * storeAll stores records that already have their seqs (a DR storing
   * what its primary sent, as received): appended before it resolves, and
   * durable if `sync` (their index entries follow: `read` with `unindexed`
   * finds them meanwhile, and after a crash the tail scan indexes them
   * again; sync mode confirms them as soon as they are durable). They must
   * continue the journal.
   */
  async storeAll (records: DecodedRecord[], sync: boolean): Promise<void> {
    if (records.length === 0) return
    if (this.native) throw new VolmirrorError('STATE_INVALID', 'storeAll is for a DR journal, not one with native writers')
    let expect = this.appendedSeq + 1
    for (const r of records) {
      if (r.seq !== expect) throw new VolmirrorError('PEER_PROTOCOL', `record seq ${r.seq} does not continue the journal at ${expect}`)
      expect++
    }
    const locs = this.segments.appendSync(records.map(r => ({ seq: r.seq, parts: [r.bytes], size: r.bytes.length })))
    this.appendedSeq = records[records.length - 1]!.seq
    for (const r of records) this.appendedBytes += r.bytes.length
    records.forEach((r, i) => this.pushEntry({ seq: r.seq, loc: locs[i]!, head: headOf(r.bytes) }))
    if (sync) await this.sync()
    else await this.index.flushed()
  }

  /**
   * read returns indexed records with seq in (afterSeq, upto], oldest
   * first, at most `maxRecords` and about `maxBytes` (always at least one);
   * with `unindexed`, also those appended whose index entry is not written
   * yet (sync mode ships a group before its entries reach LevelDB). Every
   * record is verified (CRC, seq) as it is read back.
   */
  async read (afterSeq: number, opts: { upto?: number, maxRecords?: number, maxBytes?: number, unindexed?: boolean } = {}): Promise<DecodedRecord[]> {
    // Entries not indexed yet (with `unindexed`), taken before the index is
    // read: one that gets indexed meanwhile is found in one or the other.
    const recent: PendingEntry[] = []
    if (opts.unindexed) {
      for (let s = Math.max(afterSeq, this.state.lastSeq) + 1; s <= Math.min(opts.upto ?? Infinity, this.appendedSeq); s++) {
        const e = this.unindexed.get(s)
        if (!e) break
        recent.push(e)
      }
    }
    const upto = Math.min(opts.upto ?? Infinity, this.state.lastSeq)
    const entries: Array<{ seq: number, loc: SegmentLocation }> = []
    let bytes = 0
    const maxBytes = opts.maxBytes ?? Infinity
    const maxRecords = opts.maxRecords ?? Infinity
    if (upto > afterSeq) {
      const it = this.level.iterator({ gt: seqKey(afterSeq), lte: seqKey(upto), limit: Number.isFinite(maxRecords) ? maxRecords : -1 })
      try {
        for await (const [, value] of it) {
          const e = decodeIndexEntry(value)
          if (entries.length > 0 && bytes + e.loc.size > maxBytes) break
          entries.push(e)
          bytes += e.loc.size
        }
      } finally {
        await it.close()
      }
    }
    let next = entries.length > 0 ? entries[entries.length - 1]!.seq + 1 : afterSeq + 1
    for (const e of recent) {
      if (e.seq < next) continue
      if (e.seq !== next || entries.length >= maxRecords || (entries.length > 0 && bytes + e.loc.size > maxBytes)) break
      entries.push(e)
      bytes += e.loc.size
      next++
    }
    if (entries.length === 0) return []
    const raw = await this.segments.readRun(entries.map(e => e.loc))
    return raw.map((b, i) => {
      const r = decodeRecord(b)
      if (r.seq !== entries[i]!.seq) throw new VolmirrorError('RECORD_CORRUPT', `journal segment holds seq ${r.seq} where the index expects ${entries[i]!.seq}`)
      return r
    })
  }

  /**
   * scrub reads every record the journal keeps and checks it (CRC, seq):
   * the damaged ones are returned with their index entries (the index,
   * in LevelDB, says what they were: volume, offset, length). Cheap: the
   * journal is bounded by --journal-limit and read sequentially.
   */
  async scrub (): Promise<IndexEntry[]> {
    const damaged: IndexEntry[] = []
    for (let after = this.state.firstSeq - 1; after < this.state.lastSeq;) {
      const entries = await this.entries(after, after + 1024)
      if (entries.length === 0) break
      let raw: Array<Buffer | undefined>
      try {
        raw = await this.segments.readRun(entries.map(e => e.loc))
      } catch {
        // A short segment: record by record, to find which.
        raw = await Promise.all(entries.map(e => this.segments.readRun([e.loc]).then(r => r[0], () => undefined)))
      }
      entries.forEach((e, i) => {
        try {
          if (!raw[i] || decodeRecord(raw[i]!).seq !== e.seq) damaged.push(e)
        } catch {
          damaged.push(e)
        }
      })
      after = entries[entries.length - 1]!.seq
    }
    return damaged
  }

  /** entries reads index entries (headers and locations, no payload) with seq in (afterSeq, upto]. */
  async entries (afterSeq: number, upto = Infinity): Promise<IndexEntry[]> {
    const out: IndexEntry[] = []
    const hi = Math.min(upto, this.state.lastSeq)
    if (hi <= afterSeq) return out
    for await (const [, value] of this.level.iterator({ gt: seqKey(afterSeq), lte: seqKey(hi) })) out.push(decodeIndexEntry(value))
    return out
  }

  /**
   * trim drops records up to `upto` and frees their segments. It never
   * drops the last indexed record: its entry anchors the tail scan (where
   * appends continue) after a crash.
   */
  trim (upto: number): Promise<number> {
    return this.serially(async () => {
      const to = Math.min(upto, this.state.lastSeq - 1)
      if (to < this.state.firstSeq) return 0
      const dropped = to - this.state.firstSeq + 1
      const next: JournalState = { lastSeq: this.state.lastSeq, firstSeq: to + 1 }
      // Deletions and meta in one batch: a crash leaves one or the other state, never a mix.
      const ops: Array<{ type: 'del' | 'put', key: unknown, value?: unknown, sublevel: unknown }> = []
      for (let seq = this.state.firstSeq; seq <= to; seq++) ops.push({ type: 'del', key: seqKey(seq), sublevel: this.level })
      ops.push({ type: 'put', key: this.metaKey, value: next, sublevel: this.store.meta })
      await this.store.db.batch(ops as never)
      this.state = next
      this.sizes.dropThrough(to)
      await this.segments.release(to)
      return dropped
    })
  }

  /**
   * truncateAfter forgets records above `seq` (a tail whose bytes did not
   * survive a power loss, so never acknowledged by an fsync).
   */
  async truncateAfter (seq: number): Promise<void> {
    await this.index.flushed()
    await this.serially(async () => {
      if (seq >= this.state.lastSeq) return
      const keep = Math.max(seq, this.state.firstSeq - 1)
      const [last] = keep >= this.state.firstSeq ? await this.entries(keep - 1, keep) : []
      const next: JournalState = { lastSeq: keep, firstSeq: this.state.firstSeq }
      const ops: Array<{ type: 'del' | 'put', key: unknown, value?: unknown, sublevel: unknown }> = []
      for (let s = keep + 1; s <= this.state.lastSeq; s++) ops.push({ type: 'del', key: seqKey(s), sublevel: this.level })
      ops.push({ type: 'put', key: this.metaKey, value: next, sublevel: this.store.meta })
      await this.store.db.batch(ops as never, { sync: true })
      this.log.warn('journal.tail_dropped', { after: keep, lastSeq: this.state.lastSeq })
      this.sizes.dropAfter(keep)
      this.state = next
      this.appendedSeq = keep
      // Appends continue right after the last record kept (over the dropped
      // bytes), or in a fresh segment if none is left, so that the tail scan
      // after a crash finds them.
      await this.segments.rewind(last?.loc)
    })
  }

  /**
   * restartAt empties the journal and continues it after `seq` (a DR
   * starting a full sync at its primary's current seq).
   */
  async restartAt (seq: number): Promise<void> {
    await this.index.flushed()
    await this.serially(async () => {
      await this.level.clear()
      this.state = { lastSeq: seq, firstSeq: seq + 1 }
      await this.store.putMeta(this.metaKey, this.state, true)
      this.sizes.dropThrough(Infinity)
      this.sizes.first = seq + 1
      this.appendedSeq = seq
      await this.segments.rewind(undefined)
    })
  }

  /** cutFor returns the seq such that the indexed records after it total at most `bytes`. */
  cutFor (bytes: number): number {
    return this.sizes.cutFor(bytes)
  }

  /** pushEntry queues an appended record's index entry (and keeps it at hand for `read` until it is written). */
  private pushEntry (e: PendingEntry): void {
    this.unindexed.set(e.seq, e)
    this.index.push(e)
  }

  /** stats reports position, size and batching. */
  stats (): JournalStats {
    return {
      firstSeq: this.state.firstSeq,
      lastSeq: this.appendedSeq,
      records: this.appendedSeq - this.state.firstSeq + 1,
      bytes: this.sizes.total,
      batches: this.index.counters.flushes,
      batchedRecords: this.index.counters.items,
      segments: this.segments.stats().segments,
    }
  }

  /** close writes the remaining index entries and closes the segments; the state store is closed by its owner. */
  async close (): Promise<void> {
    if (!this.opened) return
    this.opened = false
    await this.index.flushed()
    this.index.stop()
    this.segments.close()
  }

  private writeIndex (batch: PendingEntry[], sync: boolean): Promise<void> {
    return this.serially(async () => {
      const last = batch[batch.length - 1]!.seq
      // Computed now, inside the lock: a trim may have moved firstSeq meanwhile.
      const next: JournalState = { lastSeq: last, firstSeq: this.state.firstSeq }
      const ops: Array<{ type: 'put', key: unknown, value: unknown, sublevel: unknown }> = batch.map(r => ({
        type: 'put', key: seqKey(r.seq), value: encodeIndexEntry(r.loc, r.head), sublevel: this.level,
      }))
      // The journal's position goes in the same batch: it is atomic with the entries.
      ops.push({ type: 'put', key: this.metaKey, value: next, sublevel: this.store.meta })
      await this.store.db.batch(ops as never, { sync })
      this.state = next
      for (const r of batch) { this.sizes.push(r.loc.size); this.unindexed.delete(r.seq) }
    })
  }

  private serially<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.metaChain.then(fn, fn)
    this.metaChain = run.catch(() => {})
    return run
  }
}

/** NativeAppender is what the journal needs of native writers (lib/fuse/native-path.ts NativeJournal). */
export interface NativeAppender extends SegmentAppender {
  readonly lastSeq: number
  readonly isPaused: boolean
  state (): { lastSeq: number, segment: number, segmentOffset: number, nextSegment: number }
}

function headOf (bytes: Buffer): Buffer {
  return bytes.subarray(0, HEADER_SIZE + bytes.readUInt16BE(40) + bytes.readUInt16BE(42))
}

/**
 * SeqSizes keeps the running byte total of a contiguous run of seqs so that
 * trimming any prefix updates the journal's size without reading it back.
 */
class SeqSizes {
  /** Seq of the oldest entry. */
  first = 1
  private cum = new Float64Array(1024)
  private head = 0
  private n = 0
  private base = 0

  get total (): number {
    return this.n === 0 ? 0 : this.cum[this.head + this.n - 1]! - this.base
  }

  push (size: number): void {
    if (this.head + this.n === this.cum.length) this.grow()
    const prev = this.n === 0 ? this.base : this.cum[this.head + this.n - 1]!
    this.cum[this.head + this.n] = prev + size
    this.n++
  }

  dropAfter (seq: number): void {
    this.n = Math.min(this.n, Math.max(0, seq - this.first + 1))
  }

  dropThrough (seq: number): void {
    const k = Math.min(Math.max(0, seq - this.first + 1), this.n)
    if (k === 0) return
    this.base = this.cum[this.head + k - 1]!
    this.head += k
    this.n -= k
    this.first += k
  }

  /** cutFor returns the seq after which the records kept total at most `bytes` (first - 1 if they all fit). */
  cutFor (bytes: number): number {
    if (this.total <= bytes) return this.first - 1
    const last = this.cum[this.head + this.n - 1]!
    // The earliest i whose records after it fit: last - cum[i] <= bytes.
    let lo = 0
    let hi = this.n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (last - this.cum[this.head + mid]! <= bytes) hi = mid
      else lo = mid + 1
    }
    return this.first + lo
  }

  private grow (): void {
    const size = Math.max(1024, this.n * 2)
    const next = new Float64Array(size)
    next.set(this.cum.subarray(this.head, this.head + this.n))
    this.cum = next
    this.head = 0
  }
}
