/**
 * hydrate-race: a write the DR applies to a hole region while hydration is
 * deciding that region's batch must survive hydration.
 *
 * Hydration asks the primary about a batch of regions (their realization,
 * as of some seq A), then settles them one by one, pacing its copies. A
 * region the primary reported as a hole is settled by zeroing it on the
 * DR. If a write to that region (seq > A) reached the DR after the answer
 * but before the region was settled, zeroing it destroyed the write and
 * the region was then marked present: the DR said "consistent" while it
 * held zeros where the primary has data (first seen in `volmirror demo`:
 * `verify` reported one 64 KiB block of data.raw as zeros on the DR).
 *
 * Here: a 64 MiB volume with data in its first 4 regions and holes after,
 * hydrated at 1 MiB/s, so hydration waits between its copies of regions
 * 0..3 with the answer for regions 0..63 in hand; meanwhile a 1 MiB write
 * lands in region 40 (a hole in that answer). Once consistent, the DR's
 * copy must hold it.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { open, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { startPair } from '../helpers/pair.js'
import { runOk } from '../helpers/proc.js'
import { waitFor } from '../helpers/wait.js'

const MiB = 1024 * 1024

describe('hydration and a write to a hole region of the batch being decided (e2e)', function () {
  this.timeout(90_000)
  this.slow(15_000)

  it('the write is on the DR once it says consistent', async () => {
    const head = randomBytes(4 * MiB)
    const block = randomBytes(MiB)
    const pair = await startPair({
      hydrateRate: '1M',
      prepare: async (d) => {
        const fh = await open(path.join(d.images, 'vol.raw'), 'w')
        try {
          await fh.truncate(64 * MiB)
          await fh.write(head, 0, head.length, 0)
        } finally { await fh.close() }
        await writeFile(path.join(d.root, 'block.bin'), block)
      },
    })
    // Hydration has begun (a region copied) but is still pacing its copies of the first regions.
    await waitFor('hydration to begin', async () => {
      const s = await pair.drStatus()
      return s.volumes.length === 1 && s.volumes[0]!.regions.present >= 1 && s.volumes[0]!.regions.present < 4
    }, 20_000, 10)
    await runOk('dd', [`if=${path.join(pair.dirs.root, 'block.bin')}`, `of=${path.join(pair.dirs.mnt, 'vol.raw')}`, 'bs=1M', 'seek=40', 'count=1', 'conv=notrunc,fsync', 'status=none'])
    const s = await pair.consistent(60_000)
    assert.equal(s.volumes[0]!.state, 'consistent')
    const dr = await readFile(path.join(pair.dirs.drImages, 'vol.raw'))
    assert.equal(dr.length, 64 * MiB)
    assert.ok(dr.subarray(0, 4 * MiB).equals(head), 'the first regions differ on the DR')
    const got = dr.subarray(40 * MiB, 41 * MiB)
    assert.ok(got.equals(block), `region 40 on the DR is not the write (${got.every(b => b === 0) ? 'all zeros' : 'other bytes'})`)
  })
})
