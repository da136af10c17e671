/**
 * native-writes: the primary's JavaScript side of the native write path.
 *
 * Native writers (native/src/journal.c) journal and apply FUSE writes on
 * libfuse's threads and leave an entry per record in a bounded ring. This
 * module brings those entries in: the journal indexes them
 * (Journal.acceptNative) and PrimaryFs hears of them as applied records
 * (codes, watcher, status), in seq order. It drains when the native side
 * wakes it (coalesced: at most one wake-up per drain, and a drain at most
 * every millisecond), and synchronously whenever JavaScript must be up to
 * date: before a journal sync or flush, a checkpoint, a consistent region
 * read, a look at the image directory.
 *
 * `pause` holds the writers (a writer inside the critical section finishes
 * first) and drains, so JavaScript can journal and apply its own mutations
 * in the same order: namespace barriers, truncates, a region read that must
 * not interleave with writes.
 */
import type { NativeEntry, NativeMount, NativeJournal } from '../fuse/native-path.js'
import type { Logger } from '../log.js'
import type { Journal } from '../store/journal.js'
import type { VolumeFiles } from '../store/volume-files.js'
import type { OffThreadWriters, PrimaryFs } from './primary-fs.js'

/** NativeWrites drains native writers into the journal and the write path's listeners. */
export class NativeWrites implements OffThreadWriters {
  private journalNative: NativeJournal | undefined
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  /** Drains, and records brought in (records / drains = the batching). */
  readonly counters = { drains: 0, records: 0 }

  constructor (
    readonly native: NativeMount,
    private readonly journal: Journal,
    private readonly files: VolumeFiles,
    private readonly fs: PrimaryFs,
    private readonly log: Logger,
  ) {}

  /** start hands the journal's appends to the native writers (before the mount exists). */
  start (): void {
    this.files.attachNative(this.native)
    this.journal.startNative(at => {
      this.journalNative = this.native.startJournal(at, () => this.wake())
      return this.journalNative
    }, () => this.drain())
    this.fs.attachWriters(this, this.native)
  }

  /** drain brings in every entry appended so far. */
  drain (): void {
    const nj = this.journalNative
    if (!nj) return
    const entries = nj.drain()
    if (entries.length === 0) return
    this.counters.drains++
    this.counters.records += entries.length
    const names = entries.map(e => this.nameOf(e))
    this.journal.acceptNative(entries, i => names[i]!)
    this.fs.appliedNative(entries, names)
  }

  pause (): void {
    this.journalNative?.pause()
    this.drain()
  }

  resume (): void {
    this.journalNative?.resume()
  }

  /** exclusive runs `fn` (synchronous) with no native write in progress or pending. */
  exclusive<T> (fn: () => T): T {
    this.pause()
    try {
      return fn()
    } finally {
      this.resume()
    }
  }

  /**
   * stop (after unmount) waits for the native writers to finish, brings in
   * their last entries and takes the journal back; the native state is freed.
   */
  stop (): void {
    if (this.stopped) return
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    const left = this.native.stop()
    if (left > 0) this.log.warn('native.stop_inflight', { calls: left, note: 'hook calls still running 5 s after unmount' })
    try {
      this.drain()
      this.journal.stopNative()
    } finally {
      this.fs.detachWriters()
      this.files.detachNative()
      this.native.close()
      this.journalNative = undefined
    }
  }

  /** state is the native writers' position and counters (status, metrics). */
  state (): ReturnType<NativeJournal['state']> | undefined {
    return this.journalNative?.state()
  }

  private wake (): void {
    if (this.timer || this.stopped) return
    // Let a millisecond of writes share one drain; the writers wait only
    // if the ring fills (65,536 records) or they need a new segment.
    this.timer = setTimeout(() => {
      this.timer = undefined
      try {
        this.drain()
      } catch (err) {
        this.log.error('native.drain_failed', { err })
      }
    }, 1)
  }

  private nameOf (e: NativeEntry): string {
    const f = this.files.bySlotOf(e.slot)
    // Renames and deletes pause and drain first, so a slot's name is the one
    // its records carry; a slot gone is a bug worth a loud line.
    if (!f) {
      this.log.error('native.unknown_slot', { seq: e.seq, slot: e.slot })
      return ''
    }
    return f.name
  }
}
