/**
 * Sync mode (`primary --sync`, RPO 0), with the primary and the DR as
 * separate processes and the DR reaching the primary through a TCP proxy
 * the test controls:
 *
 *   - kill -9 of the primary right after an fsync returned, many times
 *     (seeded; SYNC_SEED to rerun), under two writers: every write whose
 *     fsync returned is on the DR, then the DR is promoted and still has
 *     them all;
 *   - `--sync-fallback async`: a DR that stops confirming holds fsyncs back
 *     no longer than `--sync-timeout`, status says DEGRADED, and sync
 *     resumes once the link is back;
 *   - `--sync-fallback block`: fsyncs wait while the DR is away, and return
 *     once it is back.
 */
import assert from 'node:assert/strict'
import path from 'node:path'
import { truncate, writeFile } from 'node:fs/promises'
import type { PrimaryStatus } from '../../lib/node/primary-node.js'
import type { CrashPlan } from '../helpers/crash-writer.js'
import { fsop } from '../helpers/fsop.js'
import { ackCount, acked, dataPlan, startWriter, stopReason, type Writer } from '../helpers/fsync-writers.js'
import { assertWritesIn, drOf, freePort, inSync, primaryOf, shuffled, type WrittenSpan } from '../helpers/mirror.js'
import { startPair, type Pair } from '../helpers/pair.js'
import { rng } from '../helpers/pattern.js'
import { cli, run } from '../helpers/proc.js'
import { startProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../helpers/wait.js'

const SOAK = Boolean(process.env.SOAK)
const SEED = process.env.SYNC_SEED ? Number(process.env.SYNC_SEED) : Date.now() % 0x7fffffff
const KILLS = Number(process.env.SYNC_KILLS ?? 100)

const KiB = 1024
const SLOT = 64 * KiB
const DISK = 'disk.raw'
const DISK_SIZE = 2 * 1024 * 1024 * KiB

/** syncPair starts a primary (fixed port, so it can restart there) in sync mode and a DR reaching it through a proxy. */
async function syncPair (syncArgs: string[]): Promise<{ pair: Pair, proxy: TcpProxy, restart: () => Promise<void> }> {
  const port = await freePort()
  const proxy = await startProxy(`127.0.0.1:${port}`)
  const pair = await startPair({
    primaryArgs: ['--listen', `127.0.0.1:${port}`, '--sync', ...syncArgs],
    drArgs: ['--primary', proxy.url],
    prepare: async (d) => {
      await writeFile(path.join(d.images, DISK), '')
      await truncate(path.join(d.images, DISK), DISK_SIZE)
    },
  })
  await inSync(pair.dirs.state, pair.dirs.drState)
  return { pair, proxy, restart: async () => { await pair.restartPrimary() } }
}

/** syncStatus is the primary's sync section (it must have one). */
async function syncStatus (pair: Pair): Promise<NonNullable<PrimaryStatus['sync']>> {
  const s = await primaryOf(pair.dirs.state)
  assert.ok(s.sync, 'the primary runs in sync mode')
  return s.sync
}

/**
 * timedFsync times one 4 KiB write plus fsync through the primary's mount,
 * in a child process; with `dsync` the file is opened O_DSYNC and nothing
 * else is asked (the kernel asks the mount for the fsync).
 */
async function timedFsync (pair: Pair, offset: number, dsync = false): Promise<{ ms: number, ok: boolean }> {
  const t0 = performance.now()
  const r = await run(process.execPath, ['-e', `
    const fs = require('fs'); const dsync = process.argv[3] === '1'
    const fd = fs.openSync(process.argv[1], dsync ? fs.constants.O_RDWR | fs.constants.O_DSYNC : 'r+')
    fs.writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, Number(process.argv[2])); if (!dsync) fs.fsyncSync(fd); fs.closeSync(fd)`,
  path.join(pair.dirs.mnt, DISK), String(offset), dsync ? '1' : '0'], { timeoutMs: 60_000 })
  return { ms: performance.now() - t0, ok: r.code === 0 }
}

describe(`sync mode: RPO 0 (primary and DR processes; seed ${SEED}, rerun with SYNC_SEED=${SEED})`, function () {
  this.timeout((SOAK ? 60 : 15) * 60_000)

  it(`keeps every fsynced write on the DR across ${KILLS} kill -9 of the primary right after an fsync returned, then after promoting the DR`, async () => {
    const r = rng(SEED)
    const { pair, restart } = await syncPair([])
    const slots = shuffled([...Array(DISK_SIZE / SLOT).keys()], r)
    const all: WrittenSpan[] = []
    const drImage = path.join(pair.dirs.drImages, DISK)
    let resumed = 0
    for (let k = 0; k < KILLS; k++) {
      const writers: Writer[] = []
      for (let w = 0; w < 2; w++) {
        const plan: CrashPlan = { kind: 'data', file: path.join(pair.dirs.mnt, DISK), groups: dataPlan(r, slots, 40, SLOT) }
        writers.push(await startWriter(plan, pair.dirs.root, `w-${k}-${w}`))
      }
      const killAt = 1 + Math.floor(r() * 20)
      await waitFor(`${killAt} fsynced writes`, async () => writers.some(w => w.exit) || (await ackCount(writers)) >= killAt, 60_000, 2)
      const y = await syncStatus(pair)
      assert.equal(y.state, 'in-sync', `fsyncs waited for the DR before the kill: ${JSON.stringify(y)}`)
      await pair.primary.kill9()
      for (const w of writers) {
        await stopReason(w)
        all.push(...await acked(w))
      }
      // Everything the DR stored, it applies (each fsync closed a group).
      await waitFor('the DR to apply what it stored', async () => { const d = await drOf(pair.dirs.drState); return d.seq.applied === d.seq.stored }, 30_000, 20)
      await assertWritesIn(drImage, all, `the DR after kill ${k + 1}`)
      await restart()
      const d = await waitFor('the DR to follow the restarted primary', async () => { const s = await drOf(pair.dirs.drState); return s.lag.connected && !s.lag.lastError ? s : undefined }, 30_000, 50)
      if (d.replication.resyncs === 0) resumed++
    }
    console.log(`      ${KILLS} kills, ${all.length} fsynced writes, all on the DR each time; the DR resumed without resync ${resumed} times`)
    // Promote the DR (the primary is gone) and read every write back through its mount.
    await pair.primary.kill9()
    await waitFor('the DR to apply what it stored', async () => { const d = await drOf(pair.dirs.drState); return d.seq.applied === d.seq.stored }, 30_000, 20)
    const p = await cli(['promote', '--state', pair.dirs.drState])
    assert.equal(p.code, 0, p.stderr)
    await waitFor('the DR to be the primary', async () => (await primaryOf(pair.dirs.drState).catch(() => undefined))?.role === 'primary', 60_000, 100)
    await assertWritesIn(drImage, all, 'the promoted DR')
    const sample = all.slice(-20)
    for (const w of sample) {
      const got = await fsop({ op: 'read', path: path.join(pair.dirs.drMnt, DISK), offset: w.offset, length: w.length, hash: true })
      const want = await fsop({ op: 'read', path: drImage, offset: w.offset, length: w.length, hash: true })
      assert.equal(got.sha256, want.sha256, `the promoted DR's mount serves the write at ${w.offset}`)
    }
  })

  it('--sync-fallback async: a silent DR holds fsyncs back no longer than --sync-timeout; status says DEGRADED; back in sync once the link is back', async () => {
    const { pair, proxy } = await syncPair(['--sync-fallback', 'async', '--sync-timeout', '1s'])
    const first = await timedFsync(pair, 0)
    assert.ok(first.ok)
    assert.equal((await syncStatus(pair)).state, 'in-sync')
    proxy.stall()
    const stalled = await timedFsync(pair, 4096)
    assert.ok(stalled.ok, 'the fsync succeeds without the DR')
    assert.ok(stalled.ms >= 900 && stalled.ms < 1000 + 2000, `the first fsync waited for the timeout, not longer: ${stalled.ms.toFixed(0)} ms`)
    const y = await syncStatus(pair)
    assert.equal(y.state, 'degraded')
    assert.equal(y.degradations, 1)
    assert.equal(y.drs[0]!.inSync, false)
    const text = await cli(['status', '--state', pair.dirs.state])
    assert.match(text.stdout, /sync +DEGRADED since .*writes go on WITHOUT it/)
    const after = await timedFsync(pair, 8192)
    assert.ok(after.ms < 900, `once degraded, fsyncs do not wait for the DR: ${after.ms.toFixed(0)} ms`)
    proxy.restore()
    await waitFor('sync to resume', async () => (await syncStatus(pair)).state === 'in-sync', 30_000, 50)
    await inSync(pair.dirs.state, pair.dirs.drState)
    assert.match(pair.primary.stderr, /sync\.degraded/)
    assert.match(pair.primary.stderr, /sync\.resumed/)
  })

  it('--sync-fallback block: fsyncs wait while the DR is away and return once it is back', async () => {
    const { pair, proxy } = await syncPair(['--sync-fallback', 'block', '--sync-timeout', '500ms'])
    assert.ok((await timedFsync(pair, 0)).ok)
    proxy.stall()
    const t0 = performance.now()
    const pending = timedFsync(pair, 4096)
    await waitFor('the primary to say writers are blocked', async () => (await syncStatus(pair)).state === 'blocked', 10_000, 50)
    const y = await syncStatus(pair)
    assert.equal(y.waiting, 1)
    assert.equal(y.degradations, 0)
    // Well past the timeout: still waiting.
    await waitFor('2 s of waiting', () => performance.now() - t0 > 2000, 5000, 50)
    assert.equal((await syncStatus(pair)).waiting, 1, 'the fsync still waits for the DR')
    const text = await cli(['status', '--state', pair.dirs.state])
    assert.match(text.stdout, /sync +BLOCKED since .*1 fsync\(s\) waiting/)
    proxy.restore()
    const done = await pending
    assert.ok(done.ok)
    assert.ok(done.ms > 2000, `it returned only once the DR was back: ${done.ms.toFixed(0)} ms`)
    assert.equal((await syncStatus(pair)).state, 'in-sync')
    // A write on a file opened O_DSYNC waits the same way (no fsync asked by the application).
    proxy.stall()
    const t1 = performance.now()
    const dsync = timedFsync(pair, 8192, true)
    await waitFor('the O_DSYNC write to wait for the DR', async () => (await syncStatus(pair)).waiting === 1, 10_000, 20)
    await waitFor('1 s of waiting', () => performance.now() - t1 > 1000, 5000, 50)
    assert.equal((await syncStatus(pair)).waiting, 1)
    proxy.restore()
    assert.ok((await dsync).ok)
    const d = await inSync(pair.dirs.state, pair.dirs.drState)
    assert.ok(d.d.seq.applied >= d.p.seq.last)
  })
})
