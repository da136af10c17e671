/**
 * dr-initial-sync: a new DR copying a sparse image from scratch, next to
 * PEERS.md's `qemu-img convert` from a `qemu-nbd` export on 127.0.0.1.
 *
 * The image: 4 GiB raw, 25 % of its 1 MiB regions random bytes, the rest
 * holes (seeded). One primary serves it for the whole benchmark, started
 * first and left until its region codes are computed (a DR joins a primary
 * that has been running); one qemu-nbd exports the same file. Each run, in
 * turns: qemu-img convert to a new file; and a fresh DR (new state, empty
 * image directory, hydration unlimited) timed from its start to the moment
 * its status says consistent and caught up. The page cache is dropped
 * before each. Both copies must stay sparse: the second metric is the disk
 * space each copy takes (target: the DR's within 5 % of the source's), and
 * a sample of regions of each copy is compared with the source.
 */
import { mkdir, rm } from 'node:fs/promises'
import path from 'node:path'
import { allocatedBytes, differingRegions, sampleRegions, writeSparseImage } from './lib/images.js'
import { settled } from './lib/lazy-setups.js'
import { firstLine, fmt, rotate, Samples } from './lib/samples.js'
import { qemuConvert, qemuConvertArgs, qemuNbdArgs, startQemuNbd } from './lib/sync-peers.js'
import { dropCaches } from './lib/system.js'
import type { BenchContext, Benchmark } from './lib/types.js'
import { caughtUp, startDr, startPrimary, waitFor, type VmPrimary } from './lib/volmirror-nodes.js'

/** Sizes: the issue's 4 GiB image; --quick 1 GiB. */
const FULL = { mib: 4096 }
const QUICK = { mib: 1024 }
const FILLED = 0.25
const SEED = 1
const REGION = 1 << 20
const NAME = 'src.raw'

/** Fixture is the source image, the primary serving its directory and qemu-nbd exporting it. */
interface Fixture { src: string, primary: VmPrimary, nbdPort: number, sourceAllocated: number, regions: number }

type Setup = 'volmirror' | 'qemu'

/** Copied is one finished copy: its wall time, the file, its allocation, and (volmirror) the bytes the DR fetched. */
interface Copied { seconds: number, allocated: number, copy: string, fetched?: number }

/** copyWithQemu is one qemu-img convert into a new file; returns seconds and the copy's allocation. */
async function copyWithQemu (f: Fixture, dir: string): Promise<Copied> {
  const copy = path.join(dir, 'copy.raw')
  await dropCaches()
  const seconds = await qemuConvert(f.nbdPort, copy)
  return { seconds, allocated: await allocatedBytes(copy), copy }
}

/** syncWithDr starts a fresh DR and times it from its start to consistent; returns seconds, the DR image's allocation, what it fetched. */
async function syncWithDr (ctx: BenchContext, f: Fixture, dir: string): Promise<Copied> {
  const dirs = { images: path.join(dir, 'dr-images'), state: path.join(dir, 'dr-state'), mnt: path.join(dir, 'dr-mnt'), log: path.join(dir, 'dr.log') }
  const last = (await f.primary.status()).seq.last
  await dropCaches()
  const t0 = performance.now()
  const dr = await startDr(dirs, f.primary, { app: ctx.app, cleanup: ctx.cleanup, args: ['--hydrate-rate', 'unlimited'], ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}) })
  try {
    const s = await waitFor('the new DR to be consistent', async () => { const s = await dr.status(); return caughtUp(s, 1, last) ? s : undefined }, 600_000, 50)
    const seconds = (performance.now() - t0) / 1000
    const copy = path.join(dirs.images, NAME)
    return { seconds, allocated: await allocatedBytes(copy), copy, fetched: s.fetched.hydrationBytes + s.fetched.onDemandBytes }
  } finally {
    await dr.stop()
  }
}

/** drInitialSync is the `dr-initial-sync` benchmark. */
export const drInitialSync: Benchmark = {
  name: 'dr-initial-sync',
  description: 'initial sync of a sparse image (25% data) to a new DR vs qemu-img convert from qemu-nbd; wall time and allocation',
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    const size = params.mib * REGION
    const srcDir = path.join(ctx.scratch, 'images')
    await mkdir(srcDir, { recursive: true })
    const src = path.join(srcDir, NAME)
    ctx.progress(`dr-initial-sync: ${params.mib} MiB sparse image, ${FILLED * 100} % of its regions filled, ${ctx.runs} run(s)`)
    await writeSparseImage(src, size, REGION, FILLED, SEED)
    const sourceAllocated = await allocatedBytes(src)
    const p = path.join(ctx.scratch, 'primary')
    const primary = await startPrimary({ images: srcDir, state: path.join(p, 'state'), mnt: path.join(p, 'mnt'), log: path.join(p, 'primary.log') },
      { app: ctx.app, cleanup: ctx.cleanup, ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}) })
    try {
      await settled(ctx, primary, params.mib)
      const nbd = await startQemuNbd(src, path.join(ctx.scratch, 'qemu-nbd.log'), ctx.cleanup)
      try {
        const f: Fixture = { src, primary, nbdPort: nbd.port, sourceAllocated, regions: size / REGION }
        for (let round = 0; round < ctx.runs; round++) {
          const order = rotate<Setup>(['volmirror', 'qemu'], round)
          ctx.progress(`run ${round + 1}/${ctx.runs}: ${order.join(', ')}`)
          for (const setup of order) {
            const dir = path.join(ctx.scratch, `run${round + 1}-${setup}`)
            await mkdir(dir, { recursive: true })
            try {
              const r = setup === 'qemu' ? await copyWithQemu(f, dir) : await syncWithDr(ctx, f, dir)
              const bad = await differingRegions(src, r.copy, sampleRegions(f.regions, 128, 7 + round), REGION)
              const note = bad.length ? `${bad.length} sampled regions differ from the source (first: ${bad[0]})` : undefined
              samples.add('time', setup, bad.length ? NaN : r.seconds, note)
              samples.add('allocated', setup, r.allocated / 2 ** 20)
              ctx.progress(`  ${setup.padEnd(10)} ${fmt(r.seconds)} s, allocated ${fmt(r.allocated / 2 ** 20)} MiB (source ${fmt(sourceAllocated / 2 ** 20)} MiB)` +
                `${r.fetched !== undefined ? `, fetched ${fmt(r.fetched / 2 ** 20)} MiB` : ''}${note ? ` [${note}]` : ''}`)
            } catch (err) {
              samples.add('time', setup, NaN, `failed: ${firstLine(err)}`)
              samples.add('allocated', setup, NaN)
              ctx.progress(`  ${setup}: FAILED: ${firstLine(err)}`)
            } finally {
              await rm(dir, { recursive: true, force: true }).catch(() => {})
            }
          }
        }
      } finally {
        await nbd.stop()
      }
    } finally {
      await primary.stop()
    }
    const label = `${params.mib / 1024} GiB sparse, ${FILLED * 100} % filled`
    const source = { median: sourceAllocated / 2 ** 20, runs: [sourceAllocated / 2 ** 20] }
    return [
      {
        metric: `initial sync ${label}: wall time`,
        unit: 's',
        better: 'lower',
        volmirror: samples.figure('time', 'volmirror'),
        comparisons: [{ name: 'qemu-img convert from qemu-nbd', role: 'peer', figure: samples.figure('time', 'qemu'), target: 1.0 }],
        note: 'volmirror: from starting a fresh DR (hydration unlimited) to status consistent; neither side\'s time includes flushing the copy to disk',
        command: `volmirror dr --images EMPTY --state NEW --mount MNT --primary URL --token-file TOKEN --hydrate-rate unlimited | qemu-nbd ${qemuNbdArgs('src.raw', 0).join(' ').replace(' 0 ', ' PORT ')}; qemu-img ${qemuConvertArgs(0, 'copy.raw').join(' ').replace(':0/', ':PORT/')}`,
      },
      {
        metric: `initial sync ${label}: space allocated by the copy`,
        unit: 'MiB',
        better: 'lower',
        volmirror: samples.figure('allocated', 'volmirror'),
        comparisons: [
          { name: 'the source image', role: 'peer', figure: source, target: 0.95 },
          { name: 'qemu-img convert copy', role: 'reference', figure: samples.figure('allocated', 'qemu') },
        ],
        note: 'allocation target "within 5 % of the source": source/DR >= 0.95',
      },
    ]
  },
}
