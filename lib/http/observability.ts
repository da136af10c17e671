/**
 * observability: the read-only routes that let an operator see a node,
 * served on the primary's endpoint and on a DR's `--listen` address (both
 * lib/http/server.ts):
 *
 *   GET /                          the status page (lib/http/status-page.ts)
 *   GET /metrics                   Prometheus text format (lib/metrics)
 *   GET /v1/status                 the node's status JSON (as `volmirror status --json`)
 *   GET /v1/regionmap?volume=NAME  a volume's region picture (lib/core/region-picture.ts)
 *
 * All need the peer token as `Authorization: Bearer <token>`, like every
 * /v1 route; the page itself is static and served without one, and takes
 * it as `/?token=TOKEN` once (a browser
 * cannot send a header when opening a URL), and its script then sends it
 * as a header. A request target is never logged with its query.
 */
import type http from 'node:http'
import { checkVolumeName } from '../core/volume-name.js'
import type { RegionPicture } from '../core/region-picture.js'
import { VolmirrorError } from '../errors.js'
import { bearerToken, tokenMatches } from './auth.js'
import { sendError, sendJson, type Query } from './server-io.js'
import { STATUS_PAGE_HEADERS, STATUS_PAGE_HTML, UNAUTHORIZED_PAGE_HTML } from './status-page.js'

/** ObservedNode is what the routes read from a node. */
export interface ObservedNode {
  status (): Promise<unknown>
  /** regionMap pictures a volume (NOT_FOUND for a volume the node does not know). */
  regionMap (volume: string): Promise<RegionPicture>
  /** metrics is one scrape. */
  metrics (): Promise<{ contentType: string, text: string }>
}

const PATHS = new Set(['/', '/metrics', '/v1/status', '/v1/regionmap'])

/** ObservabilityRoutes serves the routes above for one node. */
export class ObservabilityRoutes {
  constructor (private readonly node: ObservedNode, private readonly token: string) {
    if (!token) throw new VolmirrorError('INVALID_ARGUMENT', 'the observability routes need the peer token')
  }

  /** handles tells whether `path` (without its query) is one of these routes. */
  handles (path: string): boolean {
    return PATHS.has(path)
  }

  /**
   * serve answers one request for a path that `handles`; it writes the
   * reply, or throws a VolmirrorError for the caller to answer.
   */
  async serve (req: http.IncomingMessage, res: http.ServerResponse, path: string, query: Query): Promise<void> {
    // None of these routes reads a body: one sent anyway must not hold the connection.
    if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) res.setHeader('connection', 'close')
    const given = bearerToken(req.headers.authorization) ?? (path === '/' ? query.string('token') : undefined)
    // The page itself is static (its data comes by authenticated requests):
    // without a token it is served too, and finds the token kept for the tab.
    if (path === '/' && given === undefined && (req.method === 'GET' || req.method === 'HEAD')) return this.send(req, res, 200, STATUS_PAGE_HEADERS, STATUS_PAGE_HTML)
    if (!tokenMatches(given, this.token)) {
      if (path === '/') {
        res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', 'www-authenticate': 'Bearer realm="volmirror"' })
        res.end(UNAUTHORIZED_PAGE_HTML)
        return
      }
      sendError(res, new VolmirrorError('UNAUTHORIZED', 'missing or wrong peer token (Authorization: Bearer <token>)'), { 'www-authenticate': 'Bearer realm="volmirror"' })
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new VolmirrorError('BAD_REQUEST', 'method not allowed here (allowed: GET, HEAD)'), { allow: 'GET, HEAD' }, 405)
      return
    }
    switch (path) {
      case '/': return this.send(req, res, 200, STATUS_PAGE_HEADERS, STATUS_PAGE_HTML)
      case '/metrics': {
        const m = await this.node.metrics()
        return this.send(req, res, 200, { 'content-type': m.contentType, 'cache-control': 'no-store' }, m.text)
      }
      case '/v1/status': return sendJson(res, 200, await this.node.status())
      case '/v1/regionmap': {
        const volume = query.string('volume')
        if (volume === undefined) throw new VolmirrorError('BAD_REQUEST', 'query parameter "volume" is required')
        checkVolumeName(volume)
        return sendJson(res, 200, await this.node.regionMap(volume))
      }
    }
    throw new VolmirrorError('NOT_FOUND', `no route ${path}`)
  }

  private send (req: http.IncomingMessage, res: http.ServerResponse, status: number, headers: http.OutgoingHttpHeaders, body: string): void {
    res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) })
    res.end(req.method === 'HEAD' ? undefined : body)
  }
}
