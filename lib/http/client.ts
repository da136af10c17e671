/**
 * client: a DR's view of its primary over HTTP(S) (see lib/http/server.ts
 * for the routes). It implements the same PrimaryService interface as the
 * in-process ReplicationSource, so the DR code and one conformance suite
 * (test/integration/primary-service.test.ts) cannot tell them apart, with
 * two deliberate differences: a caller's abort rejects with the signal's
 * reason (there is no reply to return), and `readRange` checks its length
 * limit before asking.
 *
 * Failures keep their meaning: an error reply becomes the server's
 * VolmirrorError (same code, lib/http/status.ts); a corrupted group frame
 * throws the decoder's code (RECORD_CORRUPT, PEER_PROTOCOL); anything on
 * the way (refused, reset, TLS, a timeout) is PEER_UNREACHABLE with the
 * cause. The client never retries: the DR knows what is safe to repeat.
 * Region bodies are streamed into the sink as they arrive, never buffered.
 */
import { readFileSync } from 'node:fs'
import { Pool, type Dispatcher } from 'undici'
import { VolmirrorError } from '../errors.js'
import { decodeGroupFrame } from '../replication/group-frame.js'
import { LIMITS, type GroupBatch, type FetchRegionOptions, type GroupRequest, type NodeInfo, type PrimaryService, type RegionInfoList, type RegionSink, type RegisterReply, type ResyncPlan, type Registration, type VolumeList } from '../replication/protocol.js'
import { AUTO_MIN_RTT_MS, decompressInto, isZstd, newWireCounters, type CompressMode, type WireCounters } from './compression.js'
import { parseContentRange, rangeHeader } from './range.js'
import { num, one, optionalInt } from './headers.js'
import { GROUP_FRAME_TYPE, H_AS_OF, H_BIRTH } from './wire.js'
import { RegionFetch } from './region-fetch.js'
import { errorFromResponse } from './status.js'

/** PrimaryClientOptions configure a {@link PrimaryClient}. */
export interface PrimaryClientOptions {
  /** The primary's peer token. */
  token: string
  /** CA certificate(s) to trust for https (PEM text, or the path of a PEM file). */
  ca?: string | Buffer | Array<string | Buffer>
  /** Time one request may take, headers and body (default 30 s); a long poll gets its wait plus `pollMarginMs`. */
  timeoutMs?: number
  pollMarginMs?: number
  connectTimeoutMs?: number
  /** Connections kept to the primary for fetches (default 160: the hydration window's fetches and readers' each have one). */
  connections?: number
  /** `--compress`: whether to ask for zstd replies (lib/http/compression.ts; default auto). */
  compress?: CompressMode
}

type Body = Dispatcher.ResponseData['body']

const MAX_JSON_REPLY = 32 * 1024 * 1024
/** Warm-up rounds (one every few seconds) whose quickest answer is the round trip. */
const RTT_ROUNDS = 4
const MAX_ERROR_BODY = 64 * 1024
// A frame is at most its byte budget plus one record past it (the journal always returns one).
const FRAME_SLACK = 16 * 1024 * 1024

/** PrimaryClient is a PrimaryService reached over HTTP(S). */
export class PrimaryClient implements PrimaryService {
  private readonly pool: Pool
  /** Buffers for group frames, lent to the follower until it releases a batch. */
  private readonly frames = new FramePool()
  /** Long polls for groups get connections of their own: fetches never queue behind one. */
  private readonly pollPool: Pool
  private readonly prefix: string
  private readonly timeoutMs: number
  private readonly pollMarginMs: number
  readonly origin: string

  /** `baseUrl` is the primary's endpoint, like `http://10.0.0.5:7070` or `https://primary:7070`. */
  constructor (baseUrl: string, private readonly opts: PrimaryClientOptions) {
    let url: URL
    try { url = new URL(baseUrl) } catch { throw new VolmirrorError('INVALID_ARGUMENT', `not a URL: ${baseUrl}`) }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new VolmirrorError('INVALID_ARGUMENT', `the primary's URL must be http or https: ${baseUrl}`)
    if (!opts.token) throw new VolmirrorError('INVALID_ARGUMENT', 'the client needs the primary\'s peer token')
    this.origin = url.origin
    this.prefix = url.pathname.replace(/\/+$/, '')
    this.timeoutMs = opts.timeoutMs ?? 30_000
    this.pollMarginMs = opts.pollMarginMs ?? 10_000
    const ca = opts.ca === undefined ? undefined : (Array.isArray(opts.ca) ? opts.ca : [opts.ca]).map(loadPem)
    const connect = { timeout: opts.connectTimeoutMs ?? 10_000, ...(ca ? { ca } : {}) }
    this.pool = new Pool(this.origin, { connections: opts.connections ?? 160, keepAliveTimeout: 4_000, connect })
    this.pollPool = new Pool(this.origin, { connections: 4, keepAliveTimeout: 4_000, connect })
  }

  /**
   * warm opens the fetch connections (or keeps them open: an idle one is
   * closed after a few seconds) with cheap requests, all at once, so that a
   * reader's first fetch never waits for a TCP (and TLS) handshake. Failures
   * are ignored: the next real request reports them.
   */
  async warm (): Promise<void> {
    const n = Math.min(16, this.opts.connections ?? 160)
    await Promise.all(Array.from({ length: n }, async () => { await this.health().catch(() => {}) }))
    // Then one request alone on a warm connection: the round trip without
    // handshakes or queueing; the quickest of the last rounds, as busy main
    // threads on either side make single rounds slow.
    const rtt = await this.health().catch(() => undefined)
    if (rtt === undefined) return
    this.rttRounds.push(rtt)
    if (this.rttRounds.length > RTT_ROUNDS) this.rttRounds.shift()
  }

  /** health asks the cheapest question and says how long the answer took (ms). */
  private async health (): Promise<number> {
    const t0 = performance.now()
    const res = await this.pool.request({ path: this.prefix + '/v1/health', method: 'GET', headers: { 'user-agent': 'volmirror' }, headersTimeout: 5_000, bodyTimeout: 5_000 })
    await res.body.dump()
    return performance.now() - t0
  }

  private readonly rttRounds: number[] = []

  /** How many round trips the figure below is the quickest of. */
  get rttSamples (): number {
    return this.rttRounds.length
  }

  /** The primary's round trip, the shortest of the last warm-ups (ms); undefined before one answered. */
  get rttMs (): number | undefined {
    return this.rttRounds.length ? Math.min(...this.rttRounds) : undefined
  }
  /** Bytes received, as data and as they crossed the link (zstd), by kind. */
  readonly wire: WireCounters = newWireCounters()

  /** close drops every connection; requests in flight fail with PEER_UNREACHABLE. */
  async close (): Promise<void> {
    await Promise.all([this.pool.destroy().catch(() => {}), this.pollPool.destroy().catch(() => {})])
  }

  async info (): Promise<NodeInfo> {
    return await this.json<NodeInfo>('GET', '/v1/info')
  }

  async volumes (): Promise<VolumeList> {
    return await this.json<VolumeList>('GET', '/v1/volumes')
  }

  async readRange (volume: string, offset: number, length: number): Promise<{ asOf: number, size: number, data: Buffer, birth?: number }> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new VolmirrorError('BAD_REQUEST', 'offset and length must be non-negative integers')
    }
    if (length > LIMITS.maxRangeBytes) throw new VolmirrorError('TOO_LARGE', `at most ${LIMITS.maxRangeBytes} bytes per request`)
    const path = volumePath(volume)
    // A Range cannot ask for nothing: HEAD learns the size and asOf instead.
    const headers: Record<string, string> = length > 0 ? { range: rangeHeader(offset, length) } : {}
    return await this.request(length > 0 ? 'GET' : 'HEAD', path, { headers }, async (res) => {
      const asOf = num(res.headers[H_AS_OF], H_AS_OF)
      const birth = optionalInt(res.headers[H_BIRTH], H_BIRTH)
      const seen = birth !== undefined ? { asOf, birth } : { asOf }
      if (length === 0 && res.statusCode === 200) {
        await res.body.dump()
        return { ...seen, size: num(res.headers['content-length'], 'content-length'), data: Buffer.alloc(0) }
      }
      const cr = parseContentRange(one(res.headers['content-range']))
      if (res.statusCode === 416 && cr && cr.start === undefined) {
        await res.body.dump()
        return { ...seen, size: cr.size, data: Buffer.alloc(0) } // past the end: nothing to read, like a short read
      }
      if (res.statusCode !== 206 || !cr || cr.start !== offset || cr.end! - cr.start + 1 > length) {
        throw new VolmirrorError('PEER_PROTOCOL', `GET ${path}: expected 206 for bytes ${offset}+${length}, got ${res.statusCode} ${one(res.headers['content-range']) ?? ''}`)
      }
      const data = await readAll(res.body, length)
      if (data.length !== cr.end! - cr.start + 1) throw new VolmirrorError('PEER_PROTOCOL', `GET ${path}: ${data.length} bytes for Content-Range ${cr.start}-${cr.end}`)
      return { ...seen, size: cr.size, data }
    }, length > 0 ? [206, 416] : [200])
  }

  async fetchRegion (volume: string, region: number, sink: RegionSink, opts: FetchRegionOptions = {}): Promise<void> {
    const q = new URLSearchParams()
    if (opts.first !== undefined && Number.isSafeInteger(opts.first) && opts.first >= 0) q.set('first', String(opts.first))
    if (opts.firstLength !== undefined && Number.isSafeInteger(opts.firstLength) && opts.firstLength > 0) q.set('len', String(opts.firstLength))
    const path = `${volumePath(volume)}/regions/${region}${q.size > 0 ? `?${q.toString()}` : ''}`
    const what = `GET ${path.split('?')[0]}`
    const ms = this.timeoutMs
    const d = deadline(ms, opts.signal)
    const f = new RegionFetch(sink, what, err => this.transportError(err, what, opts.signal, d, ms), this.wire.regions)
    const onAbort = (): void => { f.abort(d.signal.reason as Error) }
    d.signal.addEventListener('abort', onAbort, { once: true })
    try {
      this.pool.dispatch({ path: this.prefix + path, method: 'GET', headers: this.headers(), headersTimeout: ms, bodyTimeout: ms }, f)
      await f.done
    } finally {
      d.signal.removeEventListener('abort', onAbort)
      d.clear()
    }
  }

  async regions (volume: string, from: number, count: number, checksums: boolean): Promise<RegionInfoList> {
    return await this.json<RegionInfoList>('GET', `${volumePath(volume)}/regions?from=${from}&count=${count}&checksums=${checksums ? 1 : 0}`)
  }

  async register (r: Registration): Promise<RegisterReply> {
    return await this.json<RegisterReply>('POST', '/v1/register', r)
  }

  async groups (req: GroupRequest): Promise<GroupBatch> {
    // Same readings as the in-process service: no wait unless a positive
    // one, and a byte budget below one record still yields one record.
    const wait = Number.isFinite(req.waitMs) ? Math.max(0, Math.min(Math.floor(req.waitMs!), LIMITS.maxWaitMs)) : 0
    const max = Number.isFinite(req.maxBytes) ? Math.max(1, Math.min(Math.floor(req.maxBytes!), LIMITS.maxGroupBytes)) : undefined
    const budget = max ?? LIMITS.maxGroupBytes
    const q = new URLSearchParams({ node: req.nodeId, after: String(req.after), wait: String(wait) })
    if (max !== undefined) q.set('max', String(max))
    const path = `/v1/groups?${q.toString()}`
    return await this.request('GET', path, { poll: true, timeoutMs: wait + this.pollMarginMs, ...(req.signal ? { signal: req.signal } : {}) }, async (res) => {
      const type = one(res.headers['content-type']) ?? ''
      if (!type.startsWith(GROUP_FRAME_TYPE)) {
        await res.body.dump()
        throw new VolmirrorError('PEER_PROTOCOL', `GET /v1/groups: expected ${GROUP_FRAME_TYPE}, got ${type || 'no content type'}`)
      }
      const length = Number(one(res.headers['content-length']))
      const zstd = isZstd(res.headers['content-encoding'], 'GET /v1/groups')
      const frame = zstd
        ? this.frames.take(budget + FRAME_SLACK, budget + FRAME_SLACK)
        : Number.isSafeInteger(length) && length > 0 && length <= budget + FRAME_SLACK ? this.frames.take(length, budget + FRAME_SLACK) : undefined
      let batch: GroupBatch
      try {
        let bytes: Buffer
        if (zstd) {
          const wire = await readAll(res.body, budget + FRAME_SLACK)
          bytes = frame!.subarray(0, decompressInto(wire, frame!, 'GET /v1/groups'))
          this.wire.groups.wire += wire.length
        } else {
          bytes = frame ? await readInto(res.body, frame, length) : await readAll(res.body, budget + FRAME_SLACK)
          this.wire.groups.wire += bytes.length
        }
        this.wire.groups.raw += bytes.length
        batch = decodeGroupFrame(bytes)
      } catch (err) {
        if (frame) this.frames.give(frame)
        throw err
      }
      if (frame) {
        let given = false
        batch.release = () => { if (!given) { given = true; this.frames.give(frame) } }
      }
      if (batch.after !== req.after) {
        batch.release?.()
        throw new VolmirrorError('PEER_PROTOCOL', `GET /v1/groups: asked for records after ${req.after}, got a frame after ${batch.after}`)
      }
      return batch
    })
  }

  async resync (nodeId: string): Promise<ResyncPlan> {
    return await this.json<ResyncPlan>('POST', '/v1/resync', { node: nodeId })
  }

  async ack (nodeId: string, seq: number, stored?: number): Promise<void> {
    await this.request('POST', '/v1/ack', { body: { node: nodeId, seq, ...(stored !== undefined ? { stored } : {}) } }, async (res) => { await res.body.dump() }, [204])
  }

  // --- plumbing -----------------------------------------------------------------

  private async json<T> (method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    return await this.request(method, path, body === undefined ? {} : { body }, async (res) => {
      const type = one(res.headers['content-type']) ?? ''
      const text = (await readAll(res.body, MAX_JSON_REPLY)).toString('utf8')
      let v: unknown
      try { v = type.startsWith('application/json') ? JSON.parse(text) : undefined } catch { v = undefined }
      if (v === null || typeof v !== 'object') throw new VolmirrorError('PEER_PROTOCOL', `${method} ${path}: the reply is not a JSON object`)
      return v as T
    })
  }

  /**
   * request sends one request and hands a successful reply (a status in
   * `ok`, default 200) to `use`, all under one deadline; error replies
   * become their VolmirrorError, transport failures PEER_UNREACHABLE.
   */
  private async request<T> (
    method: 'GET' | 'HEAD' | 'POST', path: string,
    o: { headers?: Record<string, string>, body?: unknown, signal?: AbortSignal, timeoutMs?: number, poll?: boolean },
    use: (res: Dispatcher.ResponseData) => Promise<T>, ok: number[] = [200],
  ): Promise<T> {
    const what = `${method} ${path.split('?')[0]}`
    const ms = o.timeoutMs ?? this.timeoutMs
    const d = deadline(ms, o.signal)
    try {
      const payload = o.body === undefined ? undefined : JSON.stringify(o.body)
      const res = await (o.poll ? this.pollPool : this.pool).request({
        path: this.prefix + path,
        method,
        headers: this.headers({
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          ...o.headers,
        }),
        ...(payload !== undefined ? { body: payload } : {}),
        signal: d.signal,
        headersTimeout: ms,
        bodyTimeout: ms,
      })
      if (!ok.includes(res.statusCode)) {
        const body = await readAll(res.body, MAX_ERROR_BODY).catch(() => undefined)
        throw errorFromResponse(res.statusCode, body, what)
      }
      return await use(res)
    } catch (err) {
      throw this.transportError(err, what, o.signal, d, ms)
    } finally {
      d.clear()
    }
  }

  private headers (extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.opts.token}`, 'user-agent': 'volmirror', ...(this.asksCompression() ? { 'accept-encoding': 'zstd' } : {}), ...extra }
  }

  /**
   * asksCompression: --compress zstd always; auto once the primary is
   * known to be a round trip of AUTO_MIN_RTT_MS or more away: the quickest
   * of RTT_ROUNDS measurements (busy main threads on either side make some
   * slow; a loopback peer on a loaded host measured 5.7 ms once), and only
   * once there are that many (a few seconds after start).
   */
  asksCompression (): boolean {
    const mode = this.opts.compress ?? 'auto'
    return mode === 'zstd' || (mode === 'auto' && this.rttRounds.length >= RTT_ROUNDS && this.rttMs! >= AUTO_MIN_RTT_MS)
  }


  /** transportError is what a failed request rejects with: the caller's abort reason, an error of ours, or PEER_UNREACHABLE. */
  private transportError (err: unknown, what: string, signal: AbortSignal | undefined, d: { timedOut: boolean }, ms: number): unknown {
    if (signal?.aborted) return signal.reason
    if (d.timedOut) return new VolmirrorError('PEER_UNREACHABLE', `${what}: the primary at ${this.origin} did not answer within ${ms / 1000} s`, { cause: err, details: { timeoutMs: ms } })
    if (err instanceof VolmirrorError) return err
    return unreachable(err, what, this.origin)
  }
}

/** volumePath is the route of a volume: the whole name as one percent-encoded segment. */
function volumePath (volume: string): string {
  return `/v1/volumes/${encodeURIComponent(volume)}`
}

function unreachable (err: unknown, what: string, origin: string): VolmirrorError {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException }
  const code = e?.code ?? e?.cause?.code
  const reason = e?.cause?.message && e.cause.message !== e.message ? `${e.message}: ${e.cause.message}` : e?.message ?? String(err)
  return new VolmirrorError('PEER_UNREACHABLE', `${what}: cannot reach the primary at ${origin}: ${reason}${code ? ` (${code})` : ''}`, { cause: err, ...(code ? { details: { cause: code } } : {}) })
}

/** deadline is an AbortSignal that fires after `ms` or when `outer` aborts, whichever is first. */
function deadline (ms: number, outer?: AbortSignal): { signal: AbortSignal, timedOut: boolean, clear: () => void } {
  const ac = new AbortController()
  const d = { signal: ac.signal, timedOut: false, clear: () => {} }
  const onAbort = (): void => ac.abort(outer!.reason)
  const timer = setTimeout(() => { d.timedOut = true; ac.abort(new VolmirrorError('TIMEOUT', `no answer within ${ms} ms`)) }, ms)
  if (outer?.aborted) ac.abort(outer.reason)
  else outer?.addEventListener('abort', onAbort, { once: true })
  d.clear = () => { clearTimeout(timer); outer?.removeEventListener('abort', onAbort) }
  return d
}

/**
 * FramePool lends buffers for group frames, reused once released: a fresh
 * multi-megabyte buffer costs a page fault per 4 KiB on first touch, which
 * on some machines made copying frames the DR's main cost.
 */
class FramePool {
  private readonly free: Buffer[] = []
  constructor (private readonly keep = 3) {}

  /** take lends a buffer of at least `size` bytes; a new one gets `capacity` (the largest frame expected), so that it fits every later frame. */
  take (size: number, capacity: number): Buffer {
    const i = this.free.findIndex(b => b.length >= size)
    if (i >= 0) return this.free.splice(i, 1)[0]!
    return Buffer.allocUnsafeSlow(Math.max(size, capacity))
  }

  give (b: Buffer): void {
    if (this.free.length < this.keep) this.free.push(b)
  }
}

/** readInto reads a body of exactly `length` bytes into `buf` (PEER_PROTOCOL otherwise); returns the filled view. */
async function readInto (body: Body, buf: Buffer, length: number): Promise<Buffer> {
  let at = 0
  for await (const c of body as AsyncIterable<Buffer>) {
    if (at + c.length > length) {
      body.destroy()
      throw new VolmirrorError('PEER_PROTOCOL', `reply body longer than its content-length ${length}`)
    }
    c.copy(buf, at)
    at += c.length
  }
  if (at !== length) throw new VolmirrorError('PEER_PROTOCOL', `reply body of ${at} bytes, content-length ${length}`)
  return buf.subarray(0, length)
}

/** readAll collects a body of at most `limit` bytes (PEER_PROTOCOL past it). */
async function readAll (body: Body, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of body as AsyncIterable<Buffer>) {
    size += c.length
    if (size > limit) {
      body.destroy()
      throw new VolmirrorError('PEER_PROTOCOL', `reply body longer than ${limit} bytes`)
    }
    chunks.push(c)
  }
  return Buffer.concat(chunks, size)
}

function loadPem (v: string | Buffer): string | Buffer {
  if (Buffer.isBuffer(v) || v.includes('-----BEGIN')) return v
  try {
    return readFileSync(v)
  } catch (err) {
    throw new VolmirrorError('INVALID_ARGUMENT', `cannot read the CA certificate ${v}: ${(err as Error).message}`, { cause: err })
  }
}
