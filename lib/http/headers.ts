/**
 * headers: reading reply headers (and trailers) a primary sent, strictly:
 * a number is decimal digits, nothing else, or the reply is PEER_PROTOCOL.
 */
import { VolmirrorError } from '../errors.js'

type Value = string | string[] | undefined

/** one is a header's value (the first, if repeated). */
export function one (v: Value): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

/** num reads a header that must be there, a non-negative integer. */
export function num (v: Value, name: string): number {
  const s = one(v)
  if (s === undefined || !/^\d{1,16}$/.test(s)) throw new VolmirrorError('PEER_PROTOCOL', `reply header ${name} is missing or not a number`)
  return Number(s)
}

/** optionalInt reads a header that may be absent, or an integer (negative allowed). */
export function optionalInt (v: Value, name: string): number | undefined {
  const s = one(v)
  if (s === undefined) return undefined
  if (!/^-?\d{1,16}$/.test(s)) throw new VolmirrorError('PEER_PROTOCOL', `reply header ${name} is not a number`)
  return Number(s)
}
