/**
 * apply-lock: readers never see half a group.
 *
 * A DR applies a group synchronously on the main thread, but reads of its
 * mount run in the thread pool and could overlap it. Readers hold the lock
 * shared for their pread; an apply takes it exclusively: it waits for the
 * reads in progress, holds new ones back, applies, and lets them go.
 *
 * Native reads (the native data path, on FUSE threads) take the native
 * side's own readers-writer lock; an apply takes that one too, for the
 * whole group (`native`).
 */

/** ApplyLock is a small readers-writer lock favouring the writer (groups keep flowing). */
export class ApplyLock {
  private readers = 0
  private writing = false
  private readonly writers: Array<() => void> = []
  private readonly waitingReaders: Array<() => void> = []
  /** The native readers' lock, taken exclusively around every apply. */
  native: { applyBegin (): void, applyEnd (): void } | undefined

  /** read runs `fn` while no group is being applied. */
  async read<T> (fn: () => Promise<T>): Promise<T> {
    if (this.writing || this.writers.length > 0) await new Promise<void>(resolve => this.waitingReaders.push(resolve))
    this.readers++
    try {
      return await fn()
    } finally {
      this.readers--
      if (this.readers === 0) this.next()
    }
  }

  /** write runs `fn` (synchronous: a group apply) once no read is in progress. */
  async write<T> (fn: () => T): Promise<T> {
    if (this.writing || this.readers > 0) await new Promise<void>(resolve => this.writers.push(resolve))
    this.writing = true
    const native = this.native
    native?.applyBegin()
    try {
      return fn()
    } finally {
      native?.applyEnd()
      this.writing = false
      this.next()
    }
  }

  private next (): void {
    if (this.writing || this.readers > 0) return
    const w = this.writers.shift()
    if (w) { w(); return }
    const rs = this.waitingReaders.splice(0)
    for (const r of rs) r()
  }
}
