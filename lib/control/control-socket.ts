/**
 * control-socket: how admin commands (`status`, `promote`, ...) talk to the
 * running node. LevelDB is single-process, so the node answers for itself.
 *
 * HTTP/1.1 with JSON bodies over a Unix socket in the state directory
 * (`STATE/control.sock`, mode 0600: only the node's user may use it). When
 * that path is too long for a Unix socket (108 bytes), an abstract socket
 * named after the state directory is used instead; both sides compute the
 * same name.
 */
import { createHash } from 'node:crypto'
import http from 'node:http'
import { chmod, rm } from 'node:fs/promises'
import path from 'node:path'
import { VolmirrorError, type ErrorCode } from '../errors.js'
import type { Logger } from '../log.js'

/**
 * ControlHandler answers one command; `body` is the parsed JSON request.
 * `signal` aborts when the caller goes away before the answer (a command
 * that holds something for as long as its caller runs watches it).
 */
export type ControlHandler = (body: Record<string, unknown>, ctx: { signal: AbortSignal }) => Promise<unknown>

/** controlSocketPath is where the node for `stateDir` listens. */
export function controlSocketPath (stateDir: string): string {
  const p = path.join(path.resolve(stateDir), 'control.sock')
  if (Buffer.byteLength(p) < 100) return p
  return '\0volmirror-' + createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 24)
}

/** ControlServer serves commands on the state directory's socket. */
export class ControlServer {
  private readonly server: http.Server
  private readonly handlers = new Map<string, ControlHandler>()
  readonly socketPath: string

  constructor (stateDir: string, private readonly log: Logger) {
    this.socketPath = controlSocketPath(stateDir)
    this.server = http.createServer((req, res) => { this.serve(req, res) })
  }

  /** handle registers the handler for `POST /<command>`. */
  handle (command: string, fn: ControlHandler): void {
    this.handlers.set(command, fn)
  }

  async listen (): Promise<void> {
    // We hold the state directory's lock, so a socket file here is a leftover.
    if (!this.socketPath.startsWith('\0')) await rm(this.socketPath, { force: true })
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.socketPath, () => { this.server.off('error', reject); resolve() })
    })
    if (!this.socketPath.startsWith('\0')) await chmod(this.socketPath, 0o600)
  }

  async close (): Promise<void> {
    await new Promise<void>(resolve => this.server.close(() => resolve()))
    this.server.closeAllConnections()
    if (!this.socketPath.startsWith('\0')) await rm(this.socketPath, { force: true })
  }

  private serve (req: http.IncomingMessage, res: http.ServerResponse): void {
    const command = (req.url ?? '/').replace(/^\//, '').split('?')[0]!
    const fn = this.handlers.get(command)
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => { size += c.length; if (size <= 1 << 20) chunks.push(c) })
    req.on('end', () => {
      if (!fn) { reply(res, 404, { error: { code: 'USAGE', message: `unknown command ${command}` } }); return }
      let body: Record<string, unknown> = {}
      try {
        if (size > 0) body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
      } catch {
        reply(res, 400, { error: { code: 'BAD_REQUEST', message: 'request body is not JSON' } })
        return
      }
      const ac = new AbortController()
      res.on('close', () => { if (!res.writableFinished) ac.abort() })
      fn(body, { signal: ac.signal }).then(result => reply(res, 200, { result }), (err: unknown) => {
        const e = err instanceof VolmirrorError ? err : new VolmirrorError('IO_ERROR', (err as Error)?.message ?? String(err))
        if (!(err instanceof VolmirrorError)) this.log.error('control.failed', { command, err })
        reply(res, 200, { error: e.toJSON() })
      })
    })
  }
}

function reply (res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  // One request per connection: a client polling over a kept-alive
  // connection (Node's default agent) would otherwise keep it busy, and
  // close() (which waits for busy connections) would not return while it
  // polls, e.g. `promote`/`demote` waiting for the role change that close() is part of.
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' })
  res.end(text)
}

/**
 * callControl sends one command to the node running on `stateDir`. Fails with
 * NODE_NOT_RUNNING when nothing listens there; a node's error comes back
 * with its own code.
 */
export async function callControl<T = unknown> (stateDir: string, command: string, body: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
  const socketPath = controlSocketPath(stateDir)
  const text = JSON.stringify(body)
  const payload = await new Promise<string>((resolve, reject) => {
    const req = http.request({
      socketPath, path: '/' + command, method: 'POST', timeout: timeoutMs,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new VolmirrorError('TIMEOUT', `the node on ${stateDir} did not answer ${command} within ${timeoutMs / 1000} s`)))
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof VolmirrorError) { reject(err); return }
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new VolmirrorError('NODE_NOT_RUNNING', `no volmirror node is running on state directory ${path.resolve(stateDir)}`))
      } else {
        reject(new VolmirrorError('IO_ERROR', `cannot reach the node on ${stateDir}: ${err.message}`, { cause: err }))
      }
    })
    req.end(text)
  })
  let parsed: { result?: T, error?: { code: ErrorCode, message: string, details?: Record<string, unknown> } }
  try {
    parsed = JSON.parse(payload) as typeof parsed
  } catch {
    throw new VolmirrorError('PEER_PROTOCOL', `the node on ${stateDir} sent a reply that is not JSON`)
  }
  if (parsed.error) throw new VolmirrorError(parsed.error.code, parsed.error.message, parsed.error.details ? { details: parsed.error.details } : {})
  return parsed.result as T
}
