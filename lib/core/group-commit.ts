/**
 * group-commit: many producers, one storage write at a time.
 *
 * Items are pushed as they come; one flush is in flight at a time and
 * carries everything queued when it starts. With `delayMs` 0 the first item
 * after a quiet spell goes out at once; a write-behind user (nobody waits on
 * the flush) sets a small delay so that even one-at-a-time producers share
 * batches. Under load, items that arrive during a flush go out together in
 * the next one; a full batch (`maxItems`) never waits. A failed
 * flush is retried (its items stay first in line) after a backoff, so
 * nothing pushed is ever dropped; `flushed()` waits for it.
 *
 * Pure: the storage write is the injected `flush` function.
 */

/** FlushFn writes one batch, oldest first. */
export type FlushFn<T> = (items: T[]) => Promise<void>

/** GroupCommitOptions bound batches and pace retries. */
export interface GroupCommitOptions<T> {
  /** Most items in one flush. */
  maxItems?: number
  /** Most bytes in one flush, as measured by `sizeOf` (a single bigger item still goes alone). */
  maxBytes?: number
  sizeOf?: (item: T) => number
  /** Called when a flush fails; it will be retried after `retryMs`. */
  onError?: (err: Error, items: T[]) => void
  retryMs?: number
  /** How long the first item of a batch may wait for company. */
  delayMs?: number
}

interface Waiter { count: number, resolve: () => void }

/** GroupCommit batches pushed items into flushes, one in flight at a time. */
export class GroupCommit<T> {
  private queue: T[] = []
  private inFlight = false
  private retryTimer: NodeJS.Timeout | undefined
  private delayTimer: NodeJS.Timeout | undefined
  private pushedCount = 0
  private flushedCount = 0
  private waiters: Waiter[] = []
  private readonly maxItems: number
  private readonly maxBytes: number
  private readonly sizeOf: (item: T) => number
  private readonly retryMs: number
  /** Flushes done and items they carried: `items / flushes` is the batching factor. */
  readonly counters = { flushes: 0, items: 0, failures: 0 }
  /** The last flush error, until a flush succeeds again. */
  lastError: Error | undefined

  constructor (private readonly flush: FlushFn<T>, private readonly opts: GroupCommitOptions<T> = {}) {
    this.maxItems = opts.maxItems ?? 8192
    this.maxBytes = opts.maxBytes ?? 16 * 1024 * 1024
    this.sizeOf = opts.sizeOf ?? (() => 1)
    this.retryMs = opts.retryMs ?? 1000
  }

  /** push queues an item; it will be flushed (and retried) without further action. */
  push (item: T): void {
    this.queue.push(item)
    this.pushedCount++
    this.kick()
  }

  /** flushed resolves once every item pushed so far has been flushed (and flushes them without delay). */
  flushed (): Promise<void> {
    if (this.flushedCount === this.pushedCount) return Promise.resolve()
    const p = new Promise<void>(resolve => { this.waiters.push({ count: this.pushedCount, resolve }) })
    this.flushNow()
    return p
  }

  /** pending counts items pushed but not yet flushed. */
  get pending (): number { return this.pushedCount - this.flushedCount }

  /** stop cancels scheduled flushes and retries (items stay queued). */
  stop (): void {
    clearTimeout(this.retryTimer)
    clearTimeout(this.delayTimer)
    this.retryTimer = undefined
    this.delayTimer = undefined
  }

  /** flushNow sends what is queued without waiting out the delay. */
  flushNow (): void {
    clearTimeout(this.delayTimer)
    this.delayTimer = undefined
    this.kick(true)
  }

  private kick (now = false): void {
    if (this.inFlight || this.retryTimer || this.queue.length === 0) return
    const delay = this.opts.delayMs ?? 0
    if (!now && delay > 0 && this.queue.length < this.maxItems) {
      this.delayTimer ??= setTimeout(() => { this.delayTimer = undefined; this.kick(true) }, delay)
      return
    }
    clearTimeout(this.delayTimer)
    this.delayTimer = undefined
    const batch = this.take()
    this.inFlight = true
    let p: Promise<void>
    try {
      p = this.flush(batch)
    } catch (err) {
      p = Promise.reject(err)
    }
    p.then(() => {
      this.inFlight = false
      this.lastError = undefined
      this.counters.flushes++
      this.counters.items += batch.length
      this.flushedCount += batch.length
      this.wake()
      this.kick(this.waiters.length > 0)
    }, (err: unknown) => {
      this.inFlight = false
      this.counters.failures++
      this.lastError = err instanceof Error ? err : new Error(String(err))
      this.queue = batch.concat(this.queue)
      this.opts.onError?.(this.lastError, batch)
      clearTimeout(this.delayTimer)
      this.delayTimer = undefined
      this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.kick() }, this.retryMs)
      this.retryTimer.unref?.()
    })
  }

  private take (): T[] {
    let n = 0
    let bytes = 0
    while (n < this.queue.length && n < this.maxItems) {
      const size = this.sizeOf(this.queue[n]!)
      if (n > 0 && bytes + size > this.maxBytes) break
      bytes += size
      n++
    }
    return this.queue.splice(0, n)
  }

  private wake (): void {
    if (this.waiters.length === 0) return
    const still: Waiter[] = []
    for (const w of this.waiters) {
      if (w.count <= this.flushedCount) w.resolve()
      else still.push(w)
    }
    this.waiters = still
  }
}
