/**
 * volume-name: what a volume may be called, checked wherever a name enters.
 *
 * A volume is named by its path relative to the image directory, with `/`
 * between segments (`vm1.raw`, `pool/db.qcow2`). Names come from FUSE paths,
 * from journal records and from the network; all of them pass through
 * {@link checkVolumeName} before they reach a file system call, so nothing can
 * name a file outside the image directory.
 */
import { VolmirrorError } from '../errors.js'

/** RESERVED_PREFIX names volmirror's own entries at the top of an image directory (kept-aside volumes). */
export const RESERVED_PREFIX = '.volmirror'
/** MAX_NAME_BYTES bounds a whole name (Linux PATH_MAX). */
export const MAX_NAME_BYTES = 4095
/** MAX_SEGMENT_BYTES bounds one segment (Linux NAME_MAX). */
export const MAX_SEGMENT_BYTES = 255

/**
 * checkVolumeName returns `name` if it is a valid relative volume path, and
 * throws INVALID_VOLUME_NAME (or NAME_TOO_LONG) otherwise: no absolute paths,
 * no `.` or `..` segments, no empty segments, no NUL or backslash, nothing under
 * the reserved `.volmirror` entry.
 */
export function checkVolumeName (name: string): string {
  const why = volumeNameProblem(name)
  if (why === 'too long') throw new VolmirrorError('NAME_TOO_LONG', `volume name is too long: ${JSON.stringify(name.slice(0, 64))}...`)
  if (why) throw new VolmirrorError('INVALID_VOLUME_NAME', `invalid volume name ${JSON.stringify(name)}: ${why}`, { details: { name } })
  return name
}

/** isValidVolumeName is {@link checkVolumeName} as a predicate. */
export function isValidVolumeName (name: string): boolean {
  return volumeNameProblem(name) === undefined
}

function volumeNameProblem (name: string): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'empty'
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return 'too long'
  if (name.startsWith('/')) return 'absolute path'
  if (name.includes('\0')) return 'contains NUL'
  if (name.includes('\\')) return 'contains a backslash'
  const segments = name.split('/')
  for (const s of segments) {
    if (s === '') return 'empty path segment'
    if (s === '.' || s === '..') return `"${s}" segment`
    if (Buffer.byteLength(s) > MAX_SEGMENT_BYTES) return 'too long'
  }
  if (segments[0] === RESERVED_PREFIX || segments[0]!.startsWith(RESERVED_PREFIX + '-')) return `reserved for volmirror (${RESERVED_PREFIX})`
  return undefined
}

/**
 * fusePathToName turns a FUSE path (`/pool/vm1.raw`) into a volume name
 * (`pool/vm1.raw`); the root `/` becomes the empty string, which callers
 * treat as the image directory itself.
 */
export function fusePathToName (path: string): string {
  if (path === '/' || path === '') return ''
  return checkVolumeName(path.startsWith('/') ? path.slice(1) : path)
}

/** isUnder tells whether `name` is `dir` or inside it. */
export function isUnder (name: string, dir: string): boolean {
  return name === dir || name.startsWith(dir + '/')
}

/** renamePrefix maps a name under `from` to the same place under `to` (for directory renames). */
export function renamePrefix (name: string, from: string, to: string): string {
  return name === from ? to : to + name.slice(from.length)
}

/** parentName is the directory part of a name ('' for the top level). */
export function parentName (name: string): string {
  const i = name.lastIndexOf('/')
  return i < 0 ? '' : name.slice(0, i)
}
