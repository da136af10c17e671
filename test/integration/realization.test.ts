/**
 * realization: which regions of a sparse file hold data, found by walking
 * its extents (SEEK_DATA/SEEK_HOLE), agrees with asking region by region,
 * on a real file with data at region starts, ends, across boundaries and
 * past the end.
 */
import assert from 'node:assert/strict'
import { open } from 'node:fs/promises'
import path from 'node:path'
import { dataRegions, isHole } from '../../lib/store/realization.js'
import { ImageDir } from '../../lib/store/image-dir.js'
import { tmpDir } from '../helpers/tmp.js'

describe('realization: data regions of a sparse file', () => {
  it('walking extents finds exactly the regions that a per-region SEEK_DATA finds', async () => {
    const dir = await tmpDir('realization')
    const rs = 64 * 1024
    const fh = await open(path.join(dir, 'vm.raw'), 'w')
    try {
      await fh.truncate(200 * rs)
      const bytes = Buffer.alloc(4096, 7)
      for (const off of [0, 5 * rs + rs - 4096, 9 * rs - 2048, 40 * rs + 12_345, 41 * rs, 120 * rs, 199 * rs + rs - 4096]) await fh.write(bytes, 0, bytes.length, off)
      await fh.write(Buffer.alloc(3 * rs, 1), 0, 3 * rs, 60 * rs + 100)
      await fh.sync()
      const images = new ImageDir(dir)
      for (const [from, count] of [[0, 200], [3, 64], [41, 1], [58, 10], [150, 100], [190, 64]] as const) {
        const want = Array.from({ length: count }, (_, i) => !isHole(images, fh.fd, (from + i) * rs, rs))
        assert.deepEqual(dataRegions(images, fh.fd, from, count, rs), want, `regions ${from}..${from + count - 1}`)
      }
      assert.deepEqual(dataRegions(images, fh.fd, 0, 200, rs).flatMap((b, i) => b ? [i] : []), [0, 5, 8, 9, 40, 41, 60, 61, 62, 63, 120, 199])
    } finally {
      await fh.close()
    }
  })
})
