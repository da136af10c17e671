/**
 * errors: one error class with a stable machine-readable `code`.
 *
 * Modules throw `VolmirrorError`s; the edges translate the code and only the
 * code: FUSE to an errno (lib/fuse/errno.ts), HTTP to a status
 * (lib/http/status.ts), the CLI to a message and an exit status. Tests assert
 * codes, never messages.
 */

/** ErrorCode lists every code volmirror raises. Never rename one: scripts match on them. */
export const ErrorCodes = [
  // file system semantics (mostly from the backing directory)
  'NOT_FOUND',
  'EXISTS',
  'NOT_EMPTY',
  'IS_DIRECTORY',
  'NOT_DIRECTORY',
  'NAME_TOO_LONG',
  'NO_SPACE',
  'PERMISSION_DENIED',
  'READ_ONLY',
  'CROSS_DEVICE',
  'BAD_HANDLE',
  'INVALID_ARGUMENT',
  'IO_ERROR',
  // volumes and records
  'INVALID_VOLUME_NAME',
  'RECORD_CORRUPT',
  'RECORD_VERSION',
  // state directory and node lifecycle
  'STATE_LOCKED',
  'STATE_ROLE_MISMATCH',
  'STATE_REGION_SIZE_MISMATCH',
  'STATE_INVALID',
  'IMAGES_MISSING',
  'NODE_NOT_RUNNING',
  'CLOSED',
  'TIMEOUT',
  // mounting
  'MOUNTPOINT_MISSING',
  'MOUNTPOINT_NOT_DIRECTORY',
  'MOUNTPOINT_NOT_EMPTY',
  'MOUNTPOINT_IN_USE',
  'MOUNTPOINT_STALE',
  'LIBFUSE_MISSING',
  'FUSERMOUNT_MISSING',
  'FUSE_UNAVAILABLE',
  'MOUNT_FAILED',
  // the native data path (native/)
  'NATIVE_UNAVAILABLE',
  'NEED_SPARE',
  // peers
  'UNAUTHORIZED',
  'NOT_REGISTERED',
  'PEER_UNREACHABLE',
  'PEER_PROTOCOL',
  'BAD_REQUEST',
  'RANGE_NOT_SATISFIABLE',
  'TOO_LARGE',
  'SPLIT_BRAIN',
  'NOT_CAUGHT_UP',
  'RESYNC_REQUIRED',
  'INCONSISTENT',
  'WRONG_ROLE',
  'REGION_CHANGED',
  // the journal archive (object storage)
  'ARCHIVE_UNREACHABLE',
  'ARCHIVE_CORRUPT',
  'ARCHIVE_NO_POINT',
  // command line
  'USAGE',
] as const

/** ErrorCode is one of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[number]

/** VolmirrorError is the one error type of volmirror: a stable `code`, a message for people, an optional cause. */
export class VolmirrorError extends Error {
  readonly code: ErrorCode
  /** Details for machines (JSON-safe): which volume, which seq, which command would fix it. */
  readonly details: Record<string, unknown> | undefined

  constructor (code: ErrorCode, message: string, opts: { cause?: unknown, details?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'VolmirrorError'
    this.code = code
    this.details = opts.details
  }

  /** toJSON is the shape errors take on the wire and in `--json` output. */
  toJSON (): { code: ErrorCode, message: string, details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message }
  }
}

/** isVolmirrorError tells whether `err` is a {@link VolmirrorError}, optionally with the given code. */
export function isVolmirrorError (err: unknown, code?: ErrorCode): err is VolmirrorError {
  return err instanceof VolmirrorError && (code === undefined || err.code === code)
}

// errno names from the system, and the code each becomes.
const SYSTEM_CODES: Record<string, ErrorCode> = {
  ENOENT: 'NOT_FOUND',
  EEXIST: 'EXISTS',
  ENOTEMPTY: 'NOT_EMPTY',
  EISDIR: 'IS_DIRECTORY',
  ENOTDIR: 'NOT_DIRECTORY',
  ENAMETOOLONG: 'NAME_TOO_LONG',
  ENOSPC: 'NO_SPACE',
  EDQUOT: 'NO_SPACE',
  EACCES: 'PERMISSION_DENIED',
  EPERM: 'PERMISSION_DENIED',
  EROFS: 'READ_ONLY',
  EXDEV: 'CROSS_DEVICE',
  EBADF: 'BAD_HANDLE',
  EINVAL: 'INVALID_ARGUMENT',
  EFBIG: 'INVALID_ARGUMENT',
}

/**
 * fromSystemError wraps an error thrown by `node:fs` (or anything with an
 * errno `code`) in a VolmirrorError; VolmirrorErrors pass through unchanged.
 */
export function fromSystemError (err: unknown, what: string): VolmirrorError {
  if (err instanceof VolmirrorError) return err
  const sys = (err as NodeJS.ErrnoException | undefined)?.code
  const code = (sys && SYSTEM_CODES[sys]) || 'IO_ERROR'
  // Said in words, once: Node's message repeats the call and the path.
  const reason = (sys && SYSTEM_WORDS[sys]) ?? (err instanceof Error ? err.message : String(err))
  return new VolmirrorError(code, `${what}: ${reason}`, { cause: err })
}

/** SYSTEM_WORDS say the common errno codes in words, for messages. */
const SYSTEM_WORDS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'it already exists',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on the device',
  EROFS: 'the file system is read-only',
  ENOTEMPTY: 'the directory is not empty',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many open files',
  EBUSY: 'it is busy',
  EXDEV: 'it is on another file system',
}

/** systemErrno returns the errno name (`ENOSPC`) behind an error, if there is one. */
export function systemErrno (err: unknown): string | undefined {
  let e: unknown = err
  for (let depth = 0; e && depth < 5; depth++) {
    const code = (e as NodeJS.ErrnoException).code
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code
    e = (e as Error).cause
  }
  return undefined
}
