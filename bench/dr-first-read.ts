/**
 * dr-first-read: latency of a first 4 KiB read at an offset nothing has
 * fetched yet, through a DR mount with hydration off, next to the same
 * lazy-fetch peers as dr-cold-read (httpfs2, rclone with and without its
 * full cache) over the same loopback HTTP.
 *
 * As PEERS.md measures it: open the file once, then time 20
 * `pread(fd, 4096, off)`, one offset in each twentieth of the file (a
 * 4 KiB-aligned place drawn inside it), in shuffled order. Offsets are
 * seeded per run: every setup reads the same ones in a run. The reads run
 * in a child process (lib/pread-probe.ts), one synchronous pread at a time,
 * so nothing in this process waits on the mount; the bytes each read
 * returned are checked against the source file.
 *
 * Figures: per run the median and the p90 of the 20 reads; reported: the
 * median of those over the runs. Target: volmirror's median under 1 ms.
 */
import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import path from 'node:path'
import { runOk } from './lib/exec.js'
import { rng, shuffle } from './lib/images.js'
import { eachLazySetup, httpfs2, lazyFixture, LAZY_SETUPS, rcloneFull, rcloneNoCache, volmirrorDr, type Served } from './lib/lazy-setups.js'
import type { ProbeResult } from './lib/pread-probe.js'
import { fmt, Samples } from './lib/samples.js'
import { median, percentile } from './lib/stats.js'
import { dropCaches } from './lib/system.js'
import type { Benchmark, MetricResult } from './lib/types.js'

/** Sizes: PEERS.md's 1 GiB file; --quick 256 MiB. */
const FULL = { mib: 1024 }
const QUICK = { mib: 256 }
const READS = 20
const BLOCK = 4096

/** offsets are the run's 20 read offsets: one 4 KiB-aligned offset inside each twentieth of the file, shuffled (seeded by `round`). */
export function offsets (size: number, round: number): number[] {
  const r = rng(1000 + round)
  const slice = Math.floor(size / READS)
  const out: number[] = []
  for (let i = 0; i < READS; i++) out.push(i * slice + Math.floor(r() * Math.floor((slice - BLOCK) / BLOCK)) * BLOCK)
  return shuffle(out, 2000 + round)
}

/** expected is the SHA-256 of the 4 KiB at each offset of the source file, read directly (not through any mount). */
async function expected (served: Served, offs: number[]): Promise<string[]> {
  const fh = await open(path.join(served.dir, served.name), 'r')
  try {
    const buf = Buffer.alloc(BLOCK)
    const out: string[] = []
    for (const off of offs) {
      const { bytesRead } = await fh.read(buf, 0, BLOCK, off)
      out.push(createHash('sha256').update(buf.subarray(0, bytesRead)).digest('hex'))
    }
    return out
  } finally {
    await fh.close()
  }
}

/** drFirstRead is the `dr-first-read` benchmark. */
export const drFirstRead: Benchmark = {
  name: 'dr-first-read',
  description: 'latency of first 4 KiB reads at untouched offsets through the DR mount (hydration off) vs httpfs2 and rclone',
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    const probe = path.join(ctx.app, 'dist', 'bench', 'lib', 'pread-probe.js')
    ctx.progress(`dr-first-read: ${READS} first reads of 4 KiB in a ${params.mib} MiB file, ${ctx.runs} run(s)`)
    const fixture = await lazyFixture(ctx, params.mib)
    try {
      await eachLazySetup(ctx, fixture, LAZY_SETUPS, async (setup, mount, round) => {
        const offs = offsets(fixture.served.size, round)
        const want = await expected(fixture.served, offs)
        const dropped = await dropCaches()
        const r = await runOk(process.execPath, [probe, mount.file, offs.join(',')], { timeoutMs: 300_000 })
        const res = JSON.parse(r.stdout) as ProbeResult
        const wrong = res.sha256.filter((h, i) => h !== want[i]).length
        const notes: string[] = []
        if (!dropped) notes.push('page cache NOT dropped (needs root): warm figure')
        if (res.short.length) notes.push(`${res.short.length} short reads`)
        if (wrong) notes.push(`${wrong} of ${READS} reads returned wrong bytes`)
        const ok = wrong === 0 && res.short.length === 0
        const med = median(res.ms)
        const p90 = percentile(res.ms, 90)
        samples.add('median', setup.id, ok ? med : NaN, notes.join('; ') || undefined)
        samples.add('p90', setup.id, ok ? p90 : NaN)
        ctx.progress(`  ${setup.label.padEnd(30)} median ${fmt(med)} ms, p90 ${fmt(p90)} ms, max ${fmt(Math.max(...res.ms))} ms (open ${fmt(res.openMs)} ms)${notes.length ? ` [${notes.join('; ')}]` : ''}`)
      }, (setup, _round, why) => { for (const m of ['median', 'p90']) samples.add(m, setup.id, NaN, why) })
    } finally {
      await fixture.stop()
    }
    const command = `${LAZY_SETUPS.map(s => `${s.id}: ${s.command}`).join(' | ')}; then: sync; echo 3 > /proc/sys/vm/drop_caches; ` +
      `node dist/bench/lib/pread-probe.js MNT/img.bin OFFSETS (open once, ${READS} timed pread(fd, ${BLOCK}, off), one per 1/${READS} of the file, shuffled)`
    const metric = (id: string, label: string, limit?: number): MetricResult => ({
      metric: label,
      unit: 'ms',
      better: 'lower',
      volmirror: samples.figure(id, volmirrorDr.id),
      comparisons: [
        { name: rcloneFull.label, role: 'peer', figure: samples.figure(id, rcloneFull.id) },
        { name: httpfs2.label, role: 'peer', figure: samples.figure(id, httpfs2.id) },
        { name: rcloneNoCache.label, role: 'reference', figure: samples.figure(id, rcloneNoCache.id) },
      ],
      command,
      ...(limit !== undefined ? { limit } : {}),
    })
    return [
      metric('median', `first 4 KiB read, median of ${READS}`, 1),
      metric('p90', `first 4 KiB read, p90 of ${READS}`),
    ]
  },
}
