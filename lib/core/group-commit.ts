/**
 * group-commit: many writers, one storage write at a time.
 *
 * The first item to arrive is flushed alone at once (no added latency when
 * idle); items that arrive while a flush is in flight wait and go out
 * together in the next flush. Under load this turns N FUSE writes into one
 * LevelDB batch; on its own a writer never waits for a timer.
 *
 * A flush may report a per-item failure (its result array), which rejects
 * only that item. A flush that throws rejects its whole batch and every item
 * queued behind it: the owner decides whether the store is still usable
 * (see {@link GroupCommit.onFailure}).
 */

/** FlushFn writes one batch; `sync` asks for durability of everything written so far. */
export type FlushFn<T> = (items: T[], sync: boolean) => Promise<Array<Error | undefined> | void>

interface Entry<T> {
  item: T
  resolve: () => void
  reject: (err: Error) => void
}

interface Waiter {
  resolve: () => void
  reject: (err: Error) => void
}

/** GroupCommitOptions bound one batch. */
export interface GroupCommitOptions<T> {
  /** Most items in one flush. */
  maxItems?: number
  /** Most bytes in one flush, as measured by `sizeOf`. */
  maxBytes?: number
  sizeOf?: (item: T) => number
  /** Called when a flush throws, before anything is rejected. */
  onFailure?: (err: Error, items: T[], queued: T[]) => void
}

/** GroupCommit batches items into flushes, one flush in flight at a time. */
export class GroupCommit<T> {
  private queue: Array<Entry<T>> = []
  private syncWaiters: Waiter[] = []
  private idleWaiters: Waiter[] = []
  private inFlight = false
  private readonly maxItems: number
  private readonly maxBytes: number
  private readonly sizeOf: (item: T) => number
  private readonly onFailure: GroupCommitOptions<T>['onFailure']
  /** Flushes done so far, and items they carried: `items / flushes` is the batching factor. */
  readonly counters = { flushes: 0, items: 0, syncs: 0 }

  constructor (private readonly flush: FlushFn<T>, opts: GroupCommitOptions<T> = {}) {
    this.maxItems = opts.maxItems ?? 4096
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024
    this.sizeOf = opts.sizeOf ?? (() => 1)
    this.onFailure = opts.onFailure
  }

  /** add queues an item; resolves once the flush that carries it succeeded. */
  add (item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject })
      this.kick()
    })
  }

  /** sync resolves once everything added before it is durable (a flush with `sync` set). */
  sync (): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject })
      this.kick()
    })
  }

  /** idle resolves when nothing is queued or in flight. */
  idle (): Promise<void> {
    if (!this.inFlight && this.queue.length === 0 && this.syncWaiters.length === 0) return Promise.resolve()
    return new Promise<void>((resolve, reject) => { this.idleWaiters.push({ resolve, reject }) })
  }

  /** pending counts items queued or in flight. */
  get pending (): number { return this.queue.length + (this.inFlight ? 1 : 0) }

  private kick (): void {
    if (this.inFlight) return
    if (this.queue.length === 0 && this.syncWaiters.length === 0) {
      const w = this.idleWaiters
      this.idleWaiters = []
      for (const x of w) x.resolve()
      return
    }
    const batch = this.take()
    // A sync request is honoured by the batch that empties the queue: a
    // sync write makes every earlier write durable as well.
    const sync = this.syncWaiters.length > 0 && this.queue.length === 0
    const syncers = sync ? this.syncWaiters : []
    if (sync) this.syncWaiters = []
    this.inFlight = true
    this.counters.flushes++
    this.counters.items += batch.length
    if (sync) this.counters.syncs++
    let p: Promise<Array<Error | undefined> | void>
    try {
      p = this.flush(batch.map(e => e.item), sync)
    } catch (err) {
      p = Promise.reject(err)
    }
    p.then((results) => {
      this.inFlight = false
      for (let i = 0; i < batch.length; i++) {
        const e = results?.[i]
        if (e) batch[i]!.reject(e)
        else batch[i]!.resolve()
      }
      for (const s of syncers) s.resolve()
      this.kick()
    }, (err: unknown) => {
      this.inFlight = false
      const error = err instanceof Error ? err : new Error(String(err))
      const queued = this.queue
      const waiting = this.syncWaiters
      this.queue = []
      this.syncWaiters = []
      this.onFailure?.(error, batch.map(e => e.item), queued.map(e => e.item))
      for (const e of batch) e.reject(error)
      for (const e of queued) e.reject(error)
      for (const s of syncers) s.reject(error)
      for (const s of waiting) s.reject(error)
      this.kick()
    })
  }

  private take (): Array<Entry<T>> {
    let n = 0
    let bytes = 0
    while (n < this.queue.length && n < this.maxItems) {
      const size = this.sizeOf(this.queue[n]!.item)
      if (n > 0 && bytes + size > this.maxBytes) break
      bytes += size
      n++
    }
    return this.queue.splice(0, n)
  }
}
