/**
 * tcp-proxy: a TCP proxy under the test's control, for the link between a
 * DR and its primary (start the DR with `--primary proxy.url`).
 *
 *   const proxy = await startProxy(pair.url)  // 127.0.0.1, port 0
 *   proxy.cut()       // every connection closed, new ones closed at once
 *   proxy.stall()     // connections held open, not a byte forwarded
 *   proxy.restore()   // forwarding again (held connections resume)
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
}

/** TcpProxy forwards connections on 127.0.0.1 to a target, under the test's control. */
export class TcpProxy {
  private mode: ProxyMode = 'open'
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
    const link: Link = { client, upstream: undefined, early: [] }
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

  /** forward writes a chunk to the other side, counting it, with back-pressure. */
  private forward (link: Link, chunk: Buffer, dir: keyof ProxyBytes): void {
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
