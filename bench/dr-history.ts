/**
 * dr-history: what recovery points cost (`dr --history`): the space the
 * undo entries take per GB written on the primary, and how fast a
 * point-in-time view (`volmirror mount-at`) reads compared with the live DR
 * mount over the same images.
 *
 * A primary serves a 1 GiB random volume; a DR keeping history hydrates it
 * and becomes consistent (the first recovery point). Then 512 MiB of new
 * random data is written over the first half of the volume through the
 * primary's mount (dd, 1 MiB, fsync), and the DR catches up: its undo
 * entries grow by what those writes overwrote. A view of the first point
 * then reads half from undo entries and half from the live images. Each
 * run, in turns, after dropping the page cache: `dd bs=1M` of the volume
 * through the view and through the live DR mount. No peer: the live mount
 * is the reference (view / live), and the space figure stands alone.
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { ddRead, ddWrite } from './lib/dd.js'
import { writeRandomFile } from './lib/files.js'
import { MountProcess } from './lib/mount-process.js'
import { firstLine, fmt, rotate, Samples } from './lib/samples.js'
import { dropCaches } from './lib/system.js'
import type { Benchmark, MetricResult } from './lib/types.js'
import { caughtUp, nodeArgs, nodeDirs, startDr, startPrimary, waitFor, type NodeDirs } from './lib/volmirror-nodes.js'

const FULL = { mib: 1024, writeMib: 512 }
const QUICK = { mib: 256, writeMib: 128 }
const NAME = 'img.bin'

/** drHistory is the `dr-history` benchmark. */
export const drHistory: Benchmark = {
  name: 'dr-history',
  description: 'recovery points: undo space per GB written, and a point-in-time view\'s read throughput vs the live DR mount',
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    const images = path.join(ctx.scratch, 'images')
    await mkdir(images, { recursive: true })
    await writeRandomFile(path.join(images, NAME), params.mib)
    const source = path.join(ctx.scratch, 'new.bin')
    await writeRandomFile(source, params.writeMib)
    ctx.progress(`dr-history: ${params.mib} MiB volume, ${params.writeMib} MiB overwritten, view vs live reads, ${ctx.runs} run(s)`)
    const node = (n: string): NodeDirs => nodeDirs(path.join(ctx.scratch, n), path.join(ctx.scratch, n, `${n}.log`))
    const primary = await startPrimary({ ...node('primary'), images }, { app: ctx.app, cleanup: ctx.cleanup })
    try {
      const dr = await startDr(node('dr'), primary, { app: ctx.app, cleanup: ctx.cleanup, args: ['--hydrate-rate', 'unlimited', '--history', '24h', '--history-size', '100G'] })
      try {
        const consistent = async (): Promise<number> => {
          const last = (await primary.status()).seq.last
          const s = await waitFor('the DR to be consistent with a recovery point', async () => {
            const x = await dr.status()
            return caughtUp(x, 1, last) && x.recovery?.last && x.recovery.last.seq >= last ? x : undefined
          }, 300_000, 100)
          return s.recovery!.last!.seq
        }
        const first = await consistent()
        const before = (await dr.status()).recovery!.bytes
        const mbs = await ddWrite({ input: source, output: path.join(primary.dirs.mnt, NAME), countMiB: params.writeMib })
        await consistent()
        const grown = (await dr.status()).recovery!.bytes - before
        const written = params.writeMib * 2 ** 20
        samples.add('space', 'dr', grown / written)
        ctx.progress(`  wrote ${params.writeMib} MiB at ${fmt(mbs)} MB/s; undo entries grew by ${fmt(grown / 2 ** 20)} MiB (${fmt(grown / written)} bytes per byte written)`)
        const viewDirs = node('view')
        await mkdir(viewDirs.mnt, { recursive: true })
        const view = await MountProcess.start({
          name: 'volmirror mount-at', cmd: process.execPath,
          args: nodeArgs(ctx.app, ['mount-at', '--state', dr.dirs.state, '--seq', String(first), '--mount', viewDirs.mnt]),
          mountPoint: viewDirs.mnt, logFile: viewDirs.log, cleanup: ctx.cleanup,
        })
        try {
          const readers = [{ id: 'view', dir: viewDirs.mnt, label: `view of seq ${first}` }, { id: 'live', dir: dr.dirs.mnt, label: 'live DR mount' }]
          for (let round = 0; round < ctx.runs; round++) {
            for (const r of rotate(readers, round)) {
              try {
                const note = (await dropCaches()) ? undefined : 'page cache NOT dropped (needs root)'
                const d = await ddRead(path.join(r.dir, NAME))
                samples.add('read', r.id, d.bytes === params.mib * 2 ** 20 ? d.mbPerS : NaN, note ?? (d.bytes !== params.mib * 2 ** 20 ? `read ${d.bytes} bytes` : undefined))
                ctx.progress(`  ${r.label.padEnd(20)} dd ${fmt(d.mbPerS)} MB/s`)
              } catch (err) {
                samples.add('read', r.id, NaN, `failed: ${firstLine(err)}`)
                ctx.progress(`  ${r.label}: FAILED: ${firstLine(err)}`)
              }
            }
          }
        } finally {
          await view.stop()
        }
      } finally {
        await dr.stop()
      }
    } finally {
      await primary.stop()
    }
    const out: MetricResult[] = [
      {
        metric: `point-in-time view: cold seq read of ${params.mib} MiB (dd bs=1M), half of it from undo entries`, unit: 'MB/s', better: 'higher',
        volmirror: samples.figure('read', 'view'),
        comparisons: [{ name: 'the live DR mount, same images', role: 'reference', figure: samples.figure('read', 'live') }],
        command: 'volmirror mount-at --state DR --seq FIRST --mount MNT; sync; echo 3 > /proc/sys/vm/drop_caches; dd if=MNT/img.bin of=/dev/null bs=1M',
      },
      {
        metric: 'history: undo bytes kept per byte written on the primary', unit: 'x', better: 'lower', volmirror: samples.figure('space', 'dr'), comparisons: [],
        command: `dd if=new.bin of=PRIMARY/img.bin bs=1M count=${params.writeMib} conv=notrunc,fsync; DR status recovery.bytes before and after`,
      },
    ]
    return out
  },
}
