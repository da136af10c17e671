import assert from 'node:assert/strict'
import { checkVolumeName, fusePathToName, isUnder, isValidVolumeName, renamePrefix } from '../../lib/core/volume-name.js'
import { isVolmirrorError } from '../../lib/errors.js'

describe('volume names', () => {
  it('accepts relative paths', () => {
    for (const n of ['vm1.raw', 'pool/db.qcow2', 'a/b/c/d', 'with space.img', 'ünïcode.raw', '..hidden', 'x..y']) {
      assert.equal(checkVolumeName(n), n)
    }
  })

  it('rejects anything that could escape the image directory', () => {
    const bad = ['', '/etc/passwd', '../x', 'a/../../x', 'a/./b', '.', '..', 'a//b', 'a/', 'a\\..\\b', 'a\0b', '.volmirror', '.volmirror/deleted/x', 'x'.repeat(256)]
    for (const n of bad) {
      assert.throws(() => checkVolumeName(n), (e: unknown) => isVolmirrorError(e, 'INVALID_VOLUME_NAME') || isVolmirrorError(e, 'NAME_TOO_LONG'), JSON.stringify(n))
      assert.equal(isValidVolumeName(n), false)
    }
  })

  it('maps FUSE paths', () => {
    assert.equal(fusePathToName('/'), '')
    assert.equal(fusePathToName('/pool/vm.raw'), 'pool/vm.raw')
    assert.throws(() => fusePathToName('/.volmirror'), (e: unknown) => isVolmirrorError(e, 'INVALID_VOLUME_NAME'))
  })

  it('renames prefixes of directories only at segment boundaries', () => {
    assert.equal(isUnder('a/b', 'a'), true)
    assert.equal(isUnder('ab/c', 'a'), false)
    assert.equal(renamePrefix('a/b/c', 'a/b', 'x'), 'x/c')
    assert.equal(renamePrefix('a/b', 'a/b', 'x'), 'x')
  })
})
