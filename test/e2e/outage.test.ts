/**
 * Link outages and crashes (issue 4): a primary and a DR as processes, the
 * link between them through a TCP proxy the test controls
 * (test/helpers/tcp-proxy.ts).
 *
 *  1. Outage past the journal limit: the link is cut, 3x the journal limit
 *     is written over a few regions; the primary keeps a dirty bitmap for
 *     the DR (status: bitmap mode, dirty bytes = the regions written); the
 *     link comes back and the DR resyncs. The bytes that crossed the link
 *     (proxy counter, primary -> DR) are the dirty regions plus the records
 *     still journaled: not the image, not everything written.
 *  2. Stall: the link holds connections without forwarding a byte while a
 *     writer goes on; the DR says it is not connected and its lag grows;
 *     the link comes back and the DR catches up.
 *  3. Crashes: kill -9 of the primary, and separately of the DR, at seeded
 *     random moments while a writer writes (each write logged only after
 *     its fsync returned); and of each during a resync. After the restart
 *     (same directories) every acknowledged write is on both sides, and the
 *     images are equal (cmp).
 *
 * Seeds are printed; rerun one with OUTAGE_SEED=<seed>. Kills: 3 of each
 * in CI, 15 with SOAK=1 (or OUTAGE_KILLS=n).
 */
import assert from 'node:assert/strict'
import path from 'node:path'
import type { DrStatus } from '../../lib/node/dr-node.js'
import type { PrimaryStatus } from '../../lib/node/primary-node.js'
import { fsop, fsops } from '../helpers/fsop.js'
import { lastPerSlot, startLoopWriter, type LoopAck } from '../helpers/loop-writer.js'
import { assertWritesIn, cmpFiles, cmpMount, drOf, freePort, inSync, mb, MiB, pick, primaryOf, shuffled, type WrittenSpan } from '../helpers/mirror.js'
import { startPair, type Pair } from '../helpers/pair.js'
import { pattern, rng } from '../helpers/pattern.js'
import { startNode } from '../helpers/proc.js'
import { startProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

const SOAK = Boolean(process.env.SOAK)
const SEED = process.env.OUTAGE_SEED ? Number(process.env.OUTAGE_SEED) : Date.now() % 0x7fffffff
const KILLS = Number(process.env.OUTAGE_KILLS ?? (SOAK ? 15 : 3))

const RS = MiB // the default region size
const VOL = 'vm1.raw'
const LIMIT = 16 * MiB

/** ProxiedPair is a pair whose DR reaches the primary only through the proxy. */
interface ProxiedPair {
  pair: Pair
  proxy: TcpProxy
  /** restartPrimary starts the (stopped or killed) primary again, same directories and address. */
  restartPrimary: () => Promise<void>
  primary: () => Promise<PrimaryStatus>
  dr: () => Promise<DrStatus>
  synced: (timeoutMs?: number) => Promise<{ p: PrimaryStatus, d: DrStatus }>
  image: string
  drImage: string
}

/**
 * proxiedPair starts a primary on a fixed port (so that it can restart at
 * the same address) and a DR that reaches it through the proxy; the volume
 * is `size` bytes, sparse but for its first 4 MiB.
 */
async function proxiedPair (opts: { size: number, primaryArgs?: string[], hydrateRate?: string }): Promise<ProxiedPair> {
  const port = await freePort()
  const proxy = await startProxy(`127.0.0.1:${port}`)
  const primaryArgs = ['--listen', `127.0.0.1:${port}`, ...(opts.primaryArgs ?? [])]
  const pair = await startPair({
    images: { [VOL]: pattern(1, 4 * MiB) },
    primaryArgs,
    drArgs: ['--primary', proxy.url],
    ...(opts.hydrateRate ? { hydrateRate: opts.hydrateRate } : {}),
  })
  const d = pair.dirs
  // Grown through the mount (a journaled truncate): the rest is a hole.
  await fsop({ op: 'truncate', path: path.join(d.mnt, VOL), size: opts.size })
  const pp: ProxiedPair = {
    pair,
    proxy,
    restartPrimary: async () => {
      await pair.primary.stop()
      pair.primary = await startNode(['primary', '--images', d.images, '--state', d.state, '--mount', d.mnt, ...primaryArgs], { state: d.state, mount: d.mnt })
    },
    primary: async () => await primaryOf(d.state),
    dr: async () => await drOf(d.drState),
    synced: async (timeoutMs) => await inSync(d.state, d.drState, timeoutMs),
    image: path.join(d.images, VOL),
    drImage: path.join(d.drImages, VOL),
  }
  await pp.synced()
  return pp
}

/** equal checks both images byte for byte (and the DR mount once). */
async function equal (pp: ProxiedPair, viaMount = false): Promise<void> {
  await cmpFiles(pp.image, pp.drImage)
  if (viaMount) await cmpMount(pp.image, path.join(pp.pair.dirs.drMnt, VOL))
}

describe('outages: cut, stalled and crashed links (primary and DR processes, through a proxy)', function () {
  this.timeout(240_000)
  before(() => console.log(`      seed ${SEED} (OUTAGE_SEED=${SEED} to rerun), ${KILLS} kills of each node`))

  it('after an outage past the journal limit, resyncs only the dirty regions: bytes moved ≈ dirty regions + journaled records', async () => {
    const SIZE = 256 * MiB
    const pp = await proxiedPair({ size: SIZE, primaryArgs: ['--journal-limit', '16M'] })
    const next = rng(SEED)
    // 12 regions, each written 4 times: 48 MiB written (3x the limit) over 12 MiB of regions.
    const regions = pick(12, SIZE / RS, next)
    const PASSES = 4
    const seedOf = (pass: number, r: number): number => SEED + 1000 * pass + r

    pp.proxy.cut()
    await waitFor('the DR to notice the cut', async () => !(await pp.dr()).lag.connected, 30_000)
    const ops = []
    for (let pass = 0; pass < PASSES; pass++) {
      for (const r of shuffled(regions, next)) ops.push({ op: 'write', path: path.join(pp.pair.dirs.mnt, VOL), offset: r * RS, seed: seedOf(pass, r), length: RS, fsync: true })
    }
    const results = await fsops(ops)
    assert.ok(results.every(r => r.ok), `writes during the outage: ${JSON.stringify(results.find(r => !r.ok))}`)
    const written = PASSES * regions.length * RS

    // The journal outgrew its limit: the DR's oldest records became dirty regions.
    // (Enforced at checkpoints: wait until the journal is back within its limit.)
    const p = await waitFor('the primary to keep a dirty bitmap for the DR, its journal within the limit', async () => {
      const s = await pp.primary()
      return s.drs.length === 1 && s.drs[0]!.mode === 'bitmap' && s.journal.bytes <= LIMIT ? s : undefined
    }, 60_000)
    const dirty = p.drs[0]!.dirtyBytes
    const journaled = p.journal.bytes
    console.log(`      written during the outage ${mb(written)} over ${mb(regions.length * RS)} of regions; primary: bitmap mode, dirty ${mb(dirty)}, journal ${mb(journaled)} (limit ${mb(LIMIT)})`)
    assert.equal(dirty % RS, 0, 'dirty bytes are whole regions')
    // Passes 1 and 2 (24 MiB) cannot all fit in the journal any more: every region written is dirty.
    assert.equal(dirty, regions.length * RS, 'dirty bytes = the regions written')
        assert.equal((await pp.dr()).lag.connected, false)

    const before = pp.proxy.snapshot()
    const drBefore = await pp.dr()
    pp.proxy.restore()
    const { p: p2, d } = await pp.synced(120_000)
    const moved = pp.proxy.bytes.fromTarget - before.fromTarget
    const records = d.replication.bytes - drBefore.replication.bytes
    const fetched = d.fetched.hydrationBytes + d.fetched.onDemandBytes - drBefore.fetched.hydrationBytes - drBefore.fetched.onDemandBytes
    // At most every dirty region plus every journaled record. At least the
    // records, plus the dirty regions that journaled records do not
    // overwrite whole (those need no fetch: the last writes of the last
    // pass, one fewer than fit in the journal, for a write cut in two).
    const expected = dirty + journaled
    const coveredWhole = new Set(ops.slice(ops.length - Math.max(0, Math.floor(journaled / RS) - 1)).map(o => o.offset)).size
    const minimal = journaled + dirty - coveredWhole * RS
    console.log(`      after restore: ${mb(moved)} crossed the link (primary -> DR): ${mb(fetched)} of regions fetched, ${mb(records)} of records; ` +
      `dirty + journaled ${mb(expected)} (${(moved / expected).toFixed(2)}x), at least ${mb(minimal)} (${coveredWhole} dirty regions rewritten whole by journaled records); ` +
      `image ${mb(SIZE)}, written ${mb(written)}`)
    assert.ok(moved >= 0.95 * minimal && moved <= 1.6 * expected, `bytes moved ${mb(moved)} not within [0.95 x ${mb(minimal)}, 1.6 x ${mb(expected)}]`)
    assert.ok(records >= journaled * 0.95 && records <= journaled * 1.05, `the journaled records were shipped: ${mb(records)} of ${mb(journaled)}`)
    assert.ok(moved < written, 'less than everything written during the outage')
    assert.equal(d.replication.resyncs, 1, 'one resync')
    assert.equal(d.moved.resyncBytes - drBefore.moved.resyncBytes, fetched, 'status --json counts the regions fetched as the resync\'s cost')
    assert.equal(d.moved.failbackBytes, 0)
    assert.ok(d.resync && d.resync.dirtyRegions >= regions.length, `the DR resynced the dirty regions: ${JSON.stringify(d.resync)}`)
    // The primary leaves bitmap mode at the DR's next acknowledgement past the resync.
    const p3 = p2.drs[0]!.mode === 'journaling' ? p2 : await waitFor('the primary to go back to journaling for the DR', async () => {
      const s = await pp.primary()
      return s.drs[0]?.mode === 'journaling' ? s : undefined
    }, 10_000)
    assert.equal(p3.drs[0]!.mode, 'journaling', 'back to journaling once resynced')
    assert.equal(p3.drs[0]!.dirtyBytes, 0)

    // Nothing lost: the last pass is what both sides hold.
    const last: WrittenSpan[] = regions.map(r => ({ offset: r * RS, length: RS, seed: seedOf(PASSES - 1, r) }))
    await assertWritesIn(pp.image, last, 'the primary')
    await assertWritesIn(pp.drImage, last, 'the DR')
    await equal(pp, true)
  })
  it('stalled link: the DR says it is not connected and its lag grows; after the stall it catches up', async () => {
    const pp = await proxiedPair({ size: 64 * MiB })
    const work = await tmpDir('stall')
    // 64 KiB writes over 16 MiB, one fsync each, paced: the writer goes on through the stall.
    const writer = await startLoopWriter(work, 'stall', { file: path.join(pp.pair.dirs.mnt, VOL), offset: 8 * MiB, length: 64 * 1024, slots: 256, seed: SEED, pauseMs: 10 })
    await writer.waitAcks(20)
    // Stall while the DR knows it is behind (under steady writes it almost always is).
    await waitFor('the DR to see writes it has not applied yet', async () => (await pp.dr()).lag.seq > 0, 30_000, 5)
    pp.proxy.stall()
    const stalledAt = Date.now()
    const acksAtStall = (await writer.acks()).length
    const p1 = (await pp.primary()).drs[0]!

    // The primary sees the DR fall behind: its acknowledgement stops while writes go on.
    await waitFor('the DR\'s lag on the primary to grow', async () => {
      const d = (await pp.primary()).drs[0]!
      return d.lagSeq > p1.lagSeq + 50 && d.ackedSeq <= p1.ackedSeq + 1
    }, 30_000)
    // The DR notices (its long poll times out) and says so; its lag keeps growing.
    const d1 = await waitFor('the DR to say it is not connected', async () => {
      const d = await pp.dr()
      return d.lag.connected ? undefined : d
    }, 60_000, 100)
    const noticedMs = Date.now() - stalledAt
    assert.ok(d1.lag.seq > 0, `the DR reports a lag while stalled: ${JSON.stringify(d1.lag)}`)
    assert.ok(d1.lag.lastContact <= stalledAt + 1000, 'no contact since the stall (but for a reply already on its way)')
    const d2 = await waitFor('the DR\'s lag in seconds to grow', async () => {
      const d = await pp.dr()
      return (d.lag.seconds ?? 0) >= (d1.lag.seconds ?? Infinity) + 1 ? d : undefined
    }, 10_000, 100)
    assert.equal(d2.lag.connected, false)
    assert.ok(d2.lag.seconds! * 1000 >= Date.now() - stalledAt - 1000, `the lag covers the stall at least: ${d2.lag.seconds} s`)
    const p2 = (await pp.primary()).drs[0]!
    console.log(`      stalled: the DR said 'not connected' after ${(noticedMs / 1000).toFixed(1)} s; lag then ${d1.lag.seq} seqs / ${d1.lag.seconds!.toFixed(1)} s, ` +
      `${d2.lag.seconds!.toFixed(1)} s later; primary: DR lag ${p2.lagSeq} seqs; ${(await writer.acks()).length - acksAtStall} writes acknowledged meanwhile`)

    const before = pp.proxy.snapshot()
    pp.proxy.restore()
    await waitFor('the DR to reconnect', async () => (await pp.dr()).lag.connected, 60_000, 100)
    await writer.waitAcks((await writer.acks()).length + 20)
    assert.equal(await writer.stop(), 'done')
    const { d } = await pp.synced(60_000)
    assert.equal(d.lag.seq, 0)
    console.log(`      after the stall: ${mb(pp.proxy.bytes.fromTarget - before.fromTarget)} crossed the link; ${(await writer.acks()).length} writes in all`)
    const acked = lastPerSlot(await writer.acks())
    await assertWritesIn(pp.image, acked, 'the primary')
    await assertWritesIn(pp.drImage, acked, 'the DR')
    await equal(pp)
  })
  it(`kill -9 of the primary (${KILLS}x) and of the DR (${KILLS}x) at random moments during writes: every acknowledged write is on both sides`, async () => {
    const SLOT = 64 * 1024
    const AREA = 8 * MiB // each writer its own area: no two writes overlap
    const pp = await proxiedPair({ size: 2 * KILLS * AREA + 8 * MiB })
    const work = await tmpDir('crash')
    const next = rng(SEED + 1)
    const acked: LoopAck[] = []
    const figures: string[] = []
    for (let k = 0; k < 2 * KILLS; k++) {
      const victim = k % 2 === 0 ? 'primary' : 'DR'
      // Writes to a killed primary must not wrap around their area (a write
      // in flight could overwrite an acknowledged one); the DR's writer runs
      // on until stopped, and only the last write of each slot counts.
      const writer = await startLoopWriter(work, `w${k}`, {
        file: path.join(pp.pair.dirs.mnt, VOL), offset: 8 * MiB + k * AREA, length: SLOT, slots: AREA / SLOT,
        ...(victim === 'primary' ? { count: AREA / SLOT } : {}),
        seed: SEED + 100_000 * (k + 1), group: 1 + Math.floor(next() * 4),
      })
      const at = 5 + Math.floor(next() * 80)
      await writer.waitAcks(at)
      if (victim === 'primary') {
        await pp.pair.primary.kill9()
        const how = await writer.ended()
        assert.notEqual(how, 'done', 'the writer was cut off by the crash')
        const mine = await writer.acks()
        acked.push(...mine)
        await pp.restartPrimary()
        // The primary alone first: what it acknowledged survived its crash.
        await assertWritesIn(pp.image, lastPerSlot(acked), `the primary after kill ${k}`)
        figures.push(`primary killed after ${mine.length} acks (${how})`)
      } else {
        await pp.pair.dr.kill9()
        const stale = (await pp.primary()).drs[0]!.ackedSeq
        await pp.pair.startDr()
        // The writer goes on while the DR is away and comes back.
        await writer.waitAcks((await writer.acks()).length + 10)
        assert.equal(await writer.stop(), 'done')
        const mine = await writer.acks()
        acked.push(...mine)
        figures.push(`DR killed after ${at}+ acks (it had acknowledged seq ${stale}), ${mine.length} in all`)
      }
      await pp.synced(60_000)
      await assertWritesIn(pp.drImage, lastPerSlot(acked), `the DR after kill ${k}`)
    }
    console.log(`      ${figures.join('; ')}`)
    console.log(`      ${acked.length} acknowledged writes (${mb(acked.length * SLOT)}) on both sides`)
    await assertWritesIn(pp.image, lastPerSlot(acked), 'the primary')
    await equal(pp, true)
  })

  it('kill -9 of the DR, then of the primary, during a resync after an outage: nothing acknowledged is lost', async () => {
    const SIZE = 128 * MiB
    // Hydration (and so the resync) paced, so that there is a resync to interrupt.
    const pp = await proxiedPair({ size: SIZE, primaryArgs: ['--journal-limit', '16M'], hydrateRate: '4M' })
    const next = rng(SEED + 2)
    const all = pick(48, SIZE / RS, next)
    const acked = new Map<number, WrittenSpan>()
    for (const [round, victim] of (['DR', 'primary'] as const).entries()) {
      // 3 passes over 12 regions, then 12 other regions once: 48 MiB, 3x the
      // limit; the regions of the first passes are dirty and not rewritten
      // by what the journal kept, so the resync has to fetch them.
      const dirty = all.slice(24 * round, 24 * round + 12)
      const tail = all.slice(24 * round + 12, 24 * round + 24)
      const ops: Array<{ op: string, path: string, offset: number, seed: number, length: number, fsync: boolean }> = []
      const write = (r: number, seed: number): void => { ops.push({ op: 'write', path: path.join(pp.pair.dirs.mnt, VOL), offset: r * RS, seed, length: RS, fsync: true }) }
      for (let pass = 0; pass < 3; pass++) for (const r of shuffled(dirty, next)) write(r, SEED + 10_000 * round + 1000 * pass + r)
      for (const r of tail) write(r, SEED + 10_000 * round + 5000 + r)
      pp.proxy.cut()
      const results = await fsops(ops)
      assert.ok(results.every(r => r.ok), 'writes during the outage')
      for (const o of ops) acked.set(o.offset, { offset: o.offset, length: o.length, seed: o.seed })
      await waitFor('bitmap mode, the journal within its limit', async () => {
        const s = await pp.primary()
        return s.drs[0]?.mode === 'bitmap' && s.journal.bytes <= LIMIT
      }, 60_000)
      const before = await pp.dr()
      const target = Math.floor(next() * 3 * MiB)
      pp.proxy.restore()
      const during = await waitFor('the resync to be under way', async () => {
        const d = await pp.dr()
        const fetched = d.fetched.hydrationBytes - before.fetched.hydrationBytes
        return d.replication.resyncs > before.replication.resyncs && !d.consistent && fetched >= target ? d : undefined
      }, 60_000, 20)
      if (victim === 'DR') {
        await pp.pair.dr.kill9()
        await pp.pair.startDr()
      } else {
        await pp.pair.primary.kill9()
        await pp.restartPrimary()
        await assertWritesIn(pp.image, [...acked.values()], 'the primary after its crash')
      }
      const absent = during.volumes.reduce((n, v) => n + v.regions.absent, 0)
      const { d } = await pp.synced(120_000)
      console.log(`      ${victim} killed during the resync: ${absent} regions still absent, ${mb(during.fetched.hydrationBytes - before.fetched.hydrationBytes)} fetched so far; ` +
        `after restart: resyncs ${d.replication.resyncs}, fetched ${mb(d.fetched.hydrationBytes)} since the DR started`)
      await assertWritesIn(pp.drImage, [...acked.values()], `the DR after the ${victim} was killed`)
    }
    await assertWritesIn(pp.image, [...acked.values()], 'the primary')
    await equal(pp, true)
  })
})
