/**
 * A cascade, A -> B -> C (three processes): B is a DR of A that serves
 * downstream DRs on its --listen address; C follows B. C applies the same
 * groups in the same order, its lag is counted against A's seq, all three
 * end byte-equal; when A dies and B is promoted, C goes on following B.
 */
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import type { DrStatus } from '../../lib/node/dr-node.js'
import { fsop } from '../helpers/fsop.js'
import { startLoopWriter } from '../helpers/loop-writer.js'
import { cmpFiles, drOf, freePort, inSync, MiB, primaryOf } from '../helpers/mirror.js'
import { startPair } from '../helpers/pair.js'
import { startProxy } from '../helpers/tcp-proxy.js'
import { pattern } from '../helpers/pattern.js'
import { cli, startNode } from '../helpers/proc.js'
import { waitFor } from '../helpers/wait.js'

describe('cascade: A -> B -> C (processes)', function () {
  this.timeout(5 * 60_000)

  it('C follows B, counts its lag against A, ends equal to A and B; when A dies and B is promoted, C follows B', async () => {
    const [aPort, bPort] = [await freePort(), await freePort()]
    const proxy = await startProxy(`127.0.0.1:${aPort}`) // the link A -> B
    const pair = await startPair({
      images: { 'vm1.raw': pattern(1, 16 * MiB), 'vm2.raw': pattern(2, 4 * MiB) },
      primaryArgs: ['--listen', `127.0.0.1:${aPort}`],
      drArgs: ['--listen', `127.0.0.1:${bPort}`, '--primary', proxy.url],
    })
    const a = pair.dirs
    const c = { state: path.join(a.root, 'c-state'), images: path.join(a.root, 'c-images'), mnt: path.join(a.root, 'c-mnt') }
    await mkdir(c.images, { recursive: true })
    await mkdir(c.mnt, { recursive: true })
    await inSync(a.state, a.drState)
    // C is pointed at B, not at A: it learns its region size from B, registers with B.
    const cNode = await startNode(['dr', '--images', c.images, '--state', c.state, '--mount', c.mnt, '--primary', `http://127.0.0.1:${bPort}`,
      '--token-file', path.join(a.state, 'token'), '--hydrate-rate', 'unlimited'], { state: c.state, mount: c.mnt })
    const caughtUpWithA = async (what: string): Promise<DrStatus> => await waitFor(what, async () => {
      const [p, s] = [await primaryOf(a.state), await drOf(c.state)]
      return s.consistent && s.seq.applied >= p.seq.last && s.volumes.length === p.volumes.length ? s : undefined
    }, 60_000, 100)
    await caughtUpWithA('C to be consistent with A')
    const b0 = await drOf(a.drState)
    const c0 = await drOf(c.state)
    assert.equal(c0.primary.id, b0.nodeId, 'C follows B')
    // Writes on A reach C through B.
    const w = await startLoopWriter(a.root, 'w', { file: path.join(a.mnt, 'vm1.raw'), offset: 0, length: 16 * 1024, slots: 800, seed: 5, group: 3 })
    await w.waitAcks(200, 60_000)
    // C's lag counts against A: when B cannot hear A, C's bound grows too,
    // though C has everything B has.
    proxy.stall()
    const stalledAt = Date.now()
    await w.waitAcks(400, 60_000)
    const cLag = await waitFor('C\'s lag to grow while B cannot hear A', async () => { const s = await drOf(c.state); return (s.lag.seconds ?? 0) > 2 ? s : undefined }, 20_000, 100)
    const bLag = await drOf(a.drState)
    assert.ok(cLag.lag.seconds! * 1000 >= Date.now() - stalledAt - 1500, `C's bound covers B's silence: ${cLag.lag.seconds} s, B's ${bLag.lag.seconds} s`)
    proxy.restore()
    await w.stop()
    await inSync(a.state, a.drState)
    await caughtUpWithA('C to catch up with A after the writes')
    const back = await waitFor('C\'s lag to fall back', async () => { const s = await drOf(c.state); return (s.lag.seconds ?? 9) < 1.5 ? s : undefined }, 20_000, 100)
    console.log(`      B cut off from A: C's lag ${cLag.lag.seconds!.toFixed(1)} s (B's ${bLag.lag.seconds!.toFixed(1)} s); caught up: ${back.lag.seconds!.toFixed(2)} s`)
    for (const v of ['vm1.raw', 'vm2.raw']) {
      await cmpFiles(path.join(a.images, v), path.join(a.drImages, v))
      await cmpFiles(path.join(a.images, v), path.join(c.images, v))
    }
    const bStatus = await drOf(a.drState)
    assert.ok(bStatus.seq.applied > 0)

    // A dies; B is promoted; writes on B reach C, which never changed its --primary.
    await pair.primary.kill9()
    const p = await cli(['promote', '--state', a.drState])
    assert.equal(p.code, 0, p.stderr)
    await waitFor('B to be the primary', async () => (await primaryOf(a.drState).catch(() => undefined))?.role === 'primary', 60_000, 100)
    await fsop({ op: 'write', path: path.join(a.drMnt, 'vm2.raw'), offset: 4096, seed: 77, length: 200_000, fsync: true })
    await fsop({ op: 'write', path: path.join(a.drMnt, 'vm3.raw'), offset: 0, seed: 78, length: 100_000, create: true, fsync: true })
    await waitFor('C to follow B as its primary', async () => {
      const [bp, s] = [await primaryOf(a.drState), await drOf(c.state)]
      return s.consistent && s.seq.applied >= bp.seq.last && s.volumes.length === 3 ? s : undefined
    }, 60_000, 100)
    for (const v of ['vm1.raw', 'vm2.raw', 'vm3.raw']) await cmpFiles(path.join(a.drImages, v), path.join(c.images, v))
    assert.equal(cNode.exit, undefined, 'C kept running all along')
  })
})
