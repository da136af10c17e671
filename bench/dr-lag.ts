/**
 * dr-lag: replication lag (the RPO window) while an application writes
 * steadily to the primary: fio writing 100 MB/s (`--rate=100m`, sequential
 * 64 KiB psync writes) to a 1 GiB volume through the primary's mount for
 * 30 s, with a DR following (hydration unlimited, consistent before fio
 * starts). The DR's `lag.seconds` (age of the oldest write it has not
 * applied) is sampled every 100 ms from its control socket, what
 * `volmirror status --json` prints, for as long as fio runs.
 *
 * No peer does this; the figures stand against the target (p99
 * under 0.3 s). The resident memory of both nodes is sampled meanwhile:
 * the peak, and how much it grew from the first to the last sample. Per run: p50 and p99 of the samples, and the rate fio
 * reached (so a primary that could not take 100 MB/s shows); reported:
 * medians over the runs. One primary/DR pair serves every run.
 */
import { mkdir, open } from 'node:fs/promises'
import path from 'node:path'
import { fioArgs, runFio, type FioJob } from './lib/fio.js'
import { firstLine, fmt, Samples } from './lib/samples.js'
import { sampleRss } from './lib/rss.js'
import { percentile } from './lib/stats.js'
import type { Benchmark } from './lib/types.js'
import { caughtUp, drStatus, nodeDirs, startDr, startPrimary, waitFor } from './lib/volmirror-nodes.js'

/** Sizes: the 30 s at 100 MB/s; --quick 8 s. */
const FULL = { runtimeS: 30 }
const QUICK = { runtimeS: 8 }
const VOLUME_MIB = 1024
const NAME = 'vol.raw'
const SAMPLE_MS = 100

/** sampleLag asks the DR for its lag every SAMPLE_MS until `done` resolves; returns the lags (s) and the slowest status answer (ms). */
async function sampleLag (state: string, done: Promise<unknown>): Promise<{ lags: number[], slowestMs: number, errors: number }> {
  let finished = false
  void done.finally(() => { finished = true }).catch(() => {})
  const lags: number[] = []
  let slowestMs = 0
  let errors = 0
  let next = performance.now()
  while (!finished) {
    const t = performance.now()
    try {
      lags.push((await drStatus(state)).lag.seconds ?? NaN)
    } catch {
      errors++
    }
    slowestMs = Math.max(slowestMs, performance.now() - t)
    next += SAMPLE_MS
    const wait = next - performance.now()
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
    else next = performance.now()
  }
  return { lags, slowestMs, errors }
}

/** drLag is the `dr-lag` benchmark. */
export const drLag: Benchmark = {
  name: 'dr-lag',
  description: 'replication lag (RPO) p50/p99 while fio writes 100 MB/s to the primary (no peer: against the issue\'s target)',
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    const prof = ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}
    const images = path.join(ctx.scratch, 'images')
    await mkdir(images, { recursive: true })
    const fh = await open(path.join(images, NAME), 'w')
    await fh.truncate(VOLUME_MIB * 2 ** 20)
    await fh.close()
    ctx.progress(`dr-lag: fio 100 MB/s sequential 64 KiB writes for ${params.runtimeS} s on a ${VOLUME_MIB} MiB volume, lag sampled every ${SAMPLE_MS} ms, ${ctx.runs} run(s)`)
    const p = path.join(ctx.scratch, 'primary')
    const d = path.join(ctx.scratch, 'dr')
    const primary = await startPrimary(nodeDirs(p, path.join(p, 'primary.log'), images), { app: ctx.app, cleanup: ctx.cleanup, ...prof })
    const job = (mnt: string): FioJob => ({ filename: path.join(mnt, NAME), size: VOLUME_MIB * 2 ** 20, rw: 'write', bs: '64k', ioengine: 'psync', runtimeS: params.runtimeS, rate: '100m' })
    try {
      const dr = await startDr(nodeDirs(d, path.join(d, 'dr.log')), primary,
        { app: ctx.app, cleanup: ctx.cleanup, args: ['--hydrate-rate', 'unlimited'], ...prof })
      try {
        await waitFor('the DR to be consistent', async () => caughtUp(await dr.status(), 1, (await primary.status()).seq.last), 120_000, 100)
        for (let round = 0; round < ctx.runs; round++) {
          try {
            const rss = [primary.process.pid, dr.process.pid].map(pid => pid !== undefined ? sampleRss(pid) : undefined)
            const fio = runFio(job(primary.dirs.mnt))
            const sampled = sampleLag(dr.dirs.state, fio)
            const [res, s] = await Promise.all([fio, sampled])
            for (const [i, stop] of rss.entries()) {
              const who = i === 0 ? 'primary' : 'dr'
              const r = stop ? await stop() : { peak: NaN, first: NaN, last: NaN }
              samples.add(`rss-${who}`, 'dr', r.peak, `${fmt(r.first)} -> ${fmt(r.last)} MiB`)
              samples.add(`rss-growth-${who}`, 'dr', r.last - r.first)
            }
            const t0 = Date.now()
            const last = (await primary.status()).seq.last
            await waitFor('the DR to apply the last group', async () => (await dr.status()).seq.applied >= last, 120_000, 20)
            const drainMs = Date.now() - t0
            const [p50, p99, max] = [percentile(s.lags, 50), percentile(s.lags, 99), Math.max(...s.lags)]
            const notes = [...(s.errors ? [`${s.errors} status calls failed`] : []), ...(s.lags.length < params.runtimeS * 5 ? [`only ${s.lags.length} samples`] : [])]
            samples.add('p50', 'dr', p50, notes.join('; ') || undefined)
            samples.add('p99', 'dr', p99)
            samples.add('max', 'dr', max)
            samples.add('rate', 'dr', res.bytesPerSec / 1e6)
            ctx.progress(`  run ${round + 1}/${ctx.runs}: fio ${fmt(res.bytesPerSec / 1e6)} MB/s; lag p50 ${fmt(p50)} s, p99 ${fmt(p99)} s, max ${fmt(max)} s over ${s.lags.length} samples` +
              ` (slowest status answer ${fmt(s.slowestMs)} ms); caught up ${drainMs} ms after fio ended`)
          } catch (err) {
            for (const m of ['p50', 'p99', 'max', 'rate']) samples.add(m, 'dr', NaN, m === 'p50' ? `failed: ${firstLine(err)}` : undefined)
            ctx.progress(`  run ${round + 1}: FAILED: ${firstLine(err)}`)
          }
        }
      } finally {
        await dr.stop()
      }
    } finally {
      await primary.stop()
    }
    const command = `fio ${fioArgs(job('MNT')).join(' ')} on the primary's mount; volmirror status --state DR --json | .lag.seconds every ${SAMPLE_MS} ms (control socket)`
    const what = `replication lag during fio 100 MB/s ${params.runtimeS} s`
    return [
      { metric: `${what}, p50`, unit: 's', better: 'lower', volmirror: samples.figure('p50', 'dr'), comparisons: [], command },
      { metric: `${what}, p99`, unit: 's', better: 'lower', volmirror: samples.figure('p99', 'dr'), comparisons: [], limit: 0.3 },
      { metric: `${what}, max`, unit: 's', better: 'lower', volmirror: samples.figure('max', 'dr'), comparisons: [] },
      { metric: 'write rate fio reached meanwhile', unit: 'MB/s', better: 'higher', volmirror: samples.figure('rate', 'dr'), comparisons: [] },
      { metric: 'primary peak RSS meanwhile', unit: 'MiB', better: 'lower', volmirror: samples.figure('rss-primary', 'dr'), comparisons: [] },
      { metric: 'primary RSS growth over the run', unit: 'MiB', better: 'lower', volmirror: samples.figure('rss-growth-primary', 'dr'), comparisons: [] },
      { metric: 'DR peak RSS meanwhile', unit: 'MiB', better: 'lower', volmirror: samples.figure('rss-dr', 'dr'), comparisons: [] },
      { metric: 'DR RSS growth over the run', unit: 'MiB', better: 'lower', volmirror: samples.figure('rss-growth-dr', 'dr'), comparisons: [] },
    ]
  },
}
