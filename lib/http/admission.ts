/**
 * admission: who may hold a connection to a node's HTTP server.
 *
 * A connection is untrusted until a request on it passed authentication
 * (the peer token); then it is trusted for as long as it lives (DRs keep
 * theirs open: long polls, fetches). Untrusted connections get a short
 * budget and a bounded share, so a flood of half-sent requests (slowloris)
 * cannot take the slots that DRs and operators need:
 *
 *   - an untrusted connection that has not authenticated within
 *     `budgetMs` is closed;
 *   - at most `perAddress` untrusted connections per source address, and
 *     `total` in all: past either, the oldest untrusted one goes (a real
 *     peer's new connection sends its request at once and is trusted
 *     before it is the oldest);
 *   - trusted connections are never evicted.
 *
 * Connections are keyed by remote address and port, which a TLS socket
 * shares with the TCP socket under it, so TLS handshakes are guarded too.
 */
import type net from 'node:net'
import type { Logger } from '../log.js'

export interface AdmissionOptions {
  /** Untrusted connections per source address (default 32). */
  perAddress?: number
  /** Untrusted connections in all (default 128). */
  total?: number
  /** Time an untrusted connection has to authenticate (ms; default 5 s). */
  budgetMs?: number
}

interface Entry { socket: net.Socket, address: string, timer: NodeJS.Timeout }

/** AdmissionCounters say what was evicted, and why. */
export interface AdmissionCounters { budget: number, perAddress: number, total: number }

export class Admission {
  private readonly untrusted = new Map<string, Entry>()
  private readonly perAddress = new Map<string, number>()
  readonly evicted: AdmissionCounters = { budget: 0, perAddress: 0, total: 0 }
  private readonly limits: Required<AdmissionOptions>
  private warnedAt = 0

  constructor (private readonly log: Logger, opts: AdmissionOptions = {}) {
    this.limits = { perAddress: opts.perAddress ?? 32, total: opts.total ?? 128, budgetMs: opts.budgetMs ?? 5_000 }
  }

  /** attach guards every connection `server` accepts. */
  attach (server: net.Server): void {
    server.on('connection', (socket: net.Socket) => { this.admit(socket) })
  }

  /** trust marks the connection a request came on as authenticated. */
  trust (socket: net.Socket): void {
    const key = keyOf(socket)
    const e = key === undefined ? undefined : this.untrusted.get(key)
    if (e) this.forget(key!, e)
  }

  /** untrustedCount is how many connections have not authenticated (status, tests). */
  get untrustedCount (): number {
    return this.untrusted.size
  }

  private admit (socket: net.Socket): void {
    const key = keyOf(socket)
    if (key === undefined) return
    const address = socket.remoteAddress ?? ''
    const e: Entry = { socket, address, timer: setTimeout(() => { this.evict(key, e, 'budget') }, this.limits.budgetMs) }
    e.timer.unref()
    this.untrusted.set(key, e)
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1)
    socket.once('close', () => { const x = this.untrusted.get(key); if (x === e) this.forget(key, e) })
    if (this.perAddress.get(address)! > this.limits.perAddress) {
      for (const [k, x] of this.untrusted) {
        if (x.address === address) { this.evict(k, x, 'perAddress'); break }
      }
    }
    if (this.untrusted.size > this.limits.total) {
      const [k, x] = this.untrusted.entries().next().value as [string, Entry]
      this.evict(k, x, 'total')
    }
  }

  private evict (key: string, e: Entry, why: keyof AdmissionCounters): void {
    this.forget(key, e)
    this.evicted[why]++
    e.socket.destroy()
    if (why !== 'budget' && Date.now() - this.warnedAt > 10_000) {
      this.warnedAt = Date.now()
      this.log.warn('http.connections_evicted', { why, address: e.address, evicted: { ...this.evicted }, note: 'unauthenticated connections beyond the limits are closed, oldest first' })
    }
  }

  private forget (key: string, e: Entry): void {
    clearTimeout(e.timer)
    this.untrusted.delete(key)
    const n = (this.perAddress.get(e.address) ?? 1) - 1
    if (n <= 0) this.perAddress.delete(e.address)
    else this.perAddress.set(e.address, n)
  }
}

function keyOf (socket: net.Socket): string | undefined {
  return socket.remoteAddress === undefined ? undefined : `${socket.remoteAddress}|${socket.remotePort ?? 0}`
}
