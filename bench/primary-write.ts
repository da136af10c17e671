/**
 * primary-write: volmirror's primary write path against bindfs (a C FUSE
 * passthrough), exactly as PEERS.md measures it, with references: the
 * native directory (no FUSE), a bare fuse-native passthrough in Node (no
 * journal: what FUSE in Node costs by itself), and volmirror on its
 * JavaScript data path (`--data-path js`: what the native data path replaced).
 *
 * Sequential writes are held to the disk's own rate halved: every byte is
 * written twice (journal and image) to the same disk. The primary's peak
 * resident memory over all of its metrics is reported too (it must not grow
 * with the data written).
 *
 * Each run mounts each setup on a fresh target file (written in full
 * beforehand, so all overwrite allocated blocks), runs every metric on it,
 * and stops it; the setups take turns, in an order rotated every run, so
 * drift over the run hits all of them alike. Figures are medians of the runs.
 *
 * All-zero writes become payload-less records in volmirror, which would
 * flatter it on `dd if=/dev/zero`; the sequential target is therefore checked
 * on the same dd copying random data.
 */
import { mkdir, rm } from 'node:fs/promises'
import path from 'node:path'
import { ddCommand, ddWrite, type DdWrite } from './lib/dd.js'
import { fioArgs, runFio, type FioJob } from './lib/fio.js'
import { createTarget, warm, writeRandomFile } from './lib/files.js'
import { sampleRss } from './lib/rss.js'
import { bindfs, native, passthrough, volmirror, volmirrorJs, type Setup } from './lib/setups.js'
import { median } from './lib/stats.js'
import { dropCaches, syncAll } from './lib/system.js'
import type { BenchContext, Benchmark, Comparison, Figure, MetricResult } from './lib/types.js'

/** Sizes: a full run follows PEERS.md; --quick shrinks everything. */
interface Params { fileMiB: number, ddMiB: number, runtimeS: number }
const FULL: Params = { fileMiB: 1024, ddMiB: 512, runtimeS: 8 }
const QUICK: Params = { fileMiB: 256, ddMiB: 64, runtimeS: 2 }

/** Env is what a metric needs to run against one mounted setup. */
interface Env { dir: string, params: Params, randomFile: string }

/** Metric is one measurement: a dd copy or a fio job; `target` is the least volmirror/bindfs ratio the issue asks for. */
interface Metric {
  id: string
  label: string
  unit: string
  target?: number
  note?: string
  /** The peer the target is against: bindfs (default), or the disk's own rate halved. */
  peer?: 'bindfs' | 'disk/2'
  /** Untimed preparation; returns a note when the run is not what it claims (caches not dropped). */
  prepare: (env: Env) => Promise<string | undefined>
  dd?: (env: Env) => DdWrite
  fio?: (env: Env) => FioJob
}

const FILE = 'f'
const synced = async (): Promise<undefined> => { await syncAll(); return undefined }
const fioJob = (e: Env, rw: FioJob['rw'], more: Partial<FioJob> = {}): FioJob =>
  ({ filename: path.join(e.dir, FILE), size: e.params.fileMiB * 1048576, rw, bs: '4k', ioengine: 'psync', runtimeS: e.params.runtimeS, ...more })

const METRICS: Metric[] = [
  {
    id: 'dd-zero', label: 'seq write 1 MiB, zeros (dd)', unit: 'MB/s',
    note: 'volmirror journals all-zero writes without payload: flattering, no target',
    prepare: synced,
    dd: (e) => ({ input: '/dev/zero', output: path.join(e.dir, FILE), countMiB: e.params.ddMiB }),
  },
  {
    id: 'dd-random', label: 'seq write 1 MiB, random (dd)', unit: 'MB/s', target: 0.95, peer: 'disk/2',
    prepare: async (e) => { await syncAll(); await warm(e.randomFile); return undefined },
    dd: (e) => ({ input: e.randomFile, output: path.join(e.dir, FILE), countMiB: e.params.ddMiB }),
  },
  {
    id: 'randwrite-psync', label: '4k randwrite psync', unit: 'IOPS', target: 0.9,
    prepare: synced,
    fio: (e) => fioJob(e, 'randwrite'),
  },
  {
    id: 'randwrite-qd16', label: '4k randwrite libaio qd16 direct', unit: 'IOPS', target: 0.9,
    prepare: synced,
    fio: (e) => fioJob(e, 'randwrite', { ioengine: 'libaio', iodepth: 16, direct: true }),
  },
  {
    id: 'randread-cold', label: '4k randread cold psync', unit: 'IOPS', target: 0.9,
    prepare: async () => (await dropCaches()) ? undefined : 'page cache NOT dropped (needs root): warm figure',
    fio: (e) => fioJob(e, 'randread'),
  },
  {
    id: 'randread-qd16', label: '4k randread cold libaio qd16 direct', unit: 'IOPS', target: 0.9,
    prepare: async () => (await dropCaches()) ? undefined : 'page cache NOT dropped (needs root): warm figure',
    fio: (e) => fioJob(e, 'randread', { ioengine: 'libaio', iodepth: 16, direct: true }),
  },
]

/** RSS_ID is the pseudo-metric of a setup's peak resident memory over all its metrics. */
const RSS_ID = 'rss'


async function measure (m: Metric, env: Env): Promise<number> {
  if (m.dd) return await ddWrite(m.dd(env))
  return (await runFio(m.fio!(env))).iops
}

/** command is the metric's command line with MNT for the setup's directory, for the JSON. */
function command (m: Metric, params: Params, randomFile: string): string {
  const env: Env = { dir: 'MNT', params, randomFile }
  if (m.dd) return ddCommand(m.dd(env)).join(' ')
  return ['fio', ...fioArgs(m.fio!(env))].join(' ')
}

const SETUPS: Setup[] = [native, bindfs, passthrough, volmirrorJs, volmirror]

/** Samples holds every run's figure: samples[metric][setup]. */
type Samples = Record<string, Record<string, { runs: number[], notes: string[] }>>

/** rotate returns `xs` starting at index `k`. */
function rotate<T> (xs: T[], k: number): T[] {
  const i = k % xs.length
  return [...xs.slice(i), ...xs.slice(0, i)]
}

async function measureSetup (setup: Setup, round: number, ctx: BenchContext, params: Params, randomFile: string, samples: Samples): Promise<void> {
  const root = path.join(ctx.scratch, `run${round + 1}-${setup.id}`)
  const dirs = { src: path.join(root, 'src'), mnt: path.join(root, 'mnt'), state: path.join(root, 'state'), log: path.join(root, `${setup.id}.log`), app: ctx.app }
  await mkdir(dirs.src, { recursive: true })
  await mkdir(dirs.mnt, { recursive: true })
  const record = (m: Metric, value: number, note?: string): void => {
    const s = samples[m.id]![setup.id]!
    s.runs.push(value)
    if (note) s.notes.push(`run ${round + 1}: ${note}`)
  }
  try {
    await createTarget(path.join(dirs.src, FILE), params.fileMiB)
    let running
    try {
      running = await setup.start(dirs, ctx.cleanup)
    } catch (err) {
      for (const m of METRICS) record(m, NaN, `did not start: ${firstLine(err)}`)
      ctx.progress(`  ${setup.label}: did not start: ${(err as Error)?.message ?? String(err)}`)
      return
    }
    const rss = running.pid !== undefined && setup.id.startsWith('volmirror') ? sampleRss(running.pid) : undefined
    try {
      const env: Env = { dir: running.dir, params, randomFile }
      for (const m of METRICS) {
        try {
          const note = await m.prepare(env)
          const value = await measure(m, env)
          record(m, value, note)
          ctx.progress(`  ${setup.label.padEnd(36)} ${m.label.padEnd(32)} ${fmt(value)} ${m.unit}`)
        } catch (err) {
          record(m, NaN, `failed: ${firstLine(err)}`)
          ctx.progress(`  ${setup.label.padEnd(36)} ${m.label.padEnd(32)} FAILED: ${firstLine(err)}`)
        }
      }
    } finally {
      if (rss) {
        const r = await rss()
        const s = samples[RSS_ID]![setup.id]!
        s.runs.push(r.peak)
        s.notes.push(`run ${round + 1}: ${r.first.toFixed(0)} MiB after start, ${r.last.toFixed(0)} MiB at the end, peak ${r.peak.toFixed(0)} MiB`)
        ctx.progress(`  ${setup.label.padEnd(36)} ${'peak RSS'.padEnd(32)} ${fmt(r.peak)} MiB (${r.first.toFixed(0)} -> ${r.last.toFixed(0)})`)
      }
      await running.stop()
    }
  } finally {
    await rm(root, { recursive: true, force: true }).catch(() => {})
  }
}

function firstLine (err: unknown): string {
  return ((err as Error)?.message ?? String(err)).split('\n')[0]!
}

function fmt (v: number): string {
  return v >= 100 ? v.toFixed(0) : v.toFixed(1)
}

function figure (s: { runs: number[], notes: string[] }): Figure {
  return { median: median(s.runs), runs: s.runs, ...(s.notes.length ? { notes: s.notes } : {}) }
}

/** halved is a figure at half the rate: the disk's rate when every byte is written twice. */
function halved (f: Figure): Figure {
  return { median: f.median / 2, runs: f.runs.map(r => r / 2), ...(f.notes ? { notes: f.notes } : {}) }
}

function results (samples: Samples, params: Params, randomFile: string): MetricResult[] {
  const out: MetricResult[] = METRICS.map((m) => {
    const by = samples[m.id]!
    const target = m.target ? { target: m.target } : {}
    const comparisons: Comparison[] = m.peer === 'disk/2'
      ? [
          { name: 'native disk / 2 (journal and image: two writes per byte)', role: 'peer', figure: halved(figure(by[native.id]!)), ...target },
          { name: bindfs.label, role: 'reference', figure: figure(by[bindfs.id]!) },
        ]
      : [{ name: bindfs.label, role: 'peer', figure: figure(by[bindfs.id]!), ...target }]
    comparisons.push(
      { name: volmirrorJs.label, role: 'reference', figure: figure(by[volmirrorJs.id]!) },
      { name: passthrough.label, role: 'reference', figure: figure(by[passthrough.id]!) },
      { name: native.label, role: 'reference', figure: figure(by[native.id]!) },
    )
    return { metric: m.label, unit: m.unit, better: 'higher', volmirror: figure(by[volmirror.id]!), comparisons, ...(m.note ? { note: m.note } : {}), command: command(m, params, randomFile) }
  })
  const rss = samples[RSS_ID]!
  out.push({
    metric: 'primary peak RSS during these writes', unit: 'MiB', better: 'lower', volmirror: figure(rss[volmirror.id]!),
    comparisons: [{ name: volmirrorJs.label, role: 'reference', figure: figure(rss[volmirrorJs.id]!) }],
    note: 'resident memory of the volmirror process, sampled every 200 ms over all the metrics above (bounded: it must not grow with the data written)',
  })
  return out
}

/** primaryWrite is the `primary-write` benchmark. */
export const primaryWrite: Benchmark = {
  name: 'primary-write',
  description: 'primary write path: dd and fio on volmirror vs bindfs, a bare Node FUSE passthrough, and native',
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const samples: Samples = {}
    for (const id of [...METRICS.map(m => m.id), RSS_ID]) samples[id] = Object.fromEntries(SETUPS.map(s => [s.id, { runs: [], notes: [] }]))
    const randomFile = path.join(ctx.scratch, 'random.bin')
    ctx.progress(`primary-write: ${params.ddMiB} MiB random source, ${params.fileMiB} MiB target per setup, fio ${params.runtimeS} s, ${ctx.runs} run(s)`)
    await writeRandomFile(randomFile, params.ddMiB)
    for (let round = 0; round < ctx.runs; round++) {
      const order = rotate(SETUPS, round)
      ctx.progress(`primary-write run ${round + 1}/${ctx.runs}: ${order.map(s => s.id).join(', ')}`)
      for (const setup of order) {
        try {
          await measureSetup(setup, round, ctx, params, randomFile, samples)
        } catch (err) {
          ctx.progress(`  ${setup.label}: ${firstLine(err)}`)
        }
      }
    }
    return results(samples, params, randomFile)
  },
}
