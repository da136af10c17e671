/**
 * buffer-pool: reusable buffers of one size, for the hot paths that read a
 * region at a time (the primary's region streams).
 *
 * A megabyte allocated per fetched region is external memory to V8, and at
 * hundreds of regions a second it makes the garbage collector run all the
 * time (it was 40 % of a primary's busy time during an initial sync).
 * Buffers given back are handed out again; one never given back (its
 * consumer failed) is simply collected. At most `keep` idle buffers stay.
 */

/** BufferPool hands out buffers of `size` bytes. */
export class BufferPool {
  private readonly free: Buffer[] = []

  constructor (readonly size: number, private readonly keep = 16) {}

  /** take returns a buffer of `size` bytes (contents undefined). */
  take (): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)
  }

  /** give returns a buffer taken from this pool; nobody may use it afterwards. */
  give (buf: Buffer): void {
    if (buf.length === this.size && this.free.length < this.keep) this.free.push(buf)
  }

  /** idle counts the buffers waiting to be taken. */
  get idle (): number { return this.free.length }
}
