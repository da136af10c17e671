/**
 * region-body: puts a fetched region on the wire in the order the HTTP
 * reply promises.
 *
 * A region reply is one body with the region's bytes rotated to start at
 * `first` ([first, end) then [start, first)), so the bytes a DR reader is
 * waiting for arrive first, and the client can compute every byte's
 * offset from the headers alone. A RegionSink may receive chunks in any
 * order (protocol.ts); this writer sends them in body order, holding back
 * (at most one region) whatever arrives early.
 */
import { VolmirrorError } from '../errors.js'

/** RegionBody turns sink chunks at absolute offsets into body writes in rotated order. */
export class RegionBody {
  private next: number
  private sent = 0
  private readonly early = new Map<number, Uint8Array>()

  /** `write` sends body bytes; [start, end) is the region, `first` where its body begins. */
  constructor (private readonly write: (chunk: Uint8Array) => void, readonly start: number, readonly end: number, readonly first: number) {
    this.next = first
  }

  /** total is the body's length. */
  get total (): number { return this.end - this.start }

  /** complete tells whether every byte of the region was sent. */
  get complete (): boolean { return this.sent === this.total && this.early.size === 0 }

  /** data takes one sink chunk. */
  data (offset: number, chunk: Uint8Array): void {
    if (chunk.length === 0) return
    if (!Number.isSafeInteger(offset) || offset < this.start || offset + chunk.length > this.end) {
      throw new VolmirrorError('IO_ERROR', `region chunk [${offset}, +${chunk.length}) lies outside the region [${this.start}, ${this.end})`)
    }
    if (offset < this.first && offset + chunk.length > this.first) {
      // Straddles the rotation point: its two halves go to the two ends of the body.
      this.data(offset, chunk.subarray(0, this.first - offset))
      this.data(this.first, chunk.subarray(this.first - offset))
      return
    }
    this.early.set(offset, chunk)
    for (let c = this.early.get(this.next); c !== undefined; c = this.early.get(this.next)) {
      this.early.delete(this.next)
      this.write(c)
      this.sent += c.length
      this.next += c.length
      if (this.next === this.end) this.next = this.start
    }
  }
}
