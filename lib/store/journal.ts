/**
 * journal: the ordered, durable list of records, in LevelDB.
 *
 * On the primary, every mutation is appended here before it touches an
 * image (write-ahead), with group commit: appends that arrive while a
 * LevelDB batch is being written go out together in the next one. Each
 * committed batch is handed, in seq order and synchronously, to the
 * `onCommitted` hook, which is where the primary applies records to its
 * images: image order is journal order by construction.
 *
 * Seqs are contiguous: a seq is assigned at append, and if a batch fails,
 * everything queued behind it fails too and the next append reuses the first
 * seq that did not make it. Keys are 8-byte big-endian seqs, values encoded
 * records (lib/core/record.ts). A meta entry written in the same batch keeps
 * the last seq, so an empty (fully trimmed) journal still knows where it is.
 */
import { GroupCommit } from '../core/group-commit.js'
import { decodeRecord, encodeRecord, keySeq, seqKey, type JournalRecord, type RecordFields } from '../core/record.js'
import { VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import type { BinaryLevel, StateStore } from './state-store.js'

/** CommitHook applies committed records; a returned error fails only that record's append. */
export type CommitHook = (records: JournalRecord[]) => Array<Error | undefined> | void

/** JournalState is persisted with every batch. */
interface JournalState {
  lastSeq: number
  /** The oldest seq still kept; everything below it was trimmed. */
  firstSeq: number
}

/** AppendResult is a record with its seq, and the promise of its commit (and apply). */
export interface AppendResult {
  record: JournalRecord
  committed: Promise<void>
}

/** JournalStats is what status shows about the journal. */
export interface JournalStats {
  firstSeq: number
  lastSeq: number
  records: number
  bytes: number
  batches: number
  batchedRecords: number
}

const META_KEY = 'journal'

/** Journal is the LevelDB-backed record log of one node. */
export class Journal {
  private readonly level: BinaryLevel
  private readonly commit: GroupCommit<JournalRecord>
  private state: JournalState = { lastSeq: 0, firstSeq: 1 }
  private assignedSeq = 0
  private readonly sizes = new SeqSizes()
  private opened = false
  /** The hook called with each committed batch; set by the owner (primary write path). */
  onCommitted: CommitHook | undefined

  constructor (private readonly store: StateStore, private readonly log: Logger, opts: { name?: string } = {}) {
    this.level = store.binary(opts.name ?? 'journal')
    this.commit = new GroupCommit<JournalRecord>((batch, sync) => this.flush(batch, sync), {
      maxBytes: 32 * 1024 * 1024,
      sizeOf: r => r.bytes.length,
      onFailure: (err, batch, queued) => {
        // Nothing of this batch or the queue behind it is in LevelDB: hand
        // their seqs to the next appends so the journal stays gap-free.
        this.assignedSeq = this.state.lastSeq
        this.log.error('journal.write_failed', { records: batch.length + queued.length, err })
      },
    })
  }

  /** open loads the journal's position and the sizes of the records it keeps. */
  async open (): Promise<void> {
    const saved = await this.store.getMeta<JournalState>(META_KEY)
    if (saved) this.state = { ...saved }
    this.assignedSeq = this.state.lastSeq
    // Rebuild the byte accounting (and check contiguity) from what is kept.
    let expect = this.state.firstSeq
    for await (const [key, value] of this.level.iterator()) {
      const seq = keySeq(key)
      if (seq !== expect) {
        throw new VolmirrorError('STATE_INVALID', `journal has a gap: expected seq ${expect}, found ${seq}`, { details: { expected: expect, found: seq } })
      }
      this.sizes.push(value.length)
      expect++
    }
    if (expect - 1 !== this.state.lastSeq && expect !== this.state.firstSeq) {
      throw new VolmirrorError('STATE_INVALID', `journal ends at seq ${expect - 1} but its meta says ${this.state.lastSeq}`)
    }
    this.sizes.first = this.state.firstSeq
    this.opened = true
  }

  /** lastSeq is the last seq assigned (committed or in flight). */
  get lastSeq (): number { return this.assignedSeq }
  /** committedSeq is the last seq durable in LevelDB's log (or better). */
  get committedSeq (): number { return this.state.lastSeq }
  /** firstSeq is the oldest seq still kept. */
  get firstSeq (): number { return this.state.firstSeq }

  /**
   * append assigns the next seq to a mutation, encodes it (copying any
   * payload at once) and queues it for the next batch. `committed` resolves
   * after the batch is in LevelDB and the commit hook applied it.
   */
  append (fields: RecordFields, now = Date.now()): AppendResult {
    if (!this.opened) throw new VolmirrorError('CLOSED', 'journal is not open')
    const record = encodeRecord(++this.assignedSeq, now, fields)
    return { record, committed: this.commit.add(record) }
  }

  /** sync resolves once every record appended before it is durable (fsync of LevelDB's log). */
  sync (): Promise<void> {
    return this.commit.sync()
  }

  /** idle resolves once every appended record is committed and applied. */
  idle (): Promise<void> {
    return this.commit.idle()
  }

  /**
   * storeAll writes records that already have their seqs (a DR storing a
   * group from its primary) in one batch; they must continue the journal.
   */
  async storeAll (records: JournalRecord[], sync: boolean): Promise<void> {
    if (records.length === 0) return
    await this.commit.idle()
    let expect = this.state.lastSeq + 1
    for (const r of records) {
      if (r.seq !== expect) throw new VolmirrorError('PEER_PROTOCOL', `record seq ${r.seq} does not continue the journal at ${expect}`)
      expect++
    }
    this.assignedSeq = records[records.length - 1]!.seq
    try {
      await this.write(records, sync)
    } catch (err) {
      this.assignedSeq = this.state.lastSeq
      throw err
    }
  }

  /**
   * read returns committed records with seq in (afterSeq, upto], oldest
   * first, at most `maxRecords` and about `maxBytes` (always at least one).
   * Every record is verified (CRC) as it is decoded.
   */
  async read (afterSeq: number, opts: { upto?: number, maxRecords?: number, maxBytes?: number } = {}): Promise<JournalRecord[]> {
    const upto = Math.min(opts.upto ?? Infinity, this.state.lastSeq)
    if (upto <= afterSeq) return []
    const out: JournalRecord[] = []
    let bytes = 0
    const maxBytes = opts.maxBytes ?? Infinity
    const it = this.level.iterator({ gt: seqKey(afterSeq), lte: seqKey(upto), limit: opts.maxRecords ?? -1 })
    try {
      for await (const [, value] of it) {
        if (out.length > 0 && bytes + value.length > maxBytes) break
        out.push(decodeRecord(value))
        bytes += value.length
      }
    } finally {
      await it.close()
    }
    return out
  }

  /** trim drops records up to `upto` (never past what is committed). */
  async trim (upto: number): Promise<number> {
    const to = Math.min(upto, this.state.lastSeq)
    if (to < this.state.firstSeq) return 0
    await this.commit.idle()
    const dropped = to - this.state.firstSeq + 1
    const next: JournalState = { lastSeq: this.state.lastSeq, firstSeq: to + 1 }
    await this.level.clear({ lte: seqKey(to) })
    await this.store.putMeta(META_KEY, next)
    this.state = { lastSeq: this.state.lastSeq, firstSeq: to + 1 }
    this.sizes.dropThrough(to)
    return dropped
  }

  /** stats reports position, size and batching. */
  stats (): JournalStats {
    return {
      firstSeq: this.state.firstSeq,
      lastSeq: this.state.lastSeq,
      records: this.state.lastSeq - this.state.firstSeq + 1,
      bytes: this.sizes.total,
      batches: this.commit.counters.flushes,
      batchedRecords: this.commit.counters.items,
    }
  }

  /** close waits for what is in flight; the state store is closed by its owner. */
  async close (): Promise<void> {
    if (!this.opened) return
    await this.commit.idle()
    this.opened = false
  }

  private async flush (batch: JournalRecord[], sync: boolean): Promise<Array<Error | undefined> | void> {
    await this.write(batch, sync)
    return batch.length > 0 ? this.onCommitted?.(batch) : undefined
  }

  private async write (batch: JournalRecord[], sync: boolean): Promise<void> {
    const last = batch.length > 0 ? batch[batch.length - 1]!.seq : this.state.lastSeq
    const next: JournalState = { lastSeq: last, firstSeq: this.state.firstSeq }
    const ops: Array<{ type: 'put', key: any, value: any, sublevel?: any }> = batch.map(r => ({ type: 'put', key: seqKey(r.seq), value: r.bytes, sublevel: this.level }))
    // The journal's position goes in the same batch: it is atomic with the records.
    ops.push({ type: 'put', key: META_KEY, value: next, sublevel: this.store.meta })
    await this.store.db.batch(ops as never, { sync })
    this.state = next
    for (const r of batch) this.sizes.push(r.bytes.length)
  }
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

  dropThrough (seq: number): void {
    const k = Math.min(Math.max(0, seq - this.first + 1), this.n)
    if (k === 0) return
    this.base = this.cum[this.head + k - 1]!
    this.head += k
    this.n -= k
    this.first += k
  }

  private grow (): void {
    const size = Math.max(1024, this.n * 2)
    const next = new Float64Array(size)
    next.set(this.cum.subarray(this.head, this.head + this.n))
    this.cum = next
    this.head = 0
  }
}
