/**
 * region-fetch: the client side of `GET /v1/volumes/NAME/regions/INDEX`,
 * on undici's dispatch handler API.
 *
 * A region body is the DR's hottest path (every copy-on-read and every
 * hydrated region), so its chunks go from undici's parser straight to the
 * sink: no body stream, no async iteration, no promise per chunk. The body
 * is the region rotated to `first` ([first, end) then [start, first)), so
 * every byte's offset follows from the headers; the trailers carry the
 * CRC-32 of the body (handed to `sink.end`) or the code of an error that
 * ended it early.
 */
import type { Dispatcher } from 'undici'
import { VolmirrorError } from '../errors.js'
import type { RegionSink } from '../replication/protocol.js'
import { num, one, optionalInt } from './headers.js'
import { isZstd, ZstdDecoder, type WireBytes } from './compression.js'
import { errorFromResponse } from './status.js'
import { H_AS_OF, H_BIRTH, H_CRC32, H_ERROR, H_FIRST, H_REGION_END, H_REGION_START, H_SIZE } from './wire.js'

const MAX_ERROR_BODY = 64 * 1024

/** RegionFetch is one region request's handler; `done` settles with its outcome. */
export class RegionFetch implements Dispatcher.DispatchHandler {
  readonly done: Promise<void>
  private resolve!: () => void
  private reject!: (err: unknown) => void
  private controller: Dispatcher.DispatchController | undefined
  private status = 0
  private readonly errorBody: Buffer[] = []
  private errorBytes = 0
  private start = 0
  private end = 0
  private from = 0
  private pos = 0
  private failed = false

  /** Decodes a zstd body (Content-Encoding: zstd) before its bytes are mapped to offsets. */
  private decoder: ZstdDecoder | undefined

  /** `what` names the request in errors ("GET /v1/..."); `fail` maps transport errors; `counted` adds the body's bytes (data and wire). */
  constructor (private readonly sink: RegionSink, private readonly what: string, private readonly fail: (err: unknown) => unknown, private readonly counted?: WireBytes) {
    this.done = new Promise<void>((resolve, reject) => { this.resolve = resolve; this.reject = reject })
  }

  /** abort ends the request (a deadline, the caller's signal). */
  abort (reason: Error): void {
    if (this.controller) this.controller.abort(reason)
    else this.settle(this.fail(reason))
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
  }

  onResponseStart (_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.status = statusCode
    if (statusCode !== 200) return
    this.guard(() => {
      const asOf = num(headers[H_AS_OF], H_AS_OF)
      const size = num(headers[H_SIZE], H_SIZE)
      this.start = num(headers[H_REGION_START], H_REGION_START)
      this.end = num(headers[H_REGION_END], H_REGION_END)
      this.from = num(headers[H_FIRST], H_FIRST)
      if (!(this.start <= this.from && this.from <= this.end && (this.from < this.end || this.from === this.start))) {
        throw new VolmirrorError('PEER_PROTOCOL', `${this.what}: inconsistent region headers (start ${this.start}, first ${this.from}, end ${this.end})`)
      }
      const birth = optionalInt(headers[H_BIRTH], H_BIRTH)
      if (isZstd(headers['content-encoding'], this.what)) this.decoder = new ZstdDecoder(this.what)
      this.sink.begin(asOf, size, birth)
    })
  }

  onResponseData (_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.failed) return
    if (this.status !== 200) {
      if (this.errorBytes < MAX_ERROR_BODY) this.errorBody.push(chunk.subarray(0, MAX_ERROR_BODY - this.errorBytes))
      this.errorBytes += chunk.length
      return
    }
    this.guard(() => {
      if (this.counted) this.counted.wire += chunk.length
      if (this.decoder) this.decoder.push(chunk, piece => this.body(piece))
      else this.body(chunk)
    })
  }

  /** body maps body bytes (decoded) to their offsets in the region and hands them to the sink. */
  private body (chunk: Buffer): void {
    if (this.counted) this.counted.raw += chunk.length
    const total = this.end - this.start
    if (this.pos + chunk.length > total) throw new VolmirrorError('PEER_PROTOCOL', `${this.what}: region body longer than ${total} bytes`)
    // The body is [from, end) then [start, from): map each byte back to its offset.
    const head = this.end - this.from
    let c = chunk
    if (this.pos < head) {
      const k = Math.min(c.length, head - this.pos)
      this.data(this.from + this.pos, c.subarray(0, k))
      this.pos += k
      c = c.subarray(k)
    }
    if (c.length > 0) {
      this.data(this.start + (this.pos - head), c)
      this.pos += c.length
    }
  }

  onResponseEnd (_controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    if (this.failed) return
    if (this.status !== 200) {
      this.settle(errorFromResponse(this.status, Buffer.concat(this.errorBody), this.what))
      return
    }
    this.guard(() => {
      const failed = one(trailers[H_ERROR])
      if (failed !== undefined) {
        throw failed === 'REGION_CHANGED'
          ? new VolmirrorError('REGION_CHANGED', `${this.what}: the region was written while it was being sent`)
          : new VolmirrorError('PEER_PROTOCOL', `${this.what}: the region body ended with error ${failed.slice(0, 64)}`)
      }
      this.decoder?.finish()
      if (this.pos !== this.end - this.start) throw new VolmirrorError('PEER_PROTOCOL', `${this.what}: region body of ${this.pos} bytes, expected ${this.end - this.start}`)
      const crc = optionalInt(trailers[H_CRC32], H_CRC32)
      this.sink.end?.(crc)
    })
    if (!this.failed) { this.failed = true; this.resolve() }
  }

  onResponseError (_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.failed) return
    this.settle(this.fail(err))
  }

  private data (offset: number, chunk: Buffer): void {
    void this.sink.data(offset, chunk)
  }

  /** guard runs `fn`; what it throws ends the request with that error (a sink's errors unchanged). */
  private guard (fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.settle(err)
      this.controller?.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  private settle (err: unknown): void {
    if (this.failed) return
    this.failed = true
    this.reject(err)
  }
}
