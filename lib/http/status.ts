/**
 * status: the one place where error codes become HTTP statuses and back.
 *
 * The server answers every failure with a status from {@link httpStatus}
 * and the body `{"error":{"code","message","details?"}}`; the client turns
 * that body back into a VolmirrorError with the same code
 * ({@link errorFromResponse}), so a DR sees the primary's error exactly as
 * if it had called the in-process service. Statuses exist for HTTP tools
 * (curl, proxies, logs); volmirror itself decides by code only.
 *
 * RESYNC_REQUIRED is 410 Gone: the records the DR asked for existed once
 * and are gone for good, which is a different situation from a protocol
 * disagreement (PEER_PROTOCOL, 409). A reply without a usable body (a HEAD,
 * a proxy's error page) falls back to the code of its status.
 */
import { ErrorCodes, VolmirrorError, type ErrorCode } from '../errors.js'

const STATUS: Partial<Record<ErrorCode, number>> = {
  BAD_REQUEST: 400,
  INVALID_VOLUME_NAME: 400,
  INVALID_ARGUMENT: 400,
  NAME_TOO_LONG: 400,
  USAGE: 400,
  UNAUTHORIZED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  IS_DIRECTORY: 404,
  NOT_DIRECTORY: 404,
  PEER_PROTOCOL: 409,
  NOT_REGISTERED: 409,
  SPLIT_BRAIN: 409,
  WRONG_ROLE: 409,
  REGION_CHANGED: 409,
  RESYNC_REQUIRED: 410,
  TOO_LARGE: 413,
  RANGE_NOT_SATISFIABLE: 416,
  CLOSED: 503,
  TIMEOUT: 504,
}

// What a status means when the body does not say (HEAD replies, proxies).
const CODE: Record<number, ErrorCode> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'BAD_REQUEST',
  409: 'PEER_PROTOCOL',
  410: 'RESYNC_REQUIRED',
  413: 'TOO_LARGE',
  416: 'RANGE_NOT_SATISFIABLE',
  502: 'PEER_UNREACHABLE',
  503: 'PEER_UNREACHABLE',
  504: 'PEER_UNREACHABLE',
}

const KNOWN = new Set<string>(ErrorCodes)

/** httpStatus is the status a reply carrying `code` gets (500 for anything not listed). */
export function httpStatus (code: ErrorCode): number {
  return STATUS[code] ?? 500
}

/** codeForStatus is the code a status stands for when a reply has no error body. */
export function codeForStatus (status: number): ErrorCode {
  return CODE[status] ?? 'PEER_PROTOCOL'
}

/** ErrorBody is the JSON body of every error reply. */
export interface ErrorBody {
  error: { code: ErrorCode, message: string, details?: Record<string, unknown> }
}

/**
 * toWireError turns anything thrown by a handler into what may be sent:
 * VolmirrorErrors as they are, anything else as a bare IO_ERROR (its
 * message and stack stay in the server's log, never in the reply).
 */
export function toWireError (err: unknown): VolmirrorError {
  if (err instanceof VolmirrorError) return err
  return new VolmirrorError('IO_ERROR', 'internal error (see the primary\'s log)')
}

/** errorBody is the JSON body for `err`. */
export function errorBody (err: VolmirrorError): ErrorBody {
  return { error: err.toJSON() }
}

/**
 * errorFromResponse rebuilds the error a server sent: the body's code and
 * message when the body is a well-formed error, the status's code otherwise.
 * `what` names the request for the message (`GET /v1/info`).
 */
export function errorFromResponse (status: number, body: Buffer | string | undefined, what: string): VolmirrorError {
  const text = body === undefined ? '' : body.toString()
  let parsed: unknown
  try { parsed = text ? JSON.parse(text) : undefined } catch { parsed = undefined }
  const e = (parsed as Partial<ErrorBody> | undefined)?.error
  if (e && typeof e === 'object' && typeof e.code === 'string' && KNOWN.has(e.code) && typeof e.message === 'string') {
    const details = e.details && typeof e.details === 'object' ? { ...e.details, status } : { status }
    return new VolmirrorError(e.code, e.message, { details })
  }
  const snippet = text.replace(/\s+/g, ' ').slice(0, 120)
  return new VolmirrorError(codeForStatus(status), `${what}: HTTP ${status}${snippet ? ` (${snippet})` : ''}`, { details: { status } })
}
