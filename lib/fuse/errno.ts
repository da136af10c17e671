/**
 * errno: VolmirrorError codes as FUSE errnos (negative numbers), the only
 * place this translation happens.
 */
import { constants } from 'node:os'
import { isVolmirrorError, systemErrno, type ErrorCode } from '../errors.js'

const E = constants.errno

const BY_CODE: Partial<Record<ErrorCode, number>> = {
  NOT_FOUND: E.ENOENT,
  INVALID_VOLUME_NAME: E.ENOENT,
  EXISTS: E.EEXIST,
  NOT_EMPTY: E.ENOTEMPTY,
  IS_DIRECTORY: E.EISDIR,
  NOT_DIRECTORY: E.ENOTDIR,
  NAME_TOO_LONG: E.ENAMETOOLONG,
  NO_SPACE: E.ENOSPC,
  PERMISSION_DENIED: E.EACCES,
  READ_ONLY: E.EROFS,
  CROSS_DEVICE: E.EXDEV,
  BAD_HANDLE: E.EBADF,
  INVALID_ARGUMENT: E.EINVAL,
  TIMEOUT: E.ETIMEDOUT,
  CLOSED: E.ENOTCONN,
  USAGE: E.EINVAL,
  // A region the DR cannot fetch: EIO, not the errno of the failed
  // connection in its cause (ECONNREFUSED means nothing to a reader).
  PEER_UNREACHABLE: E.EIO,
}

/** toErrno maps any error to a negative errno for fuse-native; unknown errors are EIO. */
export function toErrno (err: unknown): number {
  if (isVolmirrorError(err)) {
    const n = BY_CODE[err.code]
    if (n !== undefined) return -n
    // IO_ERROR and the rest: keep the system's own errno where there is one.
    const sys = systemErrno(err)
    if (sys && sys in E) return -(E as Record<string, number>)[sys]!
    return -E.EIO
  }
  const sys = systemErrno(err)
  if (sys && sys in E) return -(E as Record<string, number>)[sys]!
  return -E.EIO
}
