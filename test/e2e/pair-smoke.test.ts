/**
 * Smoke test of the pair helper: a primary and a DR as processes, a write
 * on one seen on the other.
 */
import assert from 'node:assert/strict'
import path from 'node:path'
import { fsops } from '../helpers/fsop.js'
import { startPair } from '../helpers/pair.js'
import { pattern } from '../helpers/pattern.js'

describe('primary + DR processes', function () {
  this.timeout(60_000)
  it('replicates a write and reads it from the DR mount', async () => {
    const pair = await startPair({ images: { 'vm1.raw': pattern(1, 8 << 20) } })
    await fsops([{ op: 'write', path: path.join(pair.dirs.mnt, 'vm1.raw'), offset: 12345, seed: 2, length: 70_000, fsync: true }])
    await pair.consistent()
    const [a, b] = await fsops([{ op: 'hash', path: path.join(pair.dirs.mnt, 'vm1.raw') }, { op: 'hash', path: path.join(pair.dirs.drMnt, 'vm1.raw') }])
    assert.equal(a!.sha256, b!.sha256)
  })
})
