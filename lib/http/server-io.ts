/**
 * server-io: the small, strict pieces of reading a request and writing a
 * reply, shared by the routes of lib/http/server.ts.
 *
 * Everything a peer sends is bounded and checked here before a handler
 * sees it: bodies by size (LIMITS.maxBodyBytes), JSON by shape, query
 * parameters by syntax (decimal digits only, one occurrence each). A bad
 * input becomes a VolmirrorError (BAD_REQUEST, TOO_LARGE), which the server
 * turns into a JSON error reply; nothing here can throw anything else.
 */
import type http from 'node:http'
import { VolmirrorError } from '../errors.js'
import { errorBody, httpStatus } from './status.js'

/** JSON_TYPE is the content type of JSON replies and bodies. */
export const JSON_TYPE = 'application/json; charset=utf-8'

/** readBody reads a request body of at most `limit` bytes (TOO_LARGE past it, without reading the rest). */
export async function readBody (req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length']
  if (declared !== undefined && !(Number(declared) <= limit)) {
    throw new VolmirrorError('TOO_LARGE', `request body of ${declared} bytes; at most ${limit} are accepted`)
  }
  // Events rather than `for await`: leaving an async iterator destroys the
  // request, and with it the socket the 413 reply has to go out on.
  return await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (c: Buffer): void => {
      size += c.length
      if (size <= limit) { chunks.push(c); return }
      req.pause()
      req.off('data', onData)
      reject(new VolmirrorError('TOO_LARGE', `request body over ${limit} bytes`))
    }
    req.on('data', onData)
    req.once('end', () => resolve(Buffer.concat(chunks, Math.min(size, limit))))
    req.once('error', reject)
    req.once('close', () => reject(new VolmirrorError('CLOSED', 'the client went away while sending its request')))
  })
}

/** readJsonObject reads a body that must be one JSON object. */
export async function readJsonObject (req: http.IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const body = await readBody(req, limit)
  let v: unknown
  try {
    v = JSON.parse(body.toString('utf8'))
  } catch {
    throw new VolmirrorError('BAD_REQUEST', 'request body is not valid JSON')
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new VolmirrorError('BAD_REQUEST', 'request body must be a JSON object')
  return v as Record<string, unknown>
}

/** Query is the parsed query string of a request. */
export class Query {
  private readonly params: URLSearchParams

  constructor (search: string) {
    this.params = new URLSearchParams(search)
  }

  /** string returns a parameter given at most once (BAD_REQUEST if repeated). */
  string (name: string): string | undefined {
    const all = this.params.getAll(name)
    if (all.length > 1) throw new VolmirrorError('BAD_REQUEST', `query parameter "${name}" given ${all.length} times`)
    return all[0]
  }

  /** int returns a non-negative decimal integer parameter (undefined if absent and not required). */
  int (name: string, opts: { required?: boolean, min?: number } = {}): number | undefined {
    const s = this.string(name)
    if (s === undefined) {
      if (opts.required) throw new VolmirrorError('BAD_REQUEST', `query parameter "${name}" is required`)
      return undefined
    }
    return intValue(name, s, opts.min ?? 0)
  }

  /** flag reads `0`/`1` (false when absent). */
  flag (name: string): boolean {
    const s = this.string(name)
    if (s === undefined || s === '0' || s === 'false') return false
    if (s === '1' || s === 'true') return true
    throw new VolmirrorError('BAD_REQUEST', `query parameter "${name}" must be 0 or 1`)
  }
}

/** intValue parses a decimal integer that must be safe and at least `min`. */
export function intValue (what: string, s: string, min = 0): number {
  if (!/^\d{1,16}$/.test(s)) throw new VolmirrorError('BAD_REQUEST', `"${what}" must be a non-negative decimal integer`)
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < min) throw new VolmirrorError('BAD_REQUEST', `"${what}" must be an integer >= ${min}`)
  return n
}

/** field reads a JSON field that must be a safe integer >= min (or absent/null when optional). */
export function intField (o: Record<string, unknown>, name: string, opts: { optional?: boolean, min?: number } = {}): number | undefined {
  const v = o[name]
  if ((v === undefined || v === null) && opts.optional) return undefined
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < (opts.min ?? 0)) {
    throw new VolmirrorError('BAD_REQUEST', `"${name}" must be an integer >= ${opts.min ?? 0}`)
  }
  return v
}

/** stringField reads a JSON field that must be a non-empty string. */
export function stringField (o: Record<string, unknown>, name: string): string {
  const v = o[name]
  if (typeof v !== 'string' || v.length === 0) throw new VolmirrorError('BAD_REQUEST', `"${name}" must be a non-empty string`)
  return v
}

/** sendJson writes a whole JSON reply. */
export function sendJson (res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', ...headers })
  res.end(text)
}

/** sendError writes the JSON error reply for `err` (status from its code unless given). */
export function sendError (res: http.ServerResponse, err: VolmirrorError, headers: http.OutgoingHttpHeaders = {}, status = httpStatus(err.code)): void {
  sendJson(res, status, errorBody(err), headers)
}
