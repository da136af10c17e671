/**
 * region-body: puts a fetched region on the wire in the order the HTTP
 * reply promises.
 *
 * A region reply is one body with the region's bytes rotated to start at
 * `first` ([first, end) then [start, first)), so the bytes a DR reader is
 * waiting for arrive first, and the client can compute every byte's
 * offset from the headers alone. Chunks arrive in body order from the
 * primary's reader; one that arrives early anyway is copied and held back
 * (at most one region) until its turn. `data` resolves once the writes it
 * made have been handed to the socket, when the chunk may be reused.
 */
import { VolmirrorError } from '../errors.js'

/** RegionBody turns sink chunks at absolute offsets into body writes in rotated order. */
export class RegionBody {
  private next: number
  private sent = 0
  private readonly early = new Map<number, Uint8Array>()

  /** `write` sends body bytes (resolving once the chunk may be reused); [start, end) is the region, `first` where its body begins. */
  constructor (private readonly write: (chunk: Uint8Array) => Promise<void>, readonly start: number, readonly end: number, readonly first: number) {
    this.next = first
  }

  /** total is the body's length. */
  get total (): number { return this.end - this.start }

  /** complete tells whether every byte of the region was sent. */
  get complete (): boolean { return this.sent === this.total && this.early.size === 0 }

  /** data takes one sink chunk; resolves when its bytes and those it released were written. */
  data (offset: number, chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0) return Promise.resolve()
    if (!Number.isSafeInteger(offset) || offset < this.start || offset + chunk.length > this.end) {
      throw new VolmirrorError('IO_ERROR', `region chunk [${offset}, +${chunk.length}) lies outside the region [${this.start}, ${this.end})`)
    }
    if (offset < this.first && offset + chunk.length > this.first) {
      // Straddles the rotation point: its two halves go to the two ends of the body.
      return Promise.all([
        this.data(offset, chunk.subarray(0, this.first - offset)),
        this.data(this.first, chunk.subarray(this.first - offset)),
      ]).then(() => {})
    }
    // Held back until its turn: a copy, the caller may reuse the chunk.
    this.early.set(offset, offset === this.next ? chunk : Uint8Array.from(chunk))
    const writes: Array<Promise<void>> = []
    for (let c = this.early.get(this.next); c !== undefined; c = this.early.get(this.next)) {
      this.early.delete(this.next)
      writes.push(this.write(c))
      this.sent += c.length
      this.next += c.length
      if (this.next === this.end) this.next = this.start
    }
    return Promise.all(writes).then(() => {})
  }
}
