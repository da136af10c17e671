/**
 * tcp-proxy: a TCP proxy under the test's control, for the link between a
 * DR and its primary (start the DR with `--primary proxy.url`).
 *
 *   const proxy = await startProxy(pair.url)  // 127.0.0.1, port 0
 *   proxy.cut()       // every connection closed, new ones closed at once
 *   proxy.stall()     // connections held open, not a byte forwarded
 *   proxy.restore()   // forwarding again (held connections resume)
 *   proxy.shape({ rttMs: 20, bytesPerSecond: 12.5e6 })  // a WAN: delay each way, a bandwidth cap
 *   proxy.bytes       // { toTarget, fromTarget } forwarded so far
 *
 * Bytes are counted when forwarded, in each direction, so a test can
 * assert how much crossed the link (`fromTarget`: primary -> DR). The
 * target can be changed (`setTarget`) when the primary restarts elsewhere.
 * The proxy is closed in teardown even when the test fails.
 */
import net from 'node:net'
import { defer } from './cleanup.js'

/** ProxyMode is what the proxy does with connections. */
export type ProxyMode = 'open' | 'cut' | 'stall'

/** ProxyBytes are the bytes forwarded so far, per direction. */
export interface ProxyBytes {
  /** Client -> target (DR -> primary). */
  toTarget: number
  /** Target -> client (primary -> DR). */
  fromTarget: number
}

interface Link {
  client: net.Socket
  upstream: net.Socket | undefined
  /** Bytes from the client read before the upstream connected. */
  early: Buffer[]
  /** Per direction: chunks held back by the shaping, and when the last one may leave. */
  queues: Record<keyof ProxyBytes, { chunks: Array<{ at: number, chunk: Buffer }>, bytes: number, last: number, timer: NodeJS.Timeout | undefined }>
}

/** Shaping makes the link a WAN: `rttMs` (half of it added each way) and a bandwidth cap per direction. */
export interface Shaping { rttMs?: number, bytesPerSecond?: number }

/** Bytes held back by the shaping before the sender is paused. */
const QUEUE_HIGH = 4 * 1024 * 1024

/** TcpProxy forwards connections on 127.0.0.1 to a target, under the test's control. */
export class TcpProxy {
  private mode: ProxyMode = 'open'
  private shaping: Shaping = {}
  private readonly links = new Set<Link>()
  readonly bytes: ProxyBytes = { toTarget: 0, fromTarget: 0 }
  /** Connections accepted, and those closed at once because the link was cut. */
  readonly counters = { accepted: 0, refused: 0 }
  private closed = false

  private constructor (private readonly server: net.Server, private target: { host: string, port: number }) {}

  /** start listens on 127.0.0.1, port 0, forwarding to `target` (a URL or host:port). */
  static async start (target: string): Promise<TcpProxy> {
    const server = net.createServer()
    const proxy = new TcpProxy(server, parseTarget(target))
    server.on('connection', socket => proxy.accept(socket))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve() })
    })
    defer(() => proxy.close())
    return proxy
  }

  /** port is where the proxy listens. */
  get port (): number { return (this.server.address() as net.AddressInfo).port }

  /** url is the proxy's address as an http URL (for `--primary`). */
  get url (): string { return `http://127.0.0.1:${this.port}` }

  /** state is the current mode. */
  get state (): ProxyMode { return this.mode }

  /** connections counts the connections currently open through the proxy. */
  get connections (): number { return this.links.size }

  /** setTarget forwards new connections elsewhere (a primary restarted on another port). */
  setTarget (target: string): void {
    this.target = parseTarget(target)
  }

  /**
   * shape adds latency (half of `rttMs` each way) and caps the bandwidth of
   * each direction (all connections share it, as they share a real link).
   * Chunks keep their order; a sender is paused while a lot is held back.
   */
  shape (s: Shaping): void {
    this.shaping = { ...s }
  }

  /** snapshot copies the byte counters (to subtract later). */
  snapshot (): ProxyBytes {
    return { ...this.bytes }
  }

  /** cut closes every connection and closes new ones as soon as they are accepted. */
  cut (): void {
    this.mode = 'cut'
    for (const l of [...this.links]) this.drop(l)
  }

  /** stall keeps connections (and accepts new ones) but forwards nothing until `restore`. */
  stall (): void {
    this.mode = 'stall'
    for (const l of this.links) {
      l.client.pause()
      l.upstream?.pause()
    }
  }

  /** restore forwards again: held connections resume, new ones are connected. */
  restore (): void {
    this.mode = 'open'
    for (const l of [...this.links]) {
      if (!l.upstream) { this.connect(l); continue }
      if (!l.upstream.connecting) for (const c of l.early.splice(0)) this.forward(l, c, 'toTarget')
      l.client.resume()
      l.upstream.resume()
      this.pump(l, 'toTarget')
      this.pump(l, 'fromTarget')
    }
  }

  /** close stops listening and closes every connection; safe to call twice. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.mode = 'cut'
    for (const l of [...this.links]) this.drop(l)
    await new Promise<void>(resolve => this.server.close(() => resolve()))
  }

  private accept (client: net.Socket): void {
    this.counters.accepted++
    if (this.mode === 'cut' || this.closed) {
      this.counters.refused++
      client.on('error', () => {})
      client.destroy()
      return
    }
    const queue = (): Link['queues']['toTarget'] => ({ chunks: [], bytes: 0, last: 0, timer: undefined })
    const link: Link = { client, upstream: undefined, early: [], queues: { toTarget: queue(), fromTarget: queue() } }
    this.links.add(link)
    client.setNoDelay(true)
    client.on('error', () => this.drop(link))
    client.on('close', () => this.drop(link))
    client.on('data', (chunk: Buffer) => {
      if (!link.upstream || link.upstream.connecting) { link.early.push(chunk); return }
      this.forward(link, chunk, 'toTarget')
    })
    if (this.mode === 'stall') client.pause()
    else this.connect(link)
  }

  private connect (link: Link): void {
    const up = net.connect(this.target.port, this.target.host)
    link.upstream = up
    up.setNoDelay(true)
    up.on('error', () => this.drop(link))
    up.on('close', () => this.drop(link))
    up.on('connect', () => {
      if (this.mode === 'stall') { up.pause(); return }
      for (const c of link.early.splice(0)) this.forward(link, c, 'toTarget')
    })
    up.on('data', (chunk: Buffer) => this.forward(link, chunk, 'fromTarget'))
    link.client.resume()
  }

  /** The time each direction's link is busy until (ms, performance.now()): the bandwidth cap is shared. */
  private readonly busyUntil: Record<keyof ProxyBytes, number> = { toTarget: 0, fromTarget: 0 }

  /** forward writes a chunk to the other side, counting it, with back-pressure (after the shaping's delay, if any). */
  private forward (link: Link, chunk: Buffer, dir: keyof ProxyBytes): void {
    const { rttMs = 0, bytesPerSecond = 0 } = this.shaping
    const q = link.queues[dir]
    if (rttMs <= 0 && bytesPerSecond <= 0 && q.chunks.length === 0) { this.send(link, chunk, dir); return }
    const now = performance.now()
    // Serialised at the cap's rate on the shared link, then in flight for half the RTT.
    const start = Math.max(now, this.busyUntil[dir])
    const sent = bytesPerSecond > 0 ? start + 1000 * chunk.length / bytesPerSecond : now
    if (bytesPerSecond > 0) this.busyUntil[dir] = sent
    q.chunks.push({ at: Math.max(q.last, sent + rttMs / 2), chunk })
    q.last = q.chunks[q.chunks.length - 1]!.at
    q.bytes += chunk.length
    const from = dir === 'toTarget' ? link.client : link.upstream!
    if (q.bytes > QUEUE_HIGH) from.pause()
    this.pump(link, dir)
  }

  /** pump sends the held chunks that are due and sets a timer for the next one. */
  private pump (link: Link, dir: keyof ProxyBytes): void {
    const q = link.queues[dir]
    if (q.timer || this.mode !== 'open') return
    const now = performance.now()
    while (q.chunks.length > 0 && q.chunks[0]!.at <= now + 0.02) {
      const { chunk } = q.chunks.shift()!
      q.bytes -= chunk.length
      this.send(link, chunk, dir)
    }
    const from = dir === 'toTarget' ? link.client : link.upstream
    if (q.bytes <= QUEUE_HIGH / 2 && this.mode === 'open' && from?.isPaused()) from.resume()
    if (q.chunks.length === 0) return
    q.timer = setTimeout(() => { q.timer = undefined; if (this.links.has(link)) this.pump(link, dir) }, Math.max(0, q.chunks[0]!.at - now))
  }

  /** send writes a chunk to the other side now, counting it, with back-pressure. */
  private send (link: Link, chunk: Buffer, dir: keyof ProxyBytes): void {
    const [from, to] = dir === 'toTarget' ? [link.client, link.upstream!] : [link.upstream!, link.client]
    if (to.destroyed) return
    this.bytes[dir] += chunk.length
    if (!to.write(chunk)) {
      from.pause()
      to.once('drain', () => { if (this.mode === 'open') from.resume() })
    }
    // A chunk read just before a stall is forwarded; nothing after it is.
    if (this.mode === 'stall') from.pause()
  }

  private drop (link: Link): void {
    if (!this.links.delete(link)) return
    for (const q of Object.values(link.queues)) clearTimeout(q.timer)
    link.client.destroy()
    link.upstream?.destroy()
  }
}

/** startProxy starts a {@link TcpProxy} to `target` (registered for teardown). */
export async function startProxy (target: string): Promise<TcpProxy> {
  return await TcpProxy.start(target)
}

function parseTarget (target: string): { host: string, port: number } {
  const u = new URL(target.includes('://') ? target : `tcp://${target}`)
  const port = Number(u.port)
  if (!Number.isInteger(port) || port <= 0) throw new Error(`proxy target without a port: ${target}`)
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port }
}
