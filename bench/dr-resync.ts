/**
 * dr-resync: a DR that was consistent, then down while 1 % of the image's
 * regions changed on the primary, catching up after a restart; next to
 * PEERS.md's `rsync --inplace --no-whole-file` of the same change through
 * an rsync daemon on 127.0.0.1 (destination: a copy of the image as it was
 * before the change, backdated so rsync does not skip it).
 *
 * The image is dr-initial-sync's (4 GiB sparse, 25 % of its regions
 * random, seeded). Setup, not timed: one primary (on a fixed port, so it
 * can restart where the DR expects it) left until its region codes are
 * computed, and one DR synced in full, then stopped. Each run, two
 * outages, each changing a fresh seeded 1 % of the regions (whole regions
 * of new random bytes, written through the primary's mount while the DR is
 * down):
 *
 * 1. journal: the primary's journal (default --journal-limit 1G) keeps
 *    every record for the DR; rsync and the DR restart take turns on the
 *    same change;
 * 2. bitmap: the primary restarted with --journal-limit 4M, so the DR's
 *    records are dropped for a dirty-region bitmap and the restarted DR
 *    resyncs those regions (by the asOf rule) instead of replaying.
 *
 * The DR is timed from its start to status consistent and caught up (page
 * cache dropped first, as for rsync). Bytes moved: for the DR, what its
 * status counts as shipped records plus fetched regions since it started;
 * for rsync, its "Total bytes sent". The changed regions of each copy are
 * compared with the source afterwards.
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { runOk } from './lib/exec.js'
import { differingRegions, pickRegions, rewriteRegions, writeSparseImage } from './lib/images.js'
import { settled } from './lib/lazy-setups.js'
import { freePort } from './lib/ports.js'
import { firstLine, fmt, rotate, Samples } from './lib/samples.js'
import { rsyncArgs, rsyncDelta, startRsyncDaemon } from './lib/sync-peers.js'
import { dropCaches } from './lib/system.js'
import type { BenchContext, Benchmark, MetricResult } from './lib/types.js'
import { caughtUp, type NodeDirs, nodeDirs, startDr, startPrimary, type VmPrimary, waitFor } from './lib/volmirror-nodes.js'

/** Sizes: the issue's 4 GiB image; --quick 1 GiB. */
const FULL = { mib: 4096 }
const QUICK = { mib: 1024 }
const FILLED = 0.25
const CHANGED = 0.01
const REGION = 1 << 20
const NAME = 'src.raw'
/** BITMAP_LIMIT is the primary's --journal-limit in the bitmap outage: far below the change, so nearly all of it becomes dirty regions. */
const BITMAP_LIMIT = '4M'

/** Mode is how the primary keeps the outage's changes for the DR. */
type Mode = 'journal' | 'bitmap'

/** Env is the benchmark's fixture. */
interface Env {
  ctx: BenchContext
  mib: number
  src: string
  primaryDirs: NodeDirs
  primaryPort: number
  primary: VmPrimary
  drDirs: NodeDirs
  drId: string
  rsyncPort: number
  rsyncDest: string
  stopRsync: () => Promise<void>
}

/** restartPrimary stops the primary and starts it again on the same state and port, with `args`. */
async function restartPrimary (env: Env, args: string[]): Promise<void> {
  await env.primary.stop()
  env.primary = await startPrimary(env.primaryDirs, { app: env.ctx.app, cleanup: env.ctx.cleanup, port: env.primaryPort, args, ...prof(env.ctx) })
}

function prof (ctx: BenchContext): { cpuProfDir?: string } {
  return ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}
}

/** outage changes a seeded 1 % of the regions through the primary's mount (the DR is down) and waits until the primary's codes are computed again; returns the regions and what the primary holds for the DR. */
async function outage (env: Env, seed: number): Promise<{ regions: number[], drMode: string, dirtyBytes: number, journalBytes: number }> {
  const regions = pickRegions(env.mib * (1 << 20) / REGION, CHANGED, seed)
  await rewriteRegions(path.join(env.primaryDirs.mnt, NAME), regions, REGION, seed)
  await settled(env.ctx, env.primary, env.mib)
  const s = await env.primary.status()
  const d = s.drs.find(x => x.nodeId === env.drId)
  return { regions, drMode: d?.mode ?? 'unregistered', dirtyBytes: d?.dirtyBytes ?? 0, journalBytes: s.journal.bytes }
}

/** catchUp drops the page cache, restarts the DR and times it to consistent; returns seconds and bytes moved, after checking the changed regions. */
async function catchUp (env: Env, regions: number[]): Promise<{ seconds: number, bytes: number, detail: string }> {
  const last = (await env.primary.status()).seq.last
  await dropCaches()
  const t0 = performance.now()
  const dr = await startDr(env.drDirs, env.primary, { app: env.ctx.app, cleanup: env.ctx.cleanup, args: ['--hydrate-rate', 'unlimited'], ...prof(env.ctx) })
  try {
    const s = await waitFor('the restarted DR to be consistent', async () => { const s = await dr.status(); return caughtUp(s, 1, last) ? s : undefined }, 600_000, 50)
    const seconds = (performance.now() - t0) / 1000
    const bytes = s.replication.bytes + s.fetched.onDemandBytes + s.fetched.hydrationBytes
    const bad = await differingRegions(env.src, path.join(env.drDirs.images, NAME), regions, REGION)
    if (bad.length) throw new Error(`${bad.length} changed regions differ on the DR after it said consistent (first: ${bad[0]})`)
    const detail = `records ${s.replication.records} (${fmt(s.replication.bytes / 1e6)} MB), fetched ${fmt((s.fetched.onDemandBytes + s.fetched.hydrationBytes) / 1e6)} MB` +
      `, resyncs ${s.replication.resyncs}${s.resync ? ` (${s.resync.dirtyRegions} dirty regions)` : ''}, compared ${fmt(s.hydration.comparedBytes / 1e6)} MB`
    return { seconds, bytes, detail }
  } finally {
    await dr.stop()
  }
}

/** rsyncRun drops the page cache and times rsync's delta onto the pre-outage copy, then checks the changed regions. */
async function rsyncRun (env: Env, regions: number[]): Promise<{ seconds: number, bytes: number, detail: string }> {
  const dest = path.join(env.rsyncDest, 'work.raw')
  await dropCaches()
  const r = await rsyncDelta(env.src, env.rsyncPort, dest)
  const bad = await differingRegions(env.src, dest, regions, REGION)
  if (bad.length) throw new Error(`${bad.length} changed regions differ on the rsync copy (first: ${bad[0]})`)
  return { seconds: r.seconds, bytes: r.sentBytes, detail: `sent ${fmt(r.sentBytes / 1e6)} MB, literal ${fmt(r.literalBytes / 1e6)} MB, matched ${fmt(r.matchedBytes / 1e6)} MB` }
}

/** setup builds the fixture: image, primary (codes computed), a DR synced in full and stopped, the rsync daemon. */
async function setup (ctx: BenchContext, mib: number): Promise<Env> {
  const images = path.join(ctx.scratch, 'images')
  await mkdir(images, { recursive: true })
  const src = path.join(images, NAME)
  await writeSparseImage(src, mib * REGION, REGION, FILLED, 1)
  const p = path.join(ctx.scratch, 'primary')
  const primaryDirs = nodeDirs(p, path.join(p, 'primary.log'), images)
  const primaryPort = await freePort()
  const primary = await startPrimary(primaryDirs, { app: ctx.app, cleanup: ctx.cleanup, port: primaryPort, ...prof(ctx) })
  try {
    await settled(ctx, primary, mib)
    const d = path.join(ctx.scratch, 'dr')
    const drDirs = nodeDirs(d, path.join(d, 'dr.log'))
    const t0 = Date.now()
    const dr = await startDr(drDirs, primary, { app: ctx.app, cleanup: ctx.cleanup, args: ['--hydrate-rate', 'unlimited'], ...prof(ctx) })
    let drId: string
    try {
      const last = (await primary.status()).seq.last
      const s = await waitFor('the DR\'s initial sync', async () => { const s = await dr.status(); return caughtUp(s, 1, last) ? s : undefined }, 600_000, 100)
      drId = s.nodeId
    } finally {
      await dr.stop()
    }
    ctx.progress(`DR synced in full in ${((Date.now() - t0) / 1000).toFixed(1)} s (not timed), then stopped`)
    const rsyncDest = path.join(ctx.scratch, 'rsync-dest')
    await mkdir(rsyncDest, { recursive: true })
    const rsyncd = await startRsyncDaemon(rsyncDest, ctx.scratch, ctx.cleanup)
    return { ctx, mib, src, primaryDirs, primaryPort, primary, drDirs, drId, rsyncPort: rsyncd.port, rsyncDest, stopRsync: rsyncd.stop }
  } catch (err) {
    await primary.stop()
    throw err
  }
}

/** drResync is the `dr-resync` benchmark. */
export const drResync: Benchmark = {
  name: 'dr-resync',
  description: 'DR catching up after an outage in which 1% of a sparse image changed (journal and bitmap modes) vs rsync --inplace --no-whole-file',
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    ctx.progress(`dr-resync: ${params.mib} MiB sparse image (${FILLED * 100} % filled), ${CHANGED * 100} % of regions changed per outage, ${ctx.runs} run(s)`)
    const env = await setup(ctx, params.mib)
    try {
      for (let round = 0; round < ctx.runs; round++) {
        ctx.progress(`run ${round + 1}/${ctx.runs}`)
        // Outage 1, journal mode: rsync and the DR take turns on the same change.
        await runOk('cp', ['--sparse=always', env.src, path.join(env.rsyncDest, 'work.raw')], { timeoutMs: 600_000 })
        const o1 = await outage(env, 100 + 2 * round)
        for (const who of rotate(['volmirror', 'rsync'], round)) {
          const id = who === 'rsync' ? 'rsync' : 'journal'
          try {
            const r = who === 'rsync' ? await rsyncRun(env, o1.regions) : await catchUp(env, o1.regions)
            const note = who !== 'rsync' && o1.drMode !== 'journaling' ? `the primary held the outage as "${o1.drMode}", not journaling` : undefined
            samples.add(`${id}-time`, 'x', r.seconds, note)
            samples.add(`${id}-bytes`, 'x', r.bytes / 1e6)
            ctx.progress(`  ${(who === 'rsync' ? 'rsync' : 'volmirror, journal').padEnd(18)} ${fmt(r.seconds)} s; ${r.detail}`)
          } catch (err) {
            samples.add(`${id}-time`, 'x', NaN, `failed: ${firstLine(err)}`)
            samples.add(`${id}-bytes`, 'x', NaN)
            ctx.progress(`  ${who}: FAILED: ${firstLine(err)}`)
          }
        }
        // Outage 2, bitmap mode: a journal limit far below the change.
        try {
          await restartPrimary(env, ['--journal-limit', BITMAP_LIMIT])
          const o2 = await outage(env, 101 + 2 * round)
          const r = await catchUp(env, o2.regions)
          const note = o2.drMode !== 'bitmap' ? `the primary held the outage as "${o2.drMode}", not bitmap` : undefined
          samples.add('bitmap-time', 'x', r.seconds, note)
          samples.add('bitmap-bytes', 'x', r.bytes / 1e6)
          ctx.progress(`  ${'volmirror, bitmap'.padEnd(18)} ${fmt(r.seconds)} s; ${r.detail} (primary: ${o2.drMode}, ${fmt(o2.dirtyBytes / 1e6)} MB dirty, journal ${fmt(o2.journalBytes / 1e6)} MB)`)
        } catch (err) {
          samples.add('bitmap-time', 'x', NaN, `failed: ${firstLine(err)}`)
          samples.add('bitmap-bytes', 'x', NaN)
          ctx.progress(`  volmirror, bitmap: FAILED: ${firstLine(err)}`)
        } finally {
          await restartPrimary(env, [])
        }
      }
    } finally {
      await env.stopRsync()
      await env.primary.stop()
    }
    const rsyncCmd = `rsync --daemon --no-detach --address=127.0.0.1 --port=PORT --config=CONF; touch -d 2000-01-01 DEST; rsync ${rsyncArgs('src.raw', 0, 'work.raw').join(' ').replace(':0/', ':PORT/')}`
    const label = `${params.mib / 1024} GiB sparse, ${CHANGED * 100} % of regions changed`
    const times = (mode: Mode): MetricResult => ({
      metric: `re-sync ${label}, ${mode === 'journal' ? 'journal mode' : `bitmap mode (--journal-limit ${BITMAP_LIMIT})`}: wall time`,
      unit: 's',
      better: 'lower',
      volmirror: samples.figure(`${mode}-time`, 'x'),
      comparisons: [{ name: 'rsync --inplace --no-whole-file (daemon)', role: 'peer', figure: samples.figure('rsync-time', 'x'), target: 1 / 0.3 }],
      note: 'target "<= 0.3x rsync\'s wall time": rsync/volmirror >= 3.3; volmirror: from restarting the DR to status consistent',
      command: `volmirror dr (restart, same state) --hydrate-rate unlimited | ${rsyncCmd}`,
    })
    const bytes = (mode: Mode): MetricResult => ({
      metric: `re-sync ${label}, ${mode} mode: bytes moved`,
      unit: 'MB',
      better: 'lower',
      volmirror: samples.figure(`${mode}-bytes`, 'x'),
      comparisons: [{ name: 'rsync "Total bytes sent"', role: 'peer', figure: samples.figure('rsync-bytes', 'x') }],
      note: 'volmirror: records shipped + regions fetched, from the DR\'s status',
    })
    return [times('journal'), bytes('journal'), times('bitmap'), bytes('bitmap')]
  },
}
