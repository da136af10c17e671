/**
 * range: the one `Range: bytes=...` header a volume request may carry.
 *
 * Forms (RFC 9110 section 14.1.2): `bytes=a-b`, `bytes=a-` (to the end) and
 * `bytes=-n` (the last n bytes). One range per request: peers never need
 * more, and multipart replies would be one more format to get wrong. A
 * header that does not parse is a 400 (we do not silently ignore it: a DR
 * that asked for a range and got the whole volume would be a bug hidden);
 * a range that starts at or past the end is unsatisfiable (416).
 */
import { VolmirrorError } from '../errors.js'

/** ByteRange is an inclusive byte range within a volume. */
export interface ByteRange { start: number, end: number }

/**
 * parseRange resolves a Range header against a volume of `size` bytes:
 * undefined without a header, 'unsatisfiable' when no byte of it exists,
 * otherwise the range clamped to the volume. Throws BAD_REQUEST when the
 * header is malformed or asks for several ranges.
 */
export function parseRange (header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header)
  if (!m) throw bad(`only "bytes" ranges are supported`)
  const spec = m[1]!.trim()
  if (spec.includes(',')) throw bad('only one range per request is supported')
  const r = /^(\d{0,16})\s*-\s*(\d{0,16})$/.exec(spec)
  if (!r || (r[1] === '' && r[2] === '')) throw bad(`malformed range ${JSON.stringify(header.slice(0, 64))}`)
  if (r[1] === '') {
    const n = Number(r[2])
    if (n === 0 || size === 0) return 'unsatisfiable'
    return { start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(r[1])
  const last = r[2] === '' ? Infinity : Number(r[2])
  if (last < start) throw bad(`range ${start}-${last} ends before it starts`)
  if (start >= size) return 'unsatisfiable'
  return { start, end: Math.min(last, size - 1) }
}

/** rangeHeader is the request header for `length` bytes at `offset` (length >= 1). */
export function rangeHeader (offset: number, length: number): string {
  return `bytes=${offset}-${offset + length - 1}`
}

/** parseContentRange reads `bytes a-b/size` or `bytes *\/size` (undefined if malformed). */
export function parseContentRange (header: string | undefined): { start?: number, end?: number, size: number } | undefined {
  if (!header) return undefined
  const m = /^bytes (?:(\d{1,16})-(\d{1,16})|\*)\/(\d{1,16})$/.exec(header.trim())
  if (!m) return undefined
  return m[1] === undefined ? { size: Number(m[3]) } : { start: Number(m[1]), end: Number(m[2]), size: Number(m[3]) }
}

function bad (msg: string): VolmirrorError {
  return new VolmirrorError('BAD_REQUEST', `Range: ${msg}`)
}
