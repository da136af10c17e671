/**
 * A DR following an in-process primary (no HTTP): copy-on-read, journal
 * shipping, hydration. The HTTP path is covered by the end-to-end tests.
 */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { DrStatus } from '../../lib/node/dr-node.js'
import { startDr } from '../helpers/dr.js'
import { fsop, fsops } from '../helpers/fsop.js'
import { pattern } from '../helpers/pattern.js'
import { startPrimary } from '../helpers/primary.js'
import { waitFor } from '../helpers/wait.js'

describe('DR node (in-process primary)', function () {
  this.timeout(60_000)

  it('serves absent regions by copy-on-read and follows new writes', async () => {
    const p = await startPrimary()
    const data = pattern(1, 8 << 20)
    await writeFile(path.join(p.images, 'vm.raw'), data)
    const dr = await startDr(p)
    await waitFor('DR to register', async () => (await dr.node.status()).volumes.length === 1)
    const part = await fsop({ op: 'read', path: path.join(dr.mnt, 'vm.raw'), offset: 3_000_000, length: 100_000 })
    assert.deepEqual(Buffer.from(part.data, 'base64'), data.subarray(3_000_000, 3_100_000))
    const s1 = await dr.node.status()
    assert.ok(s1.fetched.onDemandBytes > 0, 'fetched on demand')
    assert.ok(s1.volumes[0]!.regions.absent > 0, 'hydration is off: most regions still absent')
    assert.equal(s1.volumes[0]!.state, 'inconsistent')

    // A write on the primary reaches the DR.
    await fsops([{ op: 'write', path: path.join(p.mnt, 'vm.raw'), offset: 3_050_000, seed: 7, length: 4096 }])
    const last = p.node.journal.lastSeq
    await waitFor('DR to apply', async () => (await dr.node.status()).seq.applied >= last)
    const again = await fsop({ op: 'read', path: path.join(dr.mnt, 'vm.raw'), offset: 3_050_000, length: 4096 })
    assert.deepEqual(Buffer.from(again.data, 'base64'), pattern(7, 4096))
  })

  it('hydrates everything and becomes consistent, with equal bytes', async () => {
    const p = await startPrimary()
    await writeFile(path.join(p.images, 'a.raw'), pattern(2, 5 << 20))
    await writeFile(path.join(p.images, 'b.raw'), Buffer.alloc(3 << 20))
    const dr = await startDr(p, { hydrateRate: Infinity })
    await fsops([{ op: 'write', path: path.join(p.mnt, 'a.raw'), offset: 100, seed: 8, length: 70_000 }])
    const last = p.node.journal.lastSeq
    const s = await waitFor<DrStatus | undefined>('DR consistent', async () => {
      const st = await dr.node.status()
      return st.consistent && st.volumes.length === 2 && st.seq.applied >= last ? st : undefined
    }, 30_000)
    assert.ok(s.hydration.released + s.hydration.kept >= 3, 'b.raw is zeros: nothing copied for it')
    const [ha, hb] = await fsops([{ op: 'hash', path: path.join(dr.mnt, 'a.raw') }, { op: 'hash', path: path.join(dr.mnt, 'b.raw') }])
    const [pa, pb] = await fsops([{ op: 'hash', path: path.join(p.images, 'a.raw') }, { op: 'hash', path: path.join(p.images, 'b.raw') }])
    assert.equal(ha!.sha256, pa!.sha256)
    assert.equal(hb!.sha256, pb!.sha256)
    const drImage = await readFile(path.join(dr.images, 'a.raw'))
    assert.equal(drImage.length, 5 << 20)
  })

  it('never serves another volume\'s bytes when a name was renamed away and created again', async () => {
    const p = await startPrimary()
    await writeFile(path.join(p.images, 'a.raw'), pattern(10, 1 << 20))
    const dr = await startDr(p, { fetchTimeoutMs: 1500 })
    await waitFor('DR to register', async () => (await dr.node.status()).volumes.length === 1)
    // Freeze the DR where it is, then on the primary: a.raw -> b.raw, new a.raw.
    await dr.node.follower.stop()
    const res = await fsops([
      { op: 'rename', from: path.join(p.mnt, 'a.raw'), to: path.join(p.mnt, 'b.raw') },
      { op: 'write', path: path.join(p.mnt, 'a.raw'), offset: 0, seed: 11, length: 1 << 20, create: true },
    ])
    for (const r of res) assert.ok(r.ok, JSON.stringify(r))
    // The DR's a.raw is the old volume; the primary's a.raw is another one now.
    const [stale] = await fsops([{ op: 'read', path: path.join(dr.mnt, 'a.raw'), offset: 0, length: 4096 }])
    assert.equal(stale!.ok, false, 'the read must fail rather than return the new a.raw')
    assert.equal(stale!.code, 'EIO')
    // Once the DR has applied the rename and the create, both names are right.
    dr.node.follower.start()
    const last = p.node.journal.lastSeq
    await waitFor('DR to catch up', async () => (await dr.node.status()).seq.applied >= last)
    const [a, b] = await fsops([
      { op: 'read', path: path.join(dr.mnt, 'a.raw'), offset: 0, length: 4096 },
      { op: 'read', path: path.join(dr.mnt, 'b.raw'), offset: 0, length: 4096 },
    ])
    assert.ok(a!.ok && b!.ok, JSON.stringify([a, b]))
    assert.deepEqual(Buffer.from(a!.data, 'base64'), pattern(11, 1 << 20).subarray(0, 4096))
    assert.deepEqual(Buffer.from(b!.data, 'base64'), pattern(10, 1 << 20).subarray(0, 4096))
  })

  it('a read waits for a hydration comparison of the same region instead of failing', async () => {
    const p = await startPrimary()
    await writeFile(path.join(p.images, 'c.raw'), pattern(20, 2 << 20))
    const dr = await startDr(p)
    await waitFor('DR to register', async () => (await dr.node.status()).volumes.length === 1)
    const v = dr.node.volumes.get('c.raw')!
    // What the hydrator does while comparing region 1: a flight of its own.
    const t = dr.node.replica.beginFetch(v.id, 1)
    const read = fsops([{ op: 'read', path: path.join(dr.mnt, 'c.raw'), offset: (1 << 20) + 5, length: 4096 }])
    await waitFor('the read to wait on the region', () => dr.node.fetcher.inFlight('read') > 0)
    dr.node.replica.fetchEnd(t, false) // the comparison gave up: the read's own fetch goes ahead
    const [r] = await read
    assert.ok(r!.ok, JSON.stringify(r))
    assert.deepEqual(Buffer.from(r!.data, 'base64'), pattern(20, 2 << 20).subarray((1 << 20) + 5, (1 << 20) + 5 + 4096))
  })
})
