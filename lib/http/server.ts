/**
 * server: the primary's HTTP endpoint for its DRs (DESIGN "Shipping",
 * "DR mount and copy-on-read").
 *
 * A thin edge over a PrimaryService: each route checks and bounds its
 * input, calls one service method, and writes the answer; errors become
 * statuses only in lib/http/status.ts. Every route sits under /v1 and needs
 * `Authorization: Bearer <token>` (only `GET /v1/health` does not).
 *
 *   GET  /v1/health                           {"ok":true}, no token needed
 *   GET  /v1/info                             NodeInfo
 *   GET  /v1/volumes                          VolumeList
 *   GET|HEAD /v1/volumes/NAME                 bytes; `Range: bytes=a-b | a- | -n` gives 206
 *   GET  /v1/volumes/NAME/regions?from&count&checksums=0|1   RegionInfoList
 *   GET  /v1/volumes/NAME/regions/INDEX?first=OFFSET&len=N   one region, streamed, rotated to `first` (N bytes there sent first)
 *        (headers X-Volmirror-As-Of, -Size, -Region-Start, -Region-End, -First: lib/http/wire.ts)
 *   POST /v1/register                         Registration -> RegisterReply
 *   POST /v1/resync                           {node} -> ResyncPlan (after RESYNC_REQUIRED)
 *   GET  /v1/groups?node&after&wait&max       a group frame (lib/replication/group-frame.ts)
 *   POST /v1/ack                              {"node","seq"} -> 204
 *
 * With `observability` set, the operator's read-only routes too (`/`,
 * `/metrics`, `/v1/status`, `/v1/regionmap`: lib/http/observability.ts),
 * under the same token.
 *
 * NAME is a volume name, either percent-encoded as one segment
 * (`pool%2Fvm1.raw`, what the client sends) or as path segments
 * (`pool/vm1.raw`, for curl). In the segment form a name whose last
 * segment is `regions`, or whose second-to-last is, reads as a regions
 * route: encode such names. Every name passes checkVolumeName.
 *
 * Errors are JSON (`{"error":{"code","message"}}`, statuses in
 * lib/http/status.ts); besides those: 401 without the token (every route,
 * known or not), 404 for an unknown route, 405 for a known route with the
 * wrong method, 413 for a body over LIMITS.maxBodyBytes or a GET of more
 * than LIMITS.maxRangeBytes, 416 (with `Content-Range: bytes *\/size`) for a
 * range past the end, 503 CLOSED while closing. HEAD of a volume always
 * answers its size, even for volumes too large to GET whole.
 *
 * A long poll ends when a group closes, when its wait runs out, when its
 * client disconnects, when a newer poll of the same DR pushes it out (at
 * most `maxPollsPerNode` wait at once: a DR that reconnects must not wait
 * behind its own dead connection), or when the server closes.
 */
import type http from 'node:http'
import type { History } from '../core/history.js'
import { VolmirrorError } from '../errors.js'
import { silentLogger, type Logger } from '../log.js'
import { encodeGroupFrame } from '../replication/group-frame.js'
import { LIMITS, type PrimaryService, type RegionSink } from '../replication/protocol.js'
import { bearerToken, tokenMatches } from './auth.js'
import { baseUrl, bind, createHttpServer, type TlsFiles } from './listen.js'
import type { ObservabilityRoutes } from './observability.js'
import { parseRange } from './range.js'
import { Admission, type AdmissionOptions } from './admission.js'
import { CompressionPolicy, compressBody, ZstdEncoder, type CompressMode } from './compression.js'
import { RegionBody } from './region-body.js'
import { intField, intValue, Query, readJsonObject, sendError, sendJson, stringField } from './server-io.js'
import { httpStatus, toWireError } from './status.js'
import { H_AS_OF, H_BIRTH, H_CRC32, H_ERROR, H_FIRST, H_REGION_END, H_REGION_START, H_SIZE, GROUP_FRAME_TYPE } from './wire.js'

const NODE_ID = /^[A-Za-z0-9._-]{1,128}$/

/** PrimaryHttpServerOptions configure a {@link PrimaryHttpServer}. */
export interface PrimaryHttpServerOptions {
  /** The peer token (see lib/http/auth.ts). */
  token: string
  log?: Logger
  /** Serve HTTPS with this certificate and key (PEM, as file paths or contents). */
  tls?: TlsFiles
  /** `--compress`: whether replies are compressed for DRs that ask (lib/http/compression.ts; default auto). */
  compress?: CompressMode
  /** Long polls one DR may have waiting at once (default 2); a newer one ends the oldest. */
  maxPollsPerNode?: number
  /** Cap on a long poll's wait (default and maximum LIMITS.maxWaitMs). */
  maxWaitMs?: number
  /** Time allowed to receive a request's headers, and the whole request (defaults 10 s, 30 s). */
  headersTimeoutMs?: number
  requestTimeoutMs?: number
  /** Concurrent connections in all (default 2048); unauthenticated ones are bounded much lower (lib/http/admission.ts). */
  maxConnections?: number
  /** Limits on connections that have not authenticated (slowloris). */
  admission?: AdmissionOptions
}

type Route = (req: http.IncomingMessage, res: http.ServerResponse, q: Query) => Promise<void>

/** PrimaryHttpServer serves a PrimaryService to DRs over HTTP(S). */
export class PrimaryHttpServer {
  private server: http.Server | undefined
  private closing: Promise<void> | undefined
  private readonly log: Logger
  private readonly polls = new Map<string, AbortController[]>()
  private readonly inFlight = new Set<Promise<unknown>>()
  private regionSizeP: Promise<number> | undefined
  private bound: { host: string, port: number } | undefined
  /** observability, once the node is up, serves the status page, metrics and status JSON too. */
  observability: ObservabilityRoutes | undefined

  constructor (private readonly service: PrimaryService, private readonly opts: PrimaryHttpServerOptions) {
    if (!opts.token) throw new VolmirrorError('INVALID_ARGUMENT', 'the HTTP server needs a peer token')
    this.log = opts.log ?? silentLogger
    this.compression = new CompressionPolicy(opts.compress ?? 'auto')
    this.admission = new Admission(this.log, opts.admission)
  }

  /** When replies are compressed, and the bytes sent (raw and on the wire). */
  readonly compression: CompressionPolicy
  /** Who may hold a connection (unauthenticated ones are bounded). */
  readonly admission: Admission

  /** address is where the server listens (after listen). */
  get address (): { host: string, port: number } {
    if (!this.bound) throw new VolmirrorError('CLOSED', 'the HTTP server is not listening')
    return this.bound
  }

  /** url is the base URL peers use (`http://127.0.0.1:7070`). */
  get url (): string {
    return baseUrl(this.address, this.opts.tls !== undefined)
  }

  /** activePolls counts long polls waiting now (status, tests). */
  get activePolls (): number {
    let n = 0
    for (const l of this.polls.values()) n += l.length
    return n
  }

  /** listen binds to `host:port` (port 0 picks a free port) and resolves with the bound address. */
  async listen (host: string, port: number): Promise<{ host: string, port: number }> {
    if (this.server) throw new VolmirrorError('INVALID_ARGUMENT', 'the HTTP server is already listening')
    const requestTimeout = this.opts.requestTimeoutMs ?? 30_000
    const base: http.ServerOptions = {
      headersTimeout: Math.min(this.opts.headersTimeoutMs ?? 10_000, requestTimeout),
      requestTimeout,
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: 1_000,
      maxHeaderSize: 16 * 1024,
    }
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => { this.serve(req, res) }
    const server = await createHttpServer(base, this.opts.tls, handler)
    // An idle socket (no bytes either way) lives at most a whole long poll and some.
    server.timeout = LIMITS.maxWaitMs + 15_000
    server.maxConnections = this.opts.maxConnections ?? 2048
    this.admission.attach(server)
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => { clientError(err, socket) })
    this.server = server
    try {
      this.bound = await bind(server, host, port)
    } catch (err) {
      this.server = undefined
      throw err
    }
    this.log.info('http.listening', { url: this.url })
    return this.bound
  }

  /** close stops accepting, ends every long poll, lets replies in flight finish (up to 5 s), then drops all connections. */
  close (): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    const server = this.server
    if (!server) return
    const closed = new Promise<void>(resolve => server.close(() => resolve()))
    for (const list of this.polls.values()) for (const ac of list) ac.abort()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise(resolve => { timer = setTimeout(resolve, 5_000) }),
    ])
    clearTimeout(timer)
    server.closeAllConnections()
    await closed
    this.bound = undefined
  }

  // --- dispatch ---------------------------------------------------------------

  private serve (req: http.IncomingMessage, res: http.ServerResponse): void {
    req.on('error', () => {})
    res.on('error', () => {})
    const done = new Promise(resolve => res.once('close', resolve))
    this.inFlight.add(done)
    void done.then(() => this.inFlight.delete(done))
    this.dispatch(req, res).catch((err: unknown) => { this.fail(req, res, err) })
  }

  private async dispatch (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = req.url ?? ''
    const q = raw.indexOf('?')
    const pathPart = q < 0 ? raw : raw.slice(0, q)
    const query = new Query(q < 0 ? '' : raw.slice(q + 1))
    const method = req.method ?? 'GET'
    if (!pathPart.startsWith('/')) throw new VolmirrorError('BAD_REQUEST', 'request target must be a path')
    const seg = pathPart.split('/').slice(1)
    if (pathPart === '/v1/health') {
      if (method !== 'GET' && method !== 'HEAD') return this.notAllowed(req, res, 'GET, HEAD')
      sendJson(res, 200, { ok: true })
      return
    }
    if (this.observability?.handles(pathPart)) return await this.observability.serve(req, res, pathPart, query)
    if (!tokenMatches(bearerToken(req.headers.authorization), this.opts.token)) {
      this.drain(req, res)
      sendError(res, new VolmirrorError('UNAUTHORIZED', 'missing or wrong peer token (Authorization: Bearer <token>)'), { 'www-authenticate': 'Bearer realm="volmirror"' })
      return
    }
    // An authenticated connection keeps its slot (unauthenticated ones are evicted first).
    this.admission.trust(req.socket)
    if (this.closing) throw new VolmirrorError('CLOSED', 'the primary is shutting down')
    if (seg[0] !== 'v1') throw notFound(pathPart)
    const [route, allow] = this.route(seg.slice(1), method, pathPart)
    if (!route) return this.notAllowed(req, res, allow)
    await route(req, res, query)
  }

  /** route picks the handler for the path segments after /v1 (or the methods the path allows). */
  private route (seg: string[], method: string, pathPart: string): [Route | undefined, string] {
    const is = (...m: string[]): boolean => m.includes(method)
    if (seg.length === 1) {
      switch (seg[0]) {
        case 'info': return [is('GET') ? (_req, res) => this.getInfo(res) : undefined, 'GET']
        case 'volumes': return [is('GET') ? (_req, res) => this.getVolumes(res) : undefined, 'GET']
        case 'register': return [is('POST') ? (req, res) => this.postRegister(req, res) : undefined, 'POST']
        case 'groups': return [is('GET') ? (req, res, q) => this.getGroups(req, res, q) : undefined, 'GET']
        case 'ack': return [is('POST') ? (req, res) => this.postAck(req, res) : undefined, 'POST']
        case 'resync': return [is('POST') ? (req, res) => this.postResync(req, res) : undefined, 'POST']
      }
    }
    if (seg[0] === 'volumes' && seg.length >= 2) {
      const rest = seg.slice(1)
      const n = rest.length
      if (n >= 2 && rest[n - 1] === 'regions') {
        const name = volumeName(rest.slice(0, -1))
        return [is('GET') ? (_req, res, q) => this.getRegions(res, name, q) : undefined, 'GET']
      }
      if (n >= 3 && rest[n - 2] === 'regions') {
        const name = volumeName(rest.slice(0, -2))
        const index = intValue('region index', rest[n - 1]!)
        return [is('GET') ? (req, res, q) => this.getRegion(req, res, name, index, q) : undefined, 'GET']
      }
      const name = volumeName(rest)
      return [is('GET', 'HEAD') ? (req, res) => this.getVolume(req, res, name) : undefined, 'GET, HEAD']
    }
    throw notFound(pathPart)
  }

  private notAllowed (req: http.IncomingMessage, res: http.ServerResponse, allow: string): void {
    this.drain(req, res)
    sendError(res, new VolmirrorError('BAD_REQUEST', `method not allowed here (allowed: ${allow})`), { allow }, 405)
  }

  /** drain makes sure an unread request body does not keep the connection (the reply closes it). */
  private drain (req: http.IncomingMessage, res: http.ServerResponse): void {
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) res.setHeader('connection', 'close')
  }

  private fail (req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
    try {
      this.reply(req, res, err)
    } catch (e) {
      this.log.error('http.reply_failed', { err: e })
      res.destroy()
    }
  }

  private reply (req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
    const e = toWireError(err)
    if (!(err instanceof VolmirrorError)) this.log.error('http.failed', { method: req.method, path: (req.url ?? '').split('?')[0], err })
    else if (httpStatus(e.code) >= 500) this.log.warn('http.failed', { method: req.method, path: (req.url ?? '').split('?')[0], err: e })
    if (res.destroyed) return
    if (res.headersSent) { res.destroy(e); return }
    this.drain(req, res)
    sendError(res, e)
  }

  // --- routes -----------------------------------------------------------------

  private async getInfo (res: http.ServerResponse): Promise<void> {
    sendJson(res, 200, await this.service.info())
  }

  private async getVolumes (res: http.ServerResponse): Promise<void> {
    sendJson(res, 200, await this.service.volumes())
  }

  private async getVolume (req: http.IncomingMessage, res: http.ServerResponse, name: string): Promise<void> {
    const max = LIMITS.maxRangeBytes
    const probe = await this.service.readRange(name, 0, 0) // checks the name, the volume, and learns its size
    const range = parseRange(req.headers.range, probe.size)
    const common = { 'accept-ranges': 'bytes', 'cache-control': 'no-store', 'content-type': 'application/octet-stream' }
    const unsatisfiable = (r: RangeRead): void => {
      sendError(res, new VolmirrorError('RANGE_NOT_SATISFIABLE', `no byte of the range exists: ${name} has ${r.size} bytes`),
        { 'content-range': `bytes */${r.size}`, 'accept-ranges': 'bytes', ...readHeaders(r) })
    }
    if (range === 'unsatisfiable') return unsatisfiable(probe)
    if (req.method === 'HEAD') {
      // HEAD answers the size even of volumes too large to GET whole: tools learn the size this way.
      const headers = range
        ? { ...common, 'content-range': `bytes ${range.start}-${range.end}/${probe.size}`, 'content-length': range.end - range.start + 1 }
        : { ...common, 'content-length': probe.size }
      res.writeHead(range ? 206 : 200, { ...headers, ...readHeaders(probe) })
      res.end()
      return
    }
    if (!range) {
      if (probe.size > max) throw tooLarge(name, probe.size)
      const r = await this.service.readRange(name, 0, max)
      if (r.size > max) throw tooLarge(name, r.size)
      res.writeHead(200, { ...common, 'content-length': r.data.length, ...readHeaders(r) })
      res.end(r.data)
      return
    }
    const length = range.end - range.start + 1
    if (length > max) throw new VolmirrorError('TOO_LARGE', `a range may span at most ${max} bytes (asked for ${length})`)
    const r = await this.service.readRange(name, range.start, length)
    if (r.data.length === 0) return unsatisfiable(r) // shrank since the probe
    res.writeHead(206, {
      ...common,
      'content-range': `bytes ${range.start}-${range.start + r.data.length - 1}/${r.size}`,
      'content-length': r.data.length,
      ...readHeaders(r),
    })
    res.end(r.data)
  }

  private async getRegions (res: http.ServerResponse, name: string, q: Query): Promise<void> {
    const from = q.int('from', { required: true })!
    const count = q.int('count', { required: true })!
    if (count < 1 || count > LIMITS.maxRegionsPerCall) throw new VolmirrorError('BAD_REQUEST', `count must be between 1 and ${LIMITS.maxRegionsPerCall}`)
    sendJson(res, 200, await this.service.regions(name, from, count, q.flag('checksums')))
  }

  /**
   * getRegion streams a region: headers as soon as the piece at `first` is
   * read, the body chunked in rotated order, and trailers: the CRC-32 of
   * the body, or the code of an error that ended it early (REGION_CHANGED:
   * a write landed in the region meanwhile; the DR fetches it again).
   */
  private async getRegion (req: http.IncomingMessage, res: http.ServerResponse, name: string, index: number, q: Query): Promise<void> {
    const first = q.int('first')
    const firstLength = q.int('len')
    const rs = await this.regionSize()
    const start = index * rs
    if (!Number.isSafeInteger(start + rs)) throw new VolmirrorError('BAD_REQUEST', `region index ${index} is out of range`)
    const ac = new AbortController()
    res.once('close', () => ac.abort())
    let body: RegionBody | undefined
    let crc: number | undefined
    // zstd when asked (and worth it): one frame, flushed chunk by chunk.
    const zstd = this.compression.wants(req.headers['accept-encoding']) ? new ZstdEncoder() : undefined
    const sent = { raw: 0, wire: 0 }
    const write = (c: Uint8Array): Promise<void> => {
      const w = zstd ? zstd.write(c) : c
      sent.raw += c.length
      sent.wire += w.length
      return writeChunk(res, w)
    }
    const sink: RegionSink = {
      begin: (asOf: number, size: number, birth?: number) => {
        if (body) throw new VolmirrorError('IO_ERROR', 'region sink began twice')
        const end = Math.min(start + rs, Math.max(size, start))
        const f = first !== undefined && first > start && first < end ? first : start
        body = new RegionBody(write, start, end, f)
        // No content-length: chunked, so that the trailers can follow the body.
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'cache-control': 'no-store',
          trailer: `${H_CRC32}, ${H_ERROR}`,
          [H_AS_OF]: asOf,
          [H_SIZE]: size,
          [H_REGION_START]: start,
          [H_REGION_END]: end,
          [H_FIRST]: f,
          ...(birth !== undefined ? { [H_BIRTH]: birth } : {}),
          ...(zstd ? { 'content-encoding': 'zstd' } : {}),
        })
      },
      data: (offset, chunk) => {
        if (!body) throw new VolmirrorError('IO_ERROR', 'region data before begin')
        return body.data(offset, chunk)
      },
      end: (sum) => { crc = sum },
    }
    try {
      await this.service.fetchRegion(name, index, sink, { ...(first !== undefined ? { first } : {}), ...(firstLength !== undefined ? { firstLength } : {}), signal: ac.signal })
    } catch (err) {
      if (!res.headersSent || !(err instanceof VolmirrorError) || err.code !== 'REGION_CHANGED') throw err
      res.addTrailers({ [H_ERROR]: err.code })
      res.end()
      return
    }
    if (!body) throw new VolmirrorError('IO_ERROR', 'the region fetch ended without data')
    if (!body.complete) throw new VolmirrorError('IO_ERROR', `the region fetch of ${name}#${index} ended short`)
    if (zstd) {
      const tail = zstd.end()
      sent.wire += tail.length
      res.write(tail)
    }
    this.compression.sent('regions', sent.raw, sent.wire, zstd !== undefined)
    if (crc !== undefined) res.addTrailers({ [H_CRC32]: crc })
    res.end()
  }

  private async postRegister (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const o = await readJsonObject(req, LIMITS.maxBodyBytes)
    const nodeId = stringField(o, 'nodeId')
    const epoch = intField(o, 'epoch')!
    const regionSize = intField(o, 'regionSize', { min: 1 })!
    const appliedSeq = intField(o, 'appliedSeq', { optional: true })
    const lastSeq = intField(o, 'lastSeq', { optional: true })
    const history = historyField(o.history)
    const listenUrl = urlField(o.listenUrl)
    if (o.discardLocal !== undefined && typeof o.discardLocal !== 'boolean') throw new VolmirrorError('BAD_REQUEST', 'register: "discardLocal" must be a boolean')
    const reply = await this.service.register({
      nodeId, epoch, regionSize,
      ...(appliedSeq !== undefined ? { appliedSeq } : {}),
      ...(lastSeq !== undefined ? { lastSeq } : {}),
      ...(history ? { history } : {}),
      ...(listenUrl ? { listenUrl } : {}),
      ...(o.discardLocal === true ? { discardLocal: true } : {}),
    })
    sendJson(res, 200, reply)
  }

  private async getGroups (req: http.IncomingMessage, res: http.ServerResponse, q: Query): Promise<void> {
    const nodeId = q.string('node')
    if (nodeId === undefined || !NODE_ID.test(nodeId)) throw new VolmirrorError('BAD_REQUEST', 'query parameter "node" must be a node id')
    const after = q.int('after', { required: true })!
    const waitMs = Math.min(q.int('wait') ?? 0, this.opts.maxWaitMs ?? LIMITS.maxWaitMs, LIMITS.maxWaitMs)
    const max = q.int('max', { min: 1 })
    const ac = new AbortController()
    res.once('close', () => ac.abort())
    const release = this.admitPoll(nodeId, ac)
    let batch
    try {
      batch = await this.service.groups({ nodeId, after, waitMs, signal: ac.signal, ...(max !== undefined ? { maxBytes: Math.min(max, LIMITS.maxGroupBytes) } : {}) })
    } finally {
      release()
    }
    if (res.destroyed) return
    const pieces = encodeGroupFrame(batch)
    let length = 0
    for (const p of pieces) length += p.length
    // An empty answer (a heartbeat) is not worth a zstd frame.
    if (batch.records.length > 0 && this.compression.wants(req.headers['accept-encoding'])) {
      const body = compressBody(pieces)
      this.compression.sent('groups', length, body.length, true)
      res.writeHead(200, { 'content-type': GROUP_FRAME_TYPE, 'content-length': body.length, 'content-encoding': 'zstd', 'cache-control': 'no-store' })
      res.end(body)
      return
    }
    this.compression.sent('groups', length, length, false)
    res.writeHead(200, { 'content-type': GROUP_FRAME_TYPE, 'content-length': length, 'cache-control': 'no-store' })
    for (const p of pieces) res.write(p)
    res.end()
  }

  private async postResync (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const o = await readJsonObject(req, LIMITS.maxBodyBytes)
    sendJson(res, 200, await this.service.resync(stringField(o, 'node')))
  }

  private async postAck (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const o = await readJsonObject(req, LIMITS.maxBodyBytes)
    const node = stringField(o, 'node')
    const seq = intField(o, 'seq')!
    const stored = intField(o, 'stored', { optional: true })
    await this.service.ack(node, seq, stored)
    res.writeHead(204, { 'cache-control': 'no-store' })
    res.end()
  }

  // --- helpers ------------------------------------------------------------------

  /** admitPoll registers a long poll of `nodeId`, ending its oldest one past the limit; returns its release. */
  private admitPoll (nodeId: string, ac: AbortController): () => void {
    const list = this.polls.get(nodeId) ?? []
    this.polls.set(nodeId, list)
    list.push(ac)
    const max = Math.max(1, this.opts.maxPollsPerNode ?? 2)
    while (list.length > max) list.shift()!.abort()
    return () => {
      const i = list.indexOf(ac)
      if (i >= 0) list.splice(i, 1)
      if (list.length === 0 && this.polls.get(nodeId) === list) this.polls.delete(nodeId)
    }
  }

  private regionSize (): Promise<number> {
    this.regionSizeP ??= this.service.info().then(i => i.regionSize, (err: unknown) => { this.regionSizeP = undefined; throw err })
    return this.regionSizeP
  }
}

/** RangeRead is what readRange answers (`birth` where the service reports one). */
interface RangeRead { asOf: number, size: number, birth?: number }

/** readHeaders are the headers saying which state of the volume a read saw. */
function readHeaders (r: RangeRead): http.OutgoingHttpHeaders {
  return r.birth !== undefined ? { [H_AS_OF]: r.asOf, [H_BIRTH]: r.birth } : { [H_AS_OF]: r.asOf }
}

/** volumeName joins raw path segments into a checked-later volume name (each segment percent-decoded). */
function volumeName (segments: string[]): string {
  try {
    return segments.map(s => decodeURIComponent(s)).join('/')
  } catch {
    throw new VolmirrorError('INVALID_VOLUME_NAME', 'volume name is not valid percent-encoding')
  }
}

function notFound (path: string): VolmirrorError {
  return new VolmirrorError('NOT_FOUND', `no such route: ${path.slice(0, 200)}`)
}

function tooLarge (name: string, size: number): VolmirrorError {
  return new VolmirrorError('TOO_LARGE', `${name} has ${size} bytes; ask for ranges of at most ${LIMITS.maxRangeBytes} (Range: bytes=a-b)`)
}

/** writeChunk writes to a reply; resolves once the socket is done with the chunk (written, or the reply gone). */
function writeChunk (res: http.ServerResponse, chunk: Uint8Array): Promise<void> {
  if (res.destroyed) return Promise.resolve()
  return new Promise<void>(resolve => {
    // A reply torn down before the chunk left may never call back: 'close' settles it.
    const done = (): void => { res.off('close', done); resolve() }
    res.once('close', done)
    res.write(chunk, done)
  })
}

/** clientError answers a request Node could not parse (bad syntax, huge headers, timeouts) with a JSON error. */
function clientError (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) { socket.destroy(); return }
  const [status, code, text] = err.code === 'HPE_HEADER_OVERFLOW'
    ? [431, 'TOO_LARGE', 'Request Header Fields Too Large']
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'TIMEOUT', 'Request Timeout'] : [400, 'BAD_REQUEST', 'Bad Request']
  const body = JSON.stringify({ error: { code, message: `malformed or incomplete HTTP request (${text})` } })
  socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}

/** historyField checks a DR's epoch history (lib/core/history.ts) from a request body. */
function historyField (v: unknown): History | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v) || v.length > 10_000) throw new VolmirrorError('BAD_REQUEST', 'register: "history" must be an array of at most 10000 epochs')
  return v.map((e: unknown, i) => {
    const x = e as Record<string, unknown>
    const ok = typeof x === 'object' && x !== null &&
      Number.isSafeInteger(x.epoch) && (x.epoch as number) >= 0 && typeof x.nodeId === 'string' && NODE_ID.test(x.nodeId) &&
      Number.isSafeInteger(x.fromSeq) && (x.fromSeq as number) >= 0 && Number.isSafeInteger(x.at) && (x.at as number) >= 0
    if (!ok) throw new VolmirrorError('BAD_REQUEST', `register: history entry ${i} is not {epoch, nodeId, fromSeq, at}`)
    return { epoch: x.epoch as number, nodeId: x.nodeId as string, fromSeq: x.fromSeq as number, at: x.at as number }
  })
}

/** urlField checks an http(s) URL from a request body. */
function urlField (v: unknown): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string' || v.length > 2048) throw new VolmirrorError('BAD_REQUEST', 'register: "listenUrl" must be a URL')
  let u: URL
  try { u = new URL(v) } catch { throw new VolmirrorError('BAD_REQUEST', 'register: "listenUrl" must be a URL') }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new VolmirrorError('BAD_REQUEST', 'register: "listenUrl" must be http or https')
  return v
}
