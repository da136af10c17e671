/**
 * dr-present-read: reads of regions a DR already has, through its mount,
 * against bindfs (PEERS.md's C passthrough options) over the very same
 * image directory: what a VM booted from a DR copy, or a backup tool
 * reading it, gets once the copy is complete.
 *
 * One primary serves a 1 GiB random volume; a DR (native data path, the
 * default) and a DR with `--data-path js` (reference) each hydrate it in full
 * and stay up. Each run, in turns: for each setup the page cache is dropped,
 * then `dd bs=1M` reads the volume, then (cold again) fio 4 KiB random reads
 * with psync and with libaio qd16 direct. bindfs runs on the native DR's
 * image directory, so both read the same blocks of the same disk.
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { ddRead, ddReadCommand } from './lib/dd.js'
import { writeRandomFile } from './lib/files.js'
import { fioArgs, runFio, type FioJob } from './lib/fio.js'
import { MountProcess } from './lib/mount-process.js'
import { firstLine, fmt, rotate, Samples } from './lib/samples.js'
import { dropCaches } from './lib/system.js'
import type { Benchmark, MetricResult } from './lib/types.js'
import { caughtUp, nodeDirs, startDr, startPrimary, type VmDr, waitFor, type NodeDirs } from './lib/volmirror-nodes.js'

const FULL = { mib: 1024, runtimeS: 8 }
const QUICK = { mib: 256, runtimeS: 2 }
const NAME = 'img.bin'

interface Reader { id: string, label: string, dir: string }

/** drPresentRead is the `dr-present-read` benchmark. */
export const drPresentRead: Benchmark = {
  name: 'dr-present-read',
  description: 'reads of a fully hydrated DR through its mount (dd, fio 4k random psync and qd16) vs bindfs over the same image directory',
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    const images = path.join(ctx.scratch, 'images')
    await mkdir(images, { recursive: true })
    await writeRandomFile(path.join(images, NAME), params.mib)
    ctx.progress(`dr-present-read: ${params.mib} MiB random volume, hydrated DRs, fio ${params.runtimeS} s, ${ctx.runs} run(s)`)
    const node = (n: string): NodeDirs => nodeDirs(path.join(ctx.scratch, n), path.join(ctx.scratch, n, `${n}.log`))
    const job = (dir: string, more: Partial<FioJob>): FioJob => ({ filename: path.join(dir, NAME), size: params.mib * 2 ** 20, rw: 'randread', bs: '4k', ioengine: 'psync', runtimeS: params.runtimeS, readonly: true, ...more })
    const primary = await startPrimary({ ...node('primary'), images }, { app: ctx.app, cleanup: ctx.cleanup })
    const drs: VmDr[] = []
    try {
      const last = (await primary.status()).seq.last
      for (const [n, extra] of [['dr', []], ['dr-js', ['--data-path', 'js']]] as Array<[string, string[]]>) {
        const dr = await startDr(node(n), primary, { app: ctx.app, cleanup: ctx.cleanup, args: ['--hydrate-rate', 'unlimited', ...extra] })
        drs.push(dr)
        await waitFor(`${n} to hydrate in full`, async () => {
          const s = await dr.status()
          return caughtUp(s, 1, last) && s.hydration.complete
        }, 300_000, 200)
      }
      // Both nodes hash their regions in idle time (region codes): measure
      // once that is done, or those reads compete with the ones measured.
      const regions = params.mib
      await waitFor('the nodes to compute their region codes', async () => {
        if ((await primary.status()).codes.valid < regions) return false
        for (const dr of drs) if ((await dr.status()).codes.valid < regions) return false
        return true
      }, (params.mib / 16 + 60) * 1000, 250)
      const bindDirs = node('bindfs')
      await mkdir(bindDirs.mnt, { recursive: true })
      const bind = await MountProcess.start({
        name: 'bindfs', cmd: 'bindfs', args: ['-f', '--multithreaded', '-o', 'big_writes,max_write=131072', drs[0]!.dirs.images, bindDirs.mnt],
        mountPoint: bindDirs.mnt, logFile: bindDirs.log, cleanup: ctx.cleanup,
      })
      const readers: Reader[] = [
        { id: 'dr', label: 'volmirror DR', dir: drs[0]!.dirs.mnt },
        { id: 'bindfs', label: 'bindfs mt+big_writes over the DR images', dir: bindDirs.mnt },
        { id: 'dr-js', label: 'volmirror DR, --data-path js', dir: drs[1]!.dirs.mnt },
      ]
      try {
        for (let round = 0; round < ctx.runs; round++) {
          for (const r of rotate(readers, round)) {
            const cold = async (): Promise<string | undefined> => (await dropCaches()) ? undefined : 'page cache NOT dropped (needs root)'
            try {
              let note = await cold()
              const d = await ddRead(path.join(r.dir, NAME))
              samples.add('seq', r.id, d.bytes === params.mib * 2 ** 20 ? d.mbPerS : NaN, note ?? (d.bytes !== params.mib * 2 ** 20 ? `read ${d.bytes} bytes` : undefined))
              note = await cold()
              const a = await runFio(job(r.dir, {}))
              samples.add('rand', r.id, a.iops, note)
              note = await cold()
              const b = await runFio(job(r.dir, { ioengine: 'libaio', iodepth: 16, direct: true }))
              samples.add('qd16', r.id, b.iops, note)
              ctx.progress(`  ${r.label.padEnd(40)} dd ${fmt(d.mbPerS)} MB/s; 4k rand ${fmt(a.iops)} IOPS; qd16 ${fmt(b.iops)} IOPS`)
            } catch (err) {
              for (const m of ['seq', 'rand', 'qd16']) samples.add(m, r.id, NaN, `failed: ${firstLine(err)}`)
              ctx.progress(`  ${r.label}: FAILED: ${firstLine(err)}`)
            }
          }
        }
      } finally {
        await bind.stop()
      }
    } finally {
      for (const dr of drs) await dr.stop()
      await primary.stop()
    }
    const size = params.mib >= 1024 ? `${params.mib / 1024} GiB` : `${params.mib} MiB`
    const metric = (id: string, label: string, unit: string, command: string): MetricResult => ({
      metric: label, unit, better: 'higher', volmirror: samples.figure(id, 'dr'),
      comparisons: [
        { name: 'bindfs mt+big_writes over the DR images', role: 'peer', figure: samples.figure(id, 'bindfs'), target: 0.9 },
        { name: 'volmirror DR, --data-path js', role: 'reference', figure: samples.figure(id, 'dr-js') },
      ],
      command,
    })
    return [
      metric('seq', `DR present regions: cold seq read ${size} (dd bs=1M)`, 'MB/s', `sync; echo 3 > /proc/sys/vm/drop_caches; ${ddReadCommand(`MNT/${NAME}`).join(' ')}`),
      metric('rand', 'DR present regions: 4k randread cold psync', 'IOPS', `fio ${fioArgs(job('MNT', {})).join(' ')}`),
      metric('qd16', 'DR present regions: 4k randread cold libaio qd16 direct', 'IOPS', `fio ${fioArgs(job('MNT', { ioengine: 'libaio', iodepth: 16, direct: true })).join(' ')}`),
    ]
  },
}
