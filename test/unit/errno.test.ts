/**
 * errno: what a FUSE caller sees for our errors.
 */
import assert from 'node:assert/strict'
import { constants } from 'node:os'
import { VolmirrorError } from '../../lib/errors.js'
import { toErrno } from '../../lib/fuse/errno.js'

const E = constants.errno

function sysError (code: string): Error {
  return Object.assign(new Error(`connect ${code}`), { code })
}

describe('FUSE errnos', () => {
  it('answers EIO for a region the DR cannot fetch, whatever the connection error behind it', () => {
    for (const cause of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH']) {
      const err = new VolmirrorError('PEER_UNREACHABLE', 'cannot fetch region 9 of vm.raw', { cause: sysError(cause) })
      assert.equal(toErrno(err), -E.EIO, cause)
    }
  })

  it('keeps the system errno behind an I/O error, and maps codes', () => {
    assert.equal(toErrno(new VolmirrorError('IO_ERROR', 'pwrite', { cause: sysError('ENOSPC') })), -E.ENOSPC)
    assert.equal(toErrno(new VolmirrorError('READ_ONLY', 'a DR mount')), -E.EROFS)
    assert.equal(toErrno(new Error('anything else')), -E.EIO)
  })
})
