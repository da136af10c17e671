/**
 * scale: one primary and one DR with many large sparse volumes (issue 12:
 * 1,000 volumes of 10 GiB, 10 TiB logical), each with 1 MiB written.
 * No peer: the figures go to the README with the per-volume costs.
 *
 *   - primary: start time (spawn to answering status), RSS, status
 *     latency (median and max of 20 calls on the control socket), the
 *     state directory's size;
 *   - a checkpoint after a write to every volume (every image dirty);
 *   - DR: initial sync of the written part (start to consistent), its
 *     RSS, its start time once synced (restart), status latency.
 */
import { mkdir, open, readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import { runOk } from './lib/exec.js'
import { rssMiB } from './lib/rss.js'
import { fmt } from './lib/samples.js'
import { median } from './lib/stats.js'
import type { BenchContext, Benchmark, Figure, MetricResult } from './lib/types.js'
import { caughtUp, nodeDirs, startDr, startPrimary, type VmNode, waitFor } from './lib/volmirror-nodes.js'

const FULL = { volumes: 1000, gib: 10 }
const QUICK = { volumes: 100, gib: 10 }
const MiB = 2 ** 20

const one = (v: number): Figure => ({ median: v, runs: [v] })

async function dirBytes (dir: string): Promise<number> {
  let n = 0
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) n += await dirBytes(p)
    else if (e.isFile()) n += (await stat(p)).blocks * 512
  }
  return n
}

async function statusLatency (node: { status: () => Promise<unknown> }): Promise<{ median: number, max: number }> {
  const ms: number[] = []
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now()
    await node.status()
    ms.push(performance.now() - t0)
  }
  return { median: median(ms), max: Math.max(...ms) }
}

async function rssOf (node: VmNode): Promise<number> {
  return await rssMiB(node.process.pid ?? 0)
}

/** scale is the `scale` benchmark. */
export const scale: Benchmark = {
  name: 'scale',
  description: '1,000 sparse volumes of 10 GiB on one primary and one DR: start time, RSS, status latency, checkpoint cost, initial sync of the written part',
  async run (ctx: BenchContext) {
    const { volumes, gib } = ctx.quick ? QUICK : FULL
    const images = path.join(ctx.scratch, 'images')
    await mkdir(images, { recursive: true })
    ctx.progress(`scale: ${volumes} volumes of ${gib} GiB (${fmt(volumes * gib / 1024)} TiB logical), 1 MiB written in each`)
    const chunk = Buffer.alloc(MiB)
    for (let i = 0; i < volumes; i++) {
      const fh = await open(path.join(images, `vm${String(i).padStart(4, '0')}.raw`), 'w')
      try {
        await fh.truncate(gib * 1024 * MiB)
        chunk.fill(i % 251 + 1)
        chunk.writeUInt32BE(i, 0)
        await fh.write(chunk, 0, MiB, ((i * 7919) % (gib * 1024)) * MiB)
      } finally {
        await fh.close()
      }
    }
    const p = path.join(ctx.scratch, 'primary')
    const t0 = performance.now()
    const primary = await startPrimary(nodeDirs(p, path.join(p, 'primary.log'), images),
      { app: ctx.app, cleanup: ctx.cleanup, ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}) })
    const primaryStart = (performance.now() - t0) / 1000
    const out: MetricResult[] = []
    const add = (metric: string, unit: string, v: number, note?: string): void => {
      out.push({ metric, unit, better: 'lower', volmirror: one(v), comparisons: [], ...(note ? { note } : {}) })
      ctx.progress(`  ${metric}: ${fmt(v)} ${unit}`)
    }
    try {
      add(`primary start with ${volumes} volumes`, 's', primaryStart, 'spawn to status answering (mount up, volumes listed, codes loaded)')
      add('primary RSS after start', 'MiB', await rssOf(primary))
      const ps = await statusLatency(primary)
      add('primary status latency, median of 20', 'ms', ps.median)
      add('primary status latency, slowest of 20', 'ms', ps.max)

      const d = path.join(ctx.scratch, 'dr')
      const t1 = performance.now()
      const dr = await startDr(nodeDirs(d, path.join(d, 'dr.log')),
        primary, { app: ctx.app, cleanup: ctx.cleanup, args: ['--hydrate-rate', 'unlimited'], ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}) })
      const last = (await primary.status()).seq.last
      await waitFor('the DR to be consistent', async () => caughtUp(await dr.status(), volumes, last), 3600_000, 500)
      add(`DR initial sync of ${volumes} volumes (${volumes} MiB written, ${fmt(volumes * gib / 1024)} TiB logical)`, 's', (performance.now() - t1) / 1000, 'DR start to consistent')
      add('DR RSS when consistent', 'MiB', await rssOf(dr))
      add('primary RSS with the DR synced', 'MiB', await rssOf(primary))
      const ds = await statusLatency(dr)
      add('DR status latency, median of 20', 'ms', ds.median)

      // A write to every volume, then a checkpoint (every image dirty).
      const files = Array.from({ length: volumes }, (_, i) => path.join(primary.dirs.mnt, `vm${String(i).padStart(4, '0')}.raw`))
      const script = 'const fs=require("fs");const b=Buffer.alloc(4096,9);for(const f of process.argv.slice(1)){const fd=fs.openSync(f,"r+");fs.writeSync(fd,b,0,4096,8192);fs.closeSync(fd)}'
      for (let i = 0; i < files.length; i += 200) await runOk(process.execPath, ['-e', script, ...files.slice(i, i + 200)], { timeoutMs: 600_000 })
      // The checkpoints that follow (every 30 s, or sooner by journal size): the one that synced the most images.
      const seen = new Map<string, { ms: number, images: number }>()
      const until = Date.now() + 40_000
      while (Date.now() < until) {
        const c = (await primary.status()).checkpoint
        if (c && c.images > 0) seen.set(c.at, c)
        await new Promise(resolve => setTimeout(resolve, 250))
      }
      const cp = [...seen.values()].sort((a, b) => b.images - a.images)[0]
      if (cp) add(`checkpoint with ${cp.images} dirty images`, 'ms', cp.ms, 'images fdatasynced, region maps and codes persisted')
      await waitFor('the DR to apply the writes', async () => caughtUp(await dr.status(), volumes, (await primary.status()).seq.last), 600_000, 200)
      add('primary state directory', 'MiB', await dirBytes(primary.dirs.state) / MiB)
      add('DR state directory', 'MiB', await dirBytes(dr.dirs.state) / MiB)

      await dr.stop()
      const t2 = performance.now()
      const dr2 = await startDr(dr.dirs, primary, { app: ctx.app, cleanup: ctx.cleanup, args: ['--hydrate-rate', 'unlimited'] })
      add(`DR restart with ${volumes} volumes (consistent state)`, 's', (performance.now() - t2) / 1000)
      await dr2.stop()
    } finally {
      await primary.stop()
    }
    return out
  },
}
