/**
 * undo-log: what a DR's images held before each change, so that any
 * recovery point in its history can be read again (views) or restored
 * (promote --at).
 *
 * Every change to the DR's images is preceded by an undo entry, appended
 * synchronously on the main thread before the change is made (write-ahead,
 * as the primary's journal is for its writes): the bytes a write or a zero
 * is about to overwrite, the size a truncate or an extending write is about
 * to change, and the inverse of each namespace change. Reading the entries
 * made after a recovery point, the oldest first for each byte, gives that
 * point back.
 *
 * Entries are records of the journal format (lib/core/record.ts) in a
 * journal of their own (`undo`: segments and a LevelDB index, trimmed from
 * the oldest end), so they are checked by CRC, found again after a crash by
 * the tail scan, and need no format of their own. Their fields mean:
 *
 *   seq     the undo sequence (useq), one per entry, contiguous
 *   ts      the seq of the primary's record whose apply made the change
 *           (0: fetched bytes or a reconcile, not a record)
 *   mode    the DR's volume id (stable across renames)
 *   write   offset, payload: the bytes there before
 *   zero    offset, length: the range read as zeros before (no payload)
 *   truncate  offset: the volume's size before
 *   delete  the volume did not exist before (it was created)
 *   create  the volume existed before as the file kept aside at `target`
 *           (it was deleted: the DR keeps deleted volumes aside)
 *   rename  the volumes under `volume` were under `target` before
 */
import { isAllZero } from '../core/zero.js'
import type { Op } from '../core/record.js'
import type { Logger } from '../log.js'
import type { ImageDir } from '../store/image-dir.js'
import { Journal, type IndexEntry } from '../store/journal.js'
import type { SegmentLocation } from '../store/journal-segments.js'
import type { StateStore } from '../store/state-store.js'

/** Old bytes are kept in entries of at most this many bytes. */
const MAX_PIECE = 1024 * 1024

/** UndoEntry is one entry, as views and rollbacks read it. */
export interface UndoEntry {
  useq: number
  op: Extract<Op, 'write' | 'zero' | 'truncate' | 'create' | 'delete' | 'rename'>
  /** The DR volume id (0 for a rename, which may move several). */
  volumeId: number
  volume: string
  target: string
  offset: number
  length: number
  /** The seq of the record whose apply made the change (0: fetched bytes). */
  cause: number
  /** Where the entry is, and where its payload starts in it (write). */
  loc: SegmentLocation
  payloadAt: number
}

/** UndoLog appends and reads a DR's undo entries. */
export class UndoLog {
  private readonly journal: Journal
  /** Told of every entry appended (open views follow the log). */
  private readonly listeners = new Set<(e: UndoEntry) => void>()
  /** The highest cause among the entries found at open: records up to it were captured before a crash. */
  lastCause = 0

  constructor (store: StateStore, log: Logger, private readonly images: ImageDir) {
    this.journal = new Journal(store, log, { name: 'undo', segmentSize: 64 * 1024 * 1024 })
  }

  async open (): Promise<void> {
    await this.journal.open()
    // Look back for the last entry a record's apply made (fetches make entries with cause 0).
    for (let at = this.journal.indexedSeq; at >= this.journal.firstSeq && at > 0; at -= 256) {
      const es = await this.journal.entries(Math.max(this.journal.firstSeq - 1, at - 256), at)
      const last = es.reverse().find(e => e.ts > 0)
      if (last) { this.lastCause = last.ts; break }
    }
  }

  async close (): Promise<void> {
    await this.journal.close()
  }

  /** lastSeq is the last useq appended; the next entry gets lastSeq + 1. */
  get lastSeq (): number { return this.journal.lastSeq }
  get firstSeq (): number { return this.journal.firstSeq }
  /** bytes is the size of the entries kept. */
  get bytes (): number { return this.journal.stats().bytes }

  /** follow calls `fn` with every entry appended from now on; returns a function that stops it. */
  follow (fn: (e: UndoEntry) => void): () => void {
    this.listeners.add(fn)
    return () => { this.listeners.delete(fn) }
  }

  /**
   * bytes keeps what [offset, offset + length) of a volume holds now (its
   * open image `fd`, `size` bytes long), before it is overwritten; and the
   * size, if the change will extend the volume.
   */
  keepBytes (volumeId: number, name: string, fd: number, size: number, offset: number, length: number, cause: number): void {
    const end = Math.min(offset + length, size)
    if (offset + length > size) this.keepSize(volumeId, name, size, cause)
    for (let at = offset; at < end; at += MAX_PIECE) {
      const n = Math.min(MAX_PIECE, end - at)
      const buf = Buffer.allocUnsafe(n)
      const got = this.images.readSync(fd, buf, n, at)
      const old = buf.subarray(0, got)
      if (isAllZero(old)) this.append({ op: 'zero', volume: name, offset: at, length: n, mode: volumeId }, cause)
      else this.append({ op: 'write', volume: name, offset: at, data: old, mode: volumeId }, cause)
    }
  }

  /** keepSize keeps a volume's size before it changes (a truncate, an extending write). */
  keepSize (volumeId: number, name: string, size: number, cause: number): void {
    this.append({ op: 'truncate', volume: name, offset: size, mode: volumeId }, cause)
  }

  /** created notes a volume that did not exist before (undo: it goes away). */
  created (volumeId: number, name: string, cause: number): void {
    this.append({ op: 'delete', volume: name, mode: volumeId }, cause)
  }

  /** deleted notes a volume that was deleted and kept aside at `keptAside` (relative to the image directory). */
  deleted (volumeId: number, name: string, keptAside: string, cause: number): void {
    this.append({ op: 'create', volume: name, target: keptAside, mode: volumeId }, cause)
  }

  /** renamed notes that the volumes under `from` are now under `to`. */
  renamed (from: string, to: string, cause: number): void {
    this.append({ op: 'rename', volume: to, target: from }, cause)
  }

  /** entries lists the entries with useq in (after, upto], oldest first. */
  async entries (after: number, upto = Infinity): Promise<UndoEntry[]> {
    await this.journal.indexed()
    return (await this.journal.entries(after, upto)).map(toEntry)
  }

  /** readPayload fills `buf` with the old bytes of a write entry, from `at` (an offset into its payload). */
  readPayload (e: UndoEntry, at: number, buf: Buffer): void {
    this.journal.readSync(e.loc, e.payloadAt + at, buf)
  }

  /** indexed resolves once every entry appended so far is indexed (and counted in `bytes`). */
  async indexed (): Promise<void> {
    await this.journal.indexed()
  }

  /** sync makes every entry appended so far durable. */
  async sync (): Promise<void> {
    await this.journal.sync()
  }

  /** trim drops the entries up to `upto` (nothing needs them: retention). */
  async trim (upto: number): Promise<number> {
    await this.journal.indexed()
    return await this.journal.trim(upto)
  }

  /** truncateAfter drops the entries after `useq` (undone by a rollback). */
  async truncateAfter (useq: number): Promise<void> {
    await this.journal.truncateAfter(useq)
  }

  /** clear drops every entry; the log goes on after `useq`. */
  async clear (): Promise<void> {
    await this.journal.restartAt(this.journal.lastSeq)
    this.lastCause = 0
  }

  private append (fields: Parameters<Journal['append']>[0], cause: number): void {
    const r = this.journal.append(fields, cause)
    if (this.listeners.size === 0) return
    const e: UndoEntry = {
      useq: r.seq, op: r.op as UndoEntry['op'], volumeId: r.mode, volume: r.volume, target: r.target,
      offset: r.offset, length: r.op === 'write' ? r.data!.length : r.length, cause, loc: r.loc, payloadAt: r.head.length,
    }
    for (const fn of this.listeners) fn(e)
  }
}

function toEntry (e: IndexEntry): UndoEntry {
  return {
    useq: e.seq, op: e.op as UndoEntry['op'], volumeId: e.mode, volume: e.volume, target: e.target,
    offset: e.offset, length: e.length, cause: e.ts, loc: e.loc, payloadAt: e.payloadAt,
  }
}
