/**
 * parse: option values as people type them (`1M`, `64KiB`, `2s`).
 */
import { VolmirrorError } from '../errors.js'

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
}

/** parseSize reads a byte count with an optional binary unit (`1M` = 1 MiB). */
export function parseSize (text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(String(text))
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) throw new VolmirrorError('USAGE', `${what}: cannot read "${text}" as a size (examples: 1048576, 1M, 64KiB)`)
  const n = Number(m[1]) * unit
  if (!Number.isSafeInteger(Math.round(n))) throw new VolmirrorError('USAGE', `${what}: ${text} is too large`)
  return Math.round(n)
}

const TIME_UNITS: Record<string, number> = { ms: 1, '': 1000, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** parseDuration reads milliseconds from `250ms`, `2s`, `5m`, `24h`, `30d` (a bare number is seconds). */
export function parseDuration (text: string, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|)\s*$/.exec(String(text))
  if (!m) throw new VolmirrorError('USAGE', `${what}: cannot read "${text}" as a duration (examples: 100ms, 2s, 5m, 24h, 30d)`)
  return Math.round(Number(m[1]) * TIME_UNITS[m[2]!]!)
}

/** formatBytes shows a byte count for people (`1.5 GiB`). */
export function formatBytes (n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = n
  let i = -1
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`
}

/**
 * parseListen reads `HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT`. Without a
 * host it listens on 127.0.0.1 only: exposing a node to the network is a
 * choice to spell out (`0.0.0.0:7070`).
 */
export function parseListen (text: string): { host: string, port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*))?:?(\d{1,5})$/.exec(String(text).trim())
  const port = m ? Number(m[3]) : NaN
  if (!m || !(port >= 0 && port <= 65535)) throw new VolmirrorError('USAGE', `--listen: cannot read "${text}" as HOST:PORT (examples: 0.0.0.0:7070, 127.0.0.1:7070, 7070)`)
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port }
}

/** parseRate reads a byte rate (`100M` per second); `0` means off, `unlimited` no limit. */
export function parseRate (text: string, what: string): number {
  if (/^(unlimited|max|inf)$/i.test(String(text).trim())) return Infinity
  return parseSize(String(text).replace(/\/s$/i, ''), what)
}
