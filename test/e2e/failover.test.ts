/**
 * Failover, failback, split brain, verify and a full DR disk (issue 4):
 * primary and DR as separate processes with real mounts, the CLI's
 * `promote`, `demote`, `verify` and `status --json`.
 *
 *  1. Failover and failback: the primary takes a few writes the DR never
 *     gets (the link is cut), then crashes (kill -9). The DR is promoted
 *     and written on; the old primary comes back as its DR and copies only
 *     what differs (the new primary's writes, and the regions of its own
 *     last writes, which it reports as discarded and keeps in
 *     --keep-discarded). Then a planned switch back (`demote` + `promote`)
 *     that loses nothing; both sides equal at the end.
 *  2. `promote` refuses a DR whose volumes are not consistent (naming them,
 *     exit 1) and accepts it with --force.
 *  3. Split brain: the DR is promoted while the primary goes on taking
 *     writes; both report it; the old primary started as a DR of the new
 *     one is refused until it is started with --discard-local.
 *  4. Verify: bytes flipped in the DR's image behind its back are exactly
 *     what `verify` reports (exit 1); `--repair` fixes them.
 *  5. The DR's disk fills up: it stalls (NO_SPACE) and keeps what it has;
 *     once space is back it resumes and catches up.
 *
 * The seed is printed; rerun with FAILOVER_SEED=<seed>.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, open, readFile, readdir, rm } from 'node:fs/promises'
import path from 'node:path'
import type { DrStatus } from '../../lib/node/dr-node.js'
import type { PrimaryStatus } from '../../lib/node/primary-node.js'
import type { VerifyReport } from '../../lib/dr/verifier.js'
import { defer } from '../helpers/cleanup.js'
import { fsop, fsops } from '../helpers/fsop.js'
import { lastPerSlot, startLoopWriter } from '../helpers/loop-writer.js'
import { assertWritesIn, cmpFiles, cmpMount, drOf, freePort, inSync, mb, MiB, missingWrites, pick, primaryOf, type WrittenSpan } from '../helpers/mirror.js'
import { startPair, type PairDirs } from '../helpers/pair.js'
import { pattern, rng } from '../helpers/pattern.js'
import { cli, run, runOk, startNode, type NodeProcess, type RunResult } from '../helpers/proc.js'
import { startProxy } from '../helpers/tcp-proxy.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

const SEED = process.env.FAILOVER_SEED ? Number(process.env.FAILOVER_SEED) : Date.now() % 0x7fffffff
const RS = MiB
const VOL = 'vm1.raw'

/** writeRegions writes whole regions through a mount (one fsync each) and returns what must be there. */
async function writeRegions (mount: string, regions: number[], seedBase: number, vol = VOL): Promise<WrittenSpan[]> {
  const spans = regions.map(r => ({ offset: r * RS, length: RS, seed: seedBase + r }))
  const results = await fsops(spans.map(w => ({ op: 'write', path: path.join(mount, vol), ...w, fsync: true })))
  results.forEach((r, i) => assert.ok(r.ok, `write of region ${regions[i]} through ${mount}: ${r.code} ${r.message}`))
  return spans
}

/** promote runs `volmirror promote` and returns its result. */
async function promote (state: string, ...flags: string[]): Promise<RunResult> {
  return await cli(['promote', '--state', state, ...flags], { timeoutMs: 120_000 })
}

/** ok fails unless the command exited 0, showing its output (and the end of a node's log). */
function ok (r: RunResult, what: string, node?: NodeProcess): RunResult {
  const log = node ? `\n--- end of the node's log:\n${node.stderr.split('\n').slice(-30).join('\n')}` : ''
  assert.equal(r.code, 0, `${what} exited ${r.code ?? r.signal}:\n${r.stdout}\n${r.stderr}${log}`)
  return r
}

/** statusJson runs `volmirror status --state S --json`, as an operator would. */
async function statusJson<T = PrimaryStatus | DrStatus> (state: string): Promise<T> {
  const r = ok(await cli(['status', '--state', state, '--json'], { timeoutMs: 30_000 }), 'volmirror status --json')
  return JSON.parse(r.stdout) as T
}

/** drOn starts `volmirror dr` on the directories of a (former) primary of `dirs`, following `url`. */
async function drOn (dirs: PairDirs, url: string, extra: string[]): Promise<NodeProcess> {
  return await startNode(['dr', '--images', dirs.images, '--state', dirs.state, '--mount', dirs.mnt, '--primary', url,
    '--token-file', path.join(dirs.state, 'token'), '--hydrate-rate', 'unlimited', ...extra], { state: dirs.state, mount: dirs.mnt })
}

function sha256 (b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

describe('failover and failback, split brain, verify, a full DR disk (primary and DR processes)', function () {
  this.timeout(240_000)
  before(() => console.log(`      seed ${SEED} (FAILOVER_SEED=${SEED} to rerun)`))

  it('fails over after a crash, fails back copying only what differs (reporting and keeping the discarded writes), then switches back with demote + promote', async () => {
    const SIZE = 128 * MiB
    const next = rng(SEED)
    const [primaryPort, drPort] = [await freePort(), await freePort()]
    const proxy = await startProxy(`127.0.0.1:${primaryPort}`)
    const pair = await startPair({
      images: { [VOL]: pattern(1, 4 * MiB) },
      primaryArgs: ['--listen', `127.0.0.1:${primaryPort}`],
      drArgs: ['--primary', proxy.url, '--listen', `127.0.0.1:${drPort}`],
    })
    const d = pair.dirs
    const image = path.join(d.images, VOL)
    const drImage = path.join(d.drImages, VOL)
    await fsop({ op: 'truncate', path: path.join(d.mnt, VOL), size: SIZE })
    // Regions for each phase. The old primary's last writes (w2) go to two
    // regions the DR holds data for (w1's: they differ, failback copies
    // them back) and to one that is a hole there (failback releases it).
    const all = pick(18, SIZE / RS - 4, next).map(r => r + 4)
    const w1r = all.slice(0, 8)
    const w2r = [w1r[0]!, w1r[1]!, all[8]!]
    const w3r = all.slice(9, 14)
    const w4r = all.slice(14, 18)
    const w1 = await writeRegions(d.mnt, w1r, SEED + 1_000_000)
    await inSync(d.state, d.drState)

    // The primary's last writes never reach the DR; then it crashes.
    proxy.cut()
    const w2 = await writeRegions(d.mnt, w2r, SEED + 2_000_000)
    const before = await primaryOf(d.state)
    await pair.primary.kill9()
    const drBefore = await drOf(d.drState)
    assert.ok(drBefore.seq.applied < before.seq.last, 'the DR misses the primary\'s last writes')

    // Failover.
    const pr = ok(await promote(d.drState), 'promote', pair.dr)
    assert.match(pr.stdout, /promoted: epoch 1 /)
    const np = await primaryOf(d.drState)
    assert.equal(np.epoch, 1)
    assert.equal(np.listen, `http://127.0.0.1:${drPort}`)
    assert.equal(np.history.length, 2)
    assert.equal(np.history[1]!.fromSeq, drBefore.seq.applied + 1, 'the new epoch begins after what the DR had applied')
    const w3 = await writeRegions(d.drMnt, w3r, SEED + 3_000_000)

    // Failback: the old primary follows the new one.
    const keep = path.join(await tmpDir('discarded'), 'kept')
    const old = await drOn(d, np.listen!, ['--keep-discarded', keep, '--listen', `127.0.0.1:${primaryPort}`])
    const { d: fb } = await inSync(d.drState, d.state, 120_000)
    assert.equal(old.exit, undefined)
    const fetched = fb.fetched.hydrationBytes + fb.fetched.onDemandBytes
    const differ = (w3r.length + 2) * RS
    console.log(`      failback: ${mb(fetched)} fetched (regions written on the new primary ${mb(w3r.length * RS)} + the old primary's discarded writes over data ${mb(2 * RS)}); ` +
      `image ${mb(SIZE)}; compared ${mb(fb.hydration.comparedBytes)}, kept ${fb.hydration.kept}, released ${fb.hydration.released}, copied ${fb.hydration.copied}; ` +
      `discarded ${JSON.stringify(fb.discarded)}`)
    assert.ok(fetched >= differ && fetched <= differ + 2 * RS, `failback fetched ${mb(fetched)}, expected the ${mb(differ)} that differ`)
    assert.equal(fb.hydration.copied, differ / RS, 'regions copied')
    assert.equal(fb.moved.failbackBytes, fetched, 'status --json counts every byte fetched as the failback\'s cost')
    assert.equal(fb.moved.initialSyncBytes, 0)
    assert.ok(fb.hydration.released >= 1, 'the discarded write into a hole is released, not fetched')

    // The discarded writes: reported, and their bytes kept.
    assert.ok(fb.discarded, 'the old primary reports what it discarded')
    assert.equal(fb.discarded.regions, w2r.length)
    assert.equal(fb.discarded.bytes, w2r.length * RS)
    assert.ok(fb.discarded.records >= w2r.length, `discarded records: ${fb.discarded.records}`)
    assert.equal(fb.discarded.forkSeq, np.history[1]!.fromSeq)
    assert.equal(fb.discarded.keptIn, keep)
    const report = JSON.parse(await readFile(path.join(keep, 'discarded.json'), 'utf8')) as { volumes: Array<{ volume: string, regions: number[] }> }
    assert.deepEqual(report.volumes, [{ volume: VOL, regions: [...w2r].sort((a, b) => a - b) }])
    await assertWritesIn(path.join(keep, VOL), w2, 'the kept discarded bytes')
    assert.match(old.stderr, /failback\.discarded/)

    // Both sides equal; the new primary's writes are there, the discarded ones are not.
    await cmpFiles(drImage, image)
    await assertWritesIn(image, [...w1, ...w3], 'the old primary (now a DR)')
    assert.equal((await missingWrites(image, w2)).length, w2.length, 'the discarded writes are gone from the old primary')

    // Planned switch back: nothing lost.
    const dm = ok(await cli(['demote', '--state', d.drState, '--timeout', '60s'], { timeoutMs: 120_000 }), 'demote', pair.dr)
    assert.match(dm.stdout, new RegExp(`now follows http://127\\.0\\.0\\.1:${primaryPort}`))
    ok(await promote(d.state), 'promote of the old primary', old)
    const back = await primaryOf(d.state)
    assert.equal(back.epoch, 2)
    assert.equal((await drOf(d.drState)).role, 'dr')
    const w4 = await writeRegions(d.mnt, w4r, SEED + 4_000_000)
    const { d: last } = await inSync(d.state, d.drState, 120_000)
    assert.equal(last.discarded, undefined, 'a planned switchover discards nothing')
    console.log(`      switch back (demote + promote): the demoted node fetched ${mb(last.fetched.hydrationBytes + last.fetched.onDemandBytes)}, compared ${mb(last.hydration.comparedBytes)}`)
    const kept = [...w1, ...w3, ...w4]
    await assertWritesIn(image, kept, 'the primary at the end')
    await assertWritesIn(drImage, kept, 'the DR at the end')
    await cmpFiles(image, drImage)
    await cmpMount(image, path.join(d.drMnt, VOL))
  })

  it('promote refuses a DR whose volumes are inconsistent (naming them, exit 1) and accepts it with --force', async () => {
    const pair = await startPair({ images: { [VOL]: pattern(1, 8 * MiB), 'vm2.raw': pattern(2, 4 * MiB) }, hydrateRate: '0' })
    const d = pair.dirs
    await waitFor('the DR to know the volumes', async () => (await drOf(d.drState)).volumes.length === 2, 30_000)
    const r = await promote(d.drState)
    assert.equal(r.code, 1, `promote of an inconsistent DR: ${r.stdout}${r.stderr}`)
    assert.match(r.stderr, /\[INCONSISTENT\]/)
    assert.match(r.stderr, /vm1\.raw: 8 regions absent, 0% hydrated/)
    assert.match(r.stderr, /vm2\.raw: 4 regions absent, 0% hydrated/)
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line')
    const s = await drOf(d.drState)
    assert.equal(s.role, 'dr', 'still a DR')
    assert.equal(s.epoch, 0)

    const f = ok(await promote(d.drState, '--force'), 'promote --force')
    assert.match(f.stdout, /warning: vm1\.raw was inconsistent \(8 regions absent/)
    assert.match(f.stdout, /warning: vm2\.raw was inconsistent \(4 regions absent/)
    const p = await primaryOf(d.drState)
    assert.equal(p.epoch, 1)
    await writeRegions(d.drMnt, [2], SEED)
  })

  it('split brain: promoted while the primary goes on; both report it; the old primary is refused until --discard-local', async () => {
    const next = rng(SEED + 1)
    const drPort = await freePort()
    const pair = await startPair({ images: { [VOL]: pattern(1, 16 * MiB) }, drArgs: ['--listen', `127.0.0.1:${drPort}`] })
    const d = pair.dirs
    const image = path.join(d.images, VOL)
    const drImage = path.join(d.drImages, VOL)
    const [ar, br, cr] = ((all) => [all.slice(0, 3), all.slice(3, 6), all.slice(6, 9)])(pick(9, 16, next))
    await writeRegions(d.mnt, ar!, SEED + 1_000_000)
    await inSync(d.state, d.drState)

    ok(await promote(d.drState), 'promote')
    // Both sides take writes.
    const onOld = await writeRegions(d.mnt, br!, SEED + 2_000_000)
    const onNew = await writeRegions(d.drMnt, cr!, SEED + 3_000_000)
    const [o, n] = await waitFor('both nodes to report split brain', async () => {
      const [o, n] = [await statusJson<PrimaryStatus>(d.state), await statusJson<PrimaryStatus>(d.drState)]
      return o.splitBrain && n.splitBrain ? [o, n] : undefined
    }, 30_000, 200)
    console.log(`      old primary: ${o.splitBrain!.reason}\n      new primary: ${n.splitBrain!.reason}`)
    assert.equal(n.listen, `http://127.0.0.1:${drPort}`, 'the promoted DR serves at its --listen')
    assert.equal(o.splitBrain!.peer, n.nodeId)
    assert.equal(n.splitBrain!.peer, o.nodeId)
    // Both refuse to replicate: the old primary to its DR, the new one to the old (below).
    const token = (await readFile(path.join(d.state, 'token'), 'utf8')).trim()
    const res = await fetch(`${o.listen}/v1/groups?node=${n.nodeId}&after=0&wait=0`, { headers: { authorization: `Bearer ${token}` } })
    const body = await res.text()
    assert.equal(res.status, 409, body)
    assert.match(body, /SPLIT_BRAIN/)

    // The old primary as a DR of the new one: refused, nothing replicated.
    const oldHash = sha256(await readFile(image))
    assert.equal((await pair.primary.stop()).code, 0, 'the old primary stops cleanly')
    const refused = await drOn(d, n.listen!, [])
    const rs = await waitFor('the old primary to be refused', async () => {
      const s = await statusJson<DrStatus>(d.state)
      return s.role === 'dr' && s.splitBrain ? s : undefined
    }, 30_000, 200)
    assert.match(rs.splitBrain!, /split brain|SPLIT_BRAIN|two nodes|--discard-local/i)
    assert.equal(rs.replication.records, 0, 'no record replicated')
    assert.equal(rs.fetched.hydrationBytes + rs.fetched.onDemandBytes, 0, 'no region fetched')
    assert.equal(rs.discarded, undefined, 'nothing discarded')
    assert.ok((await statusJson<PrimaryStatus>(d.drState)).splitBrain, 'the new primary still reports it')
    await refused.stop()
    assert.equal(sha256(await readFile(image)), oldHash, 'the old primary\'s image is untouched')

    // Resolved by the operator: the old primary's side is discarded (and kept).
    const keep = path.join(await tmpDir('split'), 'kept')
    await drOn(d, n.listen!, ['--discard-local', '--keep-discarded', keep])
    const { p, d: s } = await inSync(d.drState, d.state, 60_000)
    assert.equal(p.splitBrain, undefined, 'the new primary no longer reports a split brain')
    assert.equal(s.splitBrain, undefined)
    assert.ok(s.discarded, 'the discarded side is reported')
    assert.equal(s.discarded.regions, br!.length)
    assert.equal(s.discarded.bytes, br!.length * RS)
    await assertWritesIn(path.join(keep, VOL), onOld, 'the kept discarded bytes')
    console.log(`      resolved with --discard-local: discarded ${JSON.stringify(s.discarded)}; fetched ${mb(s.fetched.hydrationBytes)}`)
    await assertWritesIn(image, onNew, 'the old primary (now a DR)')
    await cmpFiles(drImage, image)
  })

  it('verify reports exactly the regions flipped behind the DR\'s back (exit 1) while writes go on; --repair fixes them', async () => {
    const SIZE = 32 * MiB
    const next = rng(SEED + 2)
    const pair = await startPair({ images: { [VOL]: pattern(1, SIZE) } })
    const d = pair.dirs
    const image = path.join(d.images, VOL)
    const drImage = path.join(d.drImages, VOL)
    await inSync(d.state, d.drState)
    // Writes go on in regions 24..31 while verifying; the flips are in 0..23.
    const work = await tmpDir('verify')
    const writer = await startLoopWriter(work, 'verify', { file: path.join(d.mnt, VOL), offset: 24 * MiB, length: 64 * 1024, slots: 128, seed: SEED, pauseMs: 5 })
    await writer.waitAcks(10)
    const flipped = pick(3, 24, next)
    const fh = await open(drImage, 'r+')
    try {
      for (const r of flipped) {
        const at = r * RS + Math.floor(next() * (RS - 16))
        const b = Buffer.alloc(16)
        await fh.read(b, 0, 16, at)
        for (let i = 0; i < b.length; i++) b[i] = b[i]! ^ 0x5a
        await fh.write(b, 0, 16, at)
      }
      await fh.sync()
    } finally {
      await fh.close()
    }

    const verify = async (...flags: string[]): Promise<{ r: RunResult, report: VerifyReport }> => {
      const r = await cli(['verify', '--state', d.drState, '--json', ...flags], { timeoutMs: 120_000 })
      return { r, report: JSON.parse(r.stdout) as VerifyReport }
    }
    const v1 = await verify()
    assert.equal(v1.r.code, 1, `verify exits 1 on differences: ${v1.r.stdout}${v1.r.stderr}`)
    assert.deepEqual(v1.report.mismatched.map(m => [m.volume, m.region, m.offset]), flipped.map(r => [VOL, r, r * RS]), 'exactly the flipped regions')
    assert.equal(v1.report.regionsChecked, SIZE / RS - v1.report.unsettled, `every region compared: ${JSON.stringify(v1.report)}`)
    assert.equal(v1.report.skippedAbsent, 0)
    const v2 = await verify('--repair')
    assert.equal(v2.r.code, 0, `verify --repair: ${v2.r.stdout}${v2.r.stderr}`)
    assert.equal(v2.report.repaired, flipped.length)
    assert.deepEqual(v2.report.mismatched.map(m => m.region), flipped)
    const v3 = await verify()
    assert.equal(v3.r.code, 0, `verify after the repair: ${v3.r.stdout}`)
    assert.deepEqual(v3.report.mismatched, [])
    console.log(`      verify: ${v1.report.regionsChecked} regions compared, ${v1.report.rechecked} checked again (written meanwhile), ${v1.report.unsettled} unsettled; ` +
      `flipped ${JSON.stringify(flipped)} reported, repaired ${v2.report.repaired}`)

    assert.equal(await writer.stop(), 'done')
    await inSync(d.state, d.drState)
    await assertWritesIn(drImage, lastPerSlot(await writer.acks()), 'the DR')
    await cmpFiles(image, drImage)
  })

  it('a full DR disk stalls it (NO_SPACE) without losing anything; once space is back it resumes and catches up', async () => {
    const next = rng(SEED + 3)
    const small = await tmpDir('enospc')
    const fs = path.join(small, 'images')
    await mkdir(fs)
    // Unmounted after the DR is stopped (teardown runs newest first; the pair comes later).
    defer(async () => {
      const r = await run('umount', [fs], { timeoutMs: 30_000 })
      if (r.code !== 0) await run('umount', ['-l', fs], { timeoutMs: 30_000 })
    })
    await runOk('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', fs])
    const SIZE = 64 * MiB
    const pair = await startPair({ images: { [VOL]: pattern(1, 16 * MiB) }, drArgs: ['--images', fs] })
    const d = pair.dirs
    await fsop({ op: 'truncate', path: path.join(d.mnt, VOL), size: SIZE })
    const image = path.join(d.images, VOL)
    const drImage = path.join(fs, VOL)
    await inSync(d.state, d.drState)

    // Fill the DR's disk.
    const fill = await run('dd', ['if=/dev/zero', `of=${path.join(fs, 'filler')}`, 'bs=1M'], { timeoutMs: 60_000 })
    assert.notEqual(fill.code, 0, 'dd stops at a full disk')
    assert.match(fill.stderr, /No space left on device/)
    // Writes into holes: the DR needs new blocks for them.
    const regions = pick(6, 48, next).map(r => 16 + r)
    const written = await writeRegions(d.mnt, regions, SEED + 5_000_000)
    const stalled = await waitFor('the DR to report it is stalled', async () => {
      const s = await statusJson<DrStatus>(d.drState)
      return s.stalled ? s : undefined
    }, 60_000, 200)
    assert.match(stalled.stalled!, /NO_SPACE/)
    assert.equal(stalled.consistent, false, 'a stalled DR is not consistent')
    // Nothing is lost: the DR keeps (durably, in its state directory) every
    // record it could not apply. (The primary counts stored records as
    // acknowledged: a DR asks for records after the last one it stored.)
    const p = await primaryOf(d.state)
    const kept = await waitFor('the stalled DR to hold every record, applied or not', async () => {
      const s = await drOf(d.drState)
      return s.stalled && s.seq.stored >= p.seq.last ? s : undefined
    }, 30_000, 100)
    assert.ok(kept.seq.applied < p.seq.last, `the DR could not apply: applied ${kept.seq.applied}, stored ${kept.seq.stored}, primary last ${p.seq.last}`)
    assert.equal((await missingWrites(drImage, written)).length > 0, true, 'the writes are not in the DR image yet')
    console.log(`      stalled: ${stalled.stalled}; applied ${kept.seq.applied}, stored ${kept.seq.stored}, primary last ${p.seq.last}`)

    await rm(path.join(fs, 'filler'))
    const { d: s } = await inSync(d.state, d.drState, 90_000)
    assert.equal(s.stalled, undefined)
    await assertWritesIn(drImage, written, 'the DR')
    await cmpFiles(image, drImage)
    assert.deepEqual((await readdir(fs)).filter(n => !n.startsWith('.volmirror')), [VOL])
  })
})
