/**
 * observability-server: a DR's HTTP endpoint before it is promoted.
 *
 * A DR is a client of its primary and serves no replication routes; with
 * `--listen` it serves only the operator's read-only routes
 * (lib/http/observability.ts) on that address: the status page, metrics,
 * status JSON and region pictures. Everything else is 404 (with the
 * token) or 401 (without). It is closed with the DR, before a promotion
 * starts a primary on the same address.
 */
import type http from 'node:http'
import type { Socket } from 'node:net'
import { VolmirrorError } from '../errors.js'
import { silentLogger, type Logger } from '../log.js'
import { bearerToken, tokenMatches } from './auth.js'
import { baseUrl, bind, createHttpServer, type TlsFiles } from './listen.js'
import type { ObservabilityRoutes } from './observability.js'
import { Query, sendError } from './server-io.js'
import { httpStatus, toWireError } from './status.js'

/** ObservabilityServer serves ObservabilityRoutes on their own address. */
export class ObservabilityServer {
  private server: http.Server | undefined
  private closing: Promise<void> | undefined
  private bound: { host: string, port: number } | undefined
  private readonly log: Logger

  constructor (private readonly routes: ObservabilityRoutes, private readonly opts: { token: string, log?: Logger, tls?: TlsFiles }) {
    this.log = opts.log ?? silentLogger
  }

  /** url is where the server listens (after listen). */
  get url (): string {
    if (!this.bound) throw new VolmirrorError('CLOSED', 'the observability server is not listening')
    return baseUrl(this.bound, this.opts.tls !== undefined)
  }

  /** listen binds to `host:port` (port 0 picks a free port). */
  async listen (host: string, port: number): Promise<{ host: string, port: number }> {
    if (this.server) throw new VolmirrorError('INVALID_ARGUMENT', 'the observability server is already listening')
    const server = await createHttpServer({ headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, maxHeaderSize: 16 * 1024 },
      this.opts.tls, (req, res) => { this.serve(req, res) })
    server.maxConnections = 64
    server.on('clientError', (_err, socket: Socket) => { socket.destroy() })
    this.server = server
    try {
      this.bound = await bind(server, host, port)
    } catch (err) {
      this.server = undefined
      throw err
    }
    this.log.info('http.listening', { url: this.url, routes: 'status page, metrics (read-only)' })
    return this.bound
  }

  /** close stops listening and drops every connection (the address is free when it resolves); safe to call twice. */
  close (): Promise<void> {
    this.closing ??= (async () => {
      const server = this.server
      if (!server) return
      const closed = new Promise<void>(resolve => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
      this.bound = undefined
    })()
    return this.closing
  }

  private serve (req: http.IncomingMessage, res: http.ServerResponse): void {
    req.on('error', () => {})
    res.on('error', () => {})
    this.dispatch(req, res).catch((err: unknown) => {
      const e = toWireError(err)
      if (!(err instanceof VolmirrorError)) this.log.error('http.failed', { method: req.method, path: (req.url ?? '').split('?')[0], err })
      else if (httpStatus(e.code) >= 500) this.log.warn('http.failed', { method: req.method, path: (req.url ?? '').split('?')[0], err: e })
      if (res.headersSent || res.destroyed) { res.destroy(); return }
      sendError(res, e)
    })
  }

  private async dispatch (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = req.url ?? ''
    const q = raw.indexOf('?')
    const path = q < 0 ? raw : raw.slice(0, q)
    const query = new Query(q < 0 ? '' : raw.slice(q + 1))
    if (this.closing) throw new VolmirrorError('CLOSED', 'the node is shutting down')
    if (this.routes.handles(path)) return await this.routes.serve(req, res, path, query)
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) res.setHeader('connection', 'close')
    if (!tokenMatches(bearerToken(req.headers.authorization), this.opts.token)) {
      sendError(res, new VolmirrorError('UNAUTHORIZED', 'missing or wrong peer token (Authorization: Bearer <token>)'), { 'www-authenticate': 'Bearer realm="volmirror"' })
      return
    }
    throw new VolmirrorError('NOT_FOUND', `no route ${path} on a DR (it serves its status page and metrics only; replication routes once promoted)`)
  }
}
