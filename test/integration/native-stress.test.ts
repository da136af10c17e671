/**
 * The native data path under pressure, end to end in one process: many
 * native writer threads hammer the same few regions of a primary's volumes
 * (through the write hook, as libfuse's workers would) while a DR fetches,
 * hydrates and follows them, and child processes read the DR's mount (its
 * present regions served natively, the rest fetched). The asOf rule must
 * hold throughout: once the writers stop, the DR ends byte-equal.
 */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { startDr } from '../helpers/dr.js'
import { fsops } from '../helpers/fsop.js'
import { pattern } from '../helpers/pattern.js'
import { startPrimary } from '../helpers/primary.js'
import { waitFor } from '../helpers/wait.js'

const MiB = 1024 * 1024

describe('native data path under pressure (in-process primary and DR)', function () {
  this.timeout(180_000)

  it('6 native writers on the same regions while a DR fetches, hydrates and serves them: the DR ends byte-equal', async function () {
    const p = await startPrimary({ dataPath: 'native' })
    const native = p.node.nativeWrites?.native
    if (!native) this.skip()
    const names = ['a.raw', 'b.raw']
    const span = 6 * MiB
    for (const [i, n] of names.entries()) await writeFile(path.join(p.images, n), pattern(40 + i, 8 * MiB))
    // Slow hydration, so that fetches and the writers overlap.
    const dr = await startDr(p, { hydrateRate: 12 * MiB, dataPath: 'native' })
    await waitFor('DR to register', async () => (await dr.node.status()).volumes.length === names.length, 20_000)
    const fhs = names.map(n => native!.bind(p.node.files.get(n).slot))

    let writing = true
    const hammer = native!.testHammer(fhs, { threads: 6, writes: 2500, maxLength: 16384, span, seed: 7 }).finally(() => { writing = false })
    // Meanwhile, readers on the DR mount: any region, present or not.
    let reads = 0
    let failed: unknown
    const reader = (async () => {
      let k = 0
      while (writing) {
        const ops = Array.from({ length: 20 }, () => {
          k++
          const name = names[k % names.length]!
          return { op: 'read', path: path.join(dr.mnt, name), offset: (k * 977 * 4096) % (8 * MiB - 131072), length: 4096 * (1 + k % 32) }
        })
        for (const r of await fsops(ops)) {
          if (!r.ok) failed = `${r.code} ${r.message}`
          reads++
        }
      }
    })()
    assert.equal(await hammer, 0, 'every native write succeeded')
    await reader
    assert.equal(failed, undefined, 'every read of the DR mount succeeded')
    assert.ok(reads > 0)

    const last = p.node.journal.lastSeq
    assert.ok(last >= 6 * 2500, `journaled every write (last seq ${last})`)
    await waitFor('DR consistent and caught up', async () => {
      const s = await dr.node.status()
      return s.consistent && s.hydration.complete && s.seq.applied >= last
    }, 120_000, 100)
    for (const n of names) {
      const [a, b] = [await readFile(path.join(p.images, n)), await readFile(path.join(dr.images, n))]
      assert.equal(b.length, a.length, `${n}: size`)
      assert.ok(a.equals(b), `${n}: DR bytes equal the primary's`)
    }
    const served = (await dr.node.status()).dataPath.native
    assert.ok(served && served.reads > 0, `the DR served reads natively (${JSON.stringify(served)})`)
  })
})
