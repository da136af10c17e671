/**
 * compression: zstd on the wire between a primary and its DRs, negotiated
 * per request the HTTP way (the DR sends `Accept-Encoding: zstd`, the
 * primary answers `Content-Encoding: zstd` or plain bytes).
 *
 * Group frames (long polls) and region bodies are compressed; a region body
 * is one zstd frame flushed after every chunk, so a reader's first piece
 * still leaves at once. The codec is libzstd through `zstd-napi` (built from
 * source at install), at level 1: ~500 MB/s of text per core here, and
 * random bytes pass at several GB/s (zstd stores what does not shrink).
 *
 * `--compress`:
 *   none  never (a DR does not ask, a primary does not compress)
 *   zstd  always (a DR asks; a primary compresses whenever asked)
 *   auto  when the link, not the CPU, is what limits: a DR asks when its
 *         primary is a round trip of `AUTO_MIN_RTT_MS` or more away (not
 *         this host or rack); a primary compresses what it is asked to
 *         unless recent data did not shrink (then it sends plain bytes for
 *         a while and tries again)
 *
 * Both ends count bytes: raw (what the data is) and wire (what crossed).
 */
import { createRequire } from 'node:module'
import { VolmirrorError } from '../errors.js'

// The binding is CommonJS loading a native addon: its names are only known at run time.
const { CCtx, CParameter, DCtx, EndDirective } = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js')

/** CompressMode is `--compress`. */
export type CompressMode = 'auto' | 'zstd' | 'none'

export const COMPRESS_MODES: readonly CompressMode[] = ['auto', 'zstd', 'none']

/**
 * A DR in auto mode asks for compression when its primary is at least this
 * far (round trip, ms): a LAN, or this host through two Node processes, is
 * well under it (0.1-2 ms here), a WAN link above it. A fast link that is
 * still the bottleneck (100 Mbit/s in a rack) wants `zstd`.
 */
export const AUTO_MIN_RTT_MS = 5

/** The zstd level used: fast, most of the gain on text and file-system metadata. */
const LEVEL = 1

/** parseCompressMode reads `--compress`; anything else is an INVALID_ARGUMENT naming the choices. */
export function parseCompressMode (s: string): CompressMode {
  if ((COMPRESS_MODES as readonly string[]).includes(s)) return s as CompressMode
  if (s === 'lz4') throw new VolmirrorError('INVALID_ARGUMENT', '--compress lz4 is not offered: zstd at level 1 is as fast here on data that compresses, and much faster on data that does not (use --compress zstd, or auto)')
  throw new VolmirrorError('INVALID_ARGUMENT', `--compress must be one of ${COMPRESS_MODES.join(', ')}, not "${s}"`)
}

/** acceptsZstd tells whether an Accept-Encoding header admits zstd. */
export function acceptsZstd (header: string | string[] | undefined): boolean {
  const v = Array.isArray(header) ? header.join(',') : header ?? ''
  return v.split(',').some(p => {
    const [coding, ...params] = p.trim().toLowerCase().split(';').map(x => x.trim())
    return coding === 'zstd' && !params.some(q => /^q=0(\.0*)?$/.test(q))
  })
}

/** isZstd tells whether a reply's Content-Encoding is zstd (anything else but identity is a protocol error). */
export function isZstd (header: string | string[] | undefined, what: string): boolean {
  const v = (Array.isArray(header) ? header.join(',') : header ?? '').trim().toLowerCase()
  if (v === '' || v === 'identity') return false
  if (v === 'zstd') return true
  throw new VolmirrorError('PEER_PROTOCOL', `${what}: unexpected Content-Encoding ${v.slice(0, 40)}`)
}

/** WireBytes counts one kind of traffic: its bytes as data and as they crossed the link. */
export interface WireBytes { raw: number, wire: number }

/** WireCounters are a node's traffic by kind. */
export interface WireCounters { groups: WireBytes, regions: WireBytes }

/** WireStatus is a node's traffic in status: what it sent its DRs (a primary) or received from its primary (a DR). */
export interface WireStatus extends WireCounters {
  direction: 'sent' | 'received'
  compress: CompressMode
  /** A DR: whether it asks for zstd now, and its primary's round trip (the quickest of the last `rttSamples` measurements, ms). */
  asking?: boolean
  rttMs?: number
  rttSamples?: number
}

export function newWireCounters (): WireCounters {
  return { groups: { raw: 0, wire: 0 }, regions: { raw: 0, wire: 0 } }
}

/** ZstdEncoder compresses one body as one zstd frame, chunk by chunk, each flushed (its bytes can be decoded on arrival). */
export class ZstdEncoder {
  private readonly cctx = new CCtx()
  private readonly out: Buffer

  constructor () {
    this.cctx.setParameter(CParameter.compressionLevel, LEVEL)
    this.out = Buffer.allocUnsafe(256 * 1024)
  }

  /** write compresses `chunk` and returns the frame bytes it produced (flushed; `last` ends the frame). */
  write (chunk: Uint8Array, last = false): Buffer {
    const parts: Buffer[] = []
    let src = chunk
    const op = last ? EndDirective.end : EndDirective.flush
    for (;;) {
      const [left, produced, consumed] = this.cctx.compressStream2(this.out, src, op)
      if (produced > 0) parts.push(Buffer.from(this.out.subarray(0, produced)))
      src = src.subarray(consumed)
      if (left === 0 && src.length === 0) break
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }

  /** end closes the frame; the bytes are the last of the body. */
  end (): Buffer {
    return this.write(new Uint8Array(0), true)
  }
}

/** compressBody compresses a whole body (a group frame given as pieces) into one zstd frame. */
export function compressBody (pieces: Uint8Array[]): Buffer {
  const e = new ZstdEncoder()
  const parts = pieces.map(p => e.write(p))
  parts.push(e.end())
  return Buffer.concat(parts)
}

/** ZstdDecoder decodes a zstd body as it arrives, handing each decoded piece on (a fresh buffer: the receiver may keep it). */
export class ZstdDecoder {
  private readonly dctx = new DCtx()
  private readonly out: Buffer
  private ended = false

  constructor (private readonly what: string, outSize = 256 * 1024) {
    this.out = Buffer.allocUnsafe(outSize)
  }

  /** push decodes `chunk`, calling `emit` for each decoded piece. */
  push (chunk: Uint8Array, emit: (piece: Buffer) => void): void {
    let src = chunk
    while (src.length > 0 || !this.ended) {
      let ret: number, produced: number, consumed: number
      try {
        [ret, produced, consumed] = this.dctx.decompressStream(this.out, src)
      } catch (err) {
        throw new VolmirrorError('PEER_PROTOCOL', `${this.what}: bad zstd body: ${(err as Error).message}`)
      }
      src = src.subarray(consumed)
      if (ret === 0) this.ended = true
      if (produced > 0) emit(Buffer.from(this.out.subarray(0, produced)))
      // Done when the input is used up and the output was not filled (nothing held back).
      if (src.length === 0 && produced < this.out.length) break
      if (this.ended && src.length > 0) throw new VolmirrorError('PEER_PROTOCOL', `${this.what}: bytes after the end of the zstd frame`)
    }
  }

  /** finish checks that the frame ended. */
  finish (): void {
    if (!this.ended) throw new VolmirrorError('PEER_PROTOCOL', `${this.what}: the zstd body ended mid-frame`)
  }
}

/** decompressInto decodes a whole zstd body into `buf`; returns the decoded length (PEER_PROTOCOL if it does not fit). */
export function decompressInto (body: Uint8Array, buf: Buffer, what: string): number {
  const d = new ZstdDecoder(what, Math.min(buf.length, 1024 * 1024))
  let n = 0
  d.push(body, piece => {
    if (n + piece.length > buf.length) throw new VolmirrorError('PEER_PROTOCOL', `${what}: zstd body decodes to more than ${buf.length} bytes`)
    piece.copy(buf, n)
    n += piece.length
  })
  d.finish()
  return n
}

/**
 * CompressionPolicy is the primary's side: whether to compress a reply.
 * In auto mode, data that did not shrink (raw/wire under `MIN_GAIN` over
 * the last `SAMPLE` bytes) turns compression off for the next `REST`
 * bytes; then it is tried again.
 */
export class CompressionPolicy {
  private static readonly SAMPLE = 16 * 1024 * 1024
  private static readonly REST = 256 * 1024 * 1024
  private static readonly MIN_GAIN = 1.05
  private sample: WireBytes = { raw: 0, wire: 0 }
  private restLeft = 0
  readonly counters = newWireCounters()

  constructor (readonly mode: CompressMode) {}

  /** wants tells whether to compress a reply to a request with this Accept-Encoding. */
  wants (acceptEncoding: string | string[] | undefined): boolean {
    if (this.mode === 'none' || !acceptsZstd(acceptEncoding)) return false
    return this.mode === 'zstd' || this.restLeft <= 0
  }

  /** sent records a reply: `raw` bytes of data sent as `wire` bytes (equal when plain). */
  sent (kind: keyof WireCounters, raw: number, wire: number, compressed: boolean): void {
    this.counters[kind].raw += raw
    this.counters[kind].wire += wire
    if (this.mode !== 'auto') return
    if (!compressed) { this.restLeft -= raw; return }
    this.sample.raw += raw
    this.sample.wire += wire
    if (this.sample.raw < CompressionPolicy.SAMPLE) return
    if (this.sample.raw < CompressionPolicy.MIN_GAIN * this.sample.wire) this.restLeft = CompressionPolicy.REST
    this.sample = { raw: 0, wire: 0 }
  }
}
