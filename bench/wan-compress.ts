/**
 * wan-compress: replication over a thin WAN link with and without zstd on
 * the wire (issue 12): lag and bytes on the link.
 *
 * The link is the test TCP proxy (test/helpers/tcp-proxy.ts) between the DR
 * and its primary: 100 Mbit/s each way, 20 ms of round trip. Two kinds of
 * data are written at once (dd, 1 MiB blocks, holes skipped) through the
 * primary's mount into a volume the DR already follows:
 *
 *   - ext4 with text files: an ext4 file system built by `mkfs.ext4 -d`
 *     from the text files of the installed npm packages (JavaScript,
 *     TypeScript, Markdown, JSON), what a VM's disk mostly holds;
 *   - random data: nothing to gain, so compression must cost nothing.
 *
 * For each kind and each DR setting (`--compress auto`, the default, which
 * asks at 20 ms; and `--compress none`), a fresh primary and DR pair; the
 * figures are the time from the first byte written to the DR having
 * applied everything (the RPO's peak: what a failover at the worst moment
 * would lose), the highest lag the DR reported meanwhile, and the bytes
 * that crossed the link from the primary.
 */
import { readdir, mkdir, rm, stat, copyFile } from 'node:fs/promises'
import path from 'node:path'
import { startProxy } from '../test/helpers/tcp-proxy.js'
import { runOk } from './lib/exec.js'
import { writeSparseImage } from './lib/images.js'
import { firstLine, fmt, Samples } from './lib/samples.js'
import type { BenchContext, Benchmark, MetricResult } from './lib/types.js'
import { caughtUp, nodeDirs, startDr, startPrimary, waitFor } from './lib/volmirror-nodes.js'

const FULL = { mib: 64 }
const QUICK = { mib: 16 }
/** The link: 100 Mbit/s each way, 20 ms of round trip. */
const LINK_BPS = 12.5e6
const RTT_MS = 20
const MODES = ['auto', 'none'] as const
const KINDS = ['text', 'random'] as const
type Mode = typeof MODES[number]
type Kind = typeof KINDS[number]
const NAME = 'vol.raw'
const MiB = 2 ** 20
const TEXT = /\.(?:[cm]?js|ts|md|json|txt)$/

/** gatherText copies text files from `from` into `to` until `bytes` are there; returns how many. */
async function gatherText (from: string, to: string, bytes: number): Promise<number> {
  let total = 0
  let n = 0
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (total >= bytes) return
      const p = path.join(dir, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile() && TEXT.test(e.name)) {
        await copyFile(p, path.join(to, `${n++}-${e.name}`))
        total += (await stat(p)).size
      }
    }
  }
  // Several rounds over the same tree if it holds less than asked.
  for (let round = 0; total < bytes && round < 20; round++) await walk(from)
  return total
}

/** textImage builds an ext4 image of `mib` MiB holding text files (a third of its size: small files take whole blocks, and inodes). */
async function textImage (ctx: BenchContext, file: string, mib: number): Promise<void> {
  const src = path.join(ctx.scratch, 'text-src')
  await mkdir(src, { recursive: true })
  const got = await gatherText(path.join(ctx.app, 'node_modules'), src, mib * MiB * 0.3)
  await runOk('mkfs.ext4', ['-q', '-F', '-b', '4096', '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-d', src, file, `${mib}M`], { timeoutMs: 300_000 })
  await rm(src, { recursive: true, force: true })
  ctx.progress(`wan-compress: ext4 image of ${mib} MiB holding ${fmt(got / MiB)} MiB of text files`)
}

interface Run { seconds: number, peakLag: number, crossed: number }

/** replicate starts a pair (the DR behind the shaped proxy, `--compress mode`), writes `source` through the primary's mount, and measures. */
async function replicate (ctx: BenchContext, source: string, mib: number, mode: Mode, dir: string): Promise<Run> {
  const images = path.join(dir, 'images')
  await mkdir(images, { recursive: true })
  await writeSparseImage(path.join(images, NAME), mib * MiB, MiB, 0, 1)
  const profile = ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}
  const primary = await startPrimary(nodeDirs(path.join(dir, 'p'), path.join(dir, 'primary.log'), images),
    { app: ctx.app, cleanup: ctx.cleanup, ...profile })
  const proxy = await startProxy(primary.url)
  proxy.shape({ rttMs: RTT_MS, bytesPerSecond: LINK_BPS })
  try {
    const d = path.join(dir, 'd')
    const dr = await startDr(nodeDirs(d, path.join(dir, 'dr.log')),
      { ...primary, url: proxy.url }, { app: ctx.app, cleanup: ctx.cleanup, args: ['--compress', mode], ...profile })
    try {
      await waitFor('the DR to be consistent', async () => caughtUp(await dr.status(), 1, (await primary.status()).seq.last), 120_000, 50)
      // auto decides on the round trip it measured: wait until it has.
      if (mode === 'auto') await waitFor('the DR to ask for compression', async () => (await dr.status()).wire?.asking === true, 30_000, 100)
      const before = proxy.bytes.fromTarget
      const t0 = performance.now()
      let peakLag = 0
      let writing = true
      const written = runOk('dd', [`if=${source}`, `of=${path.join(primary.dirs.mnt, NAME)}`, 'bs=1M', 'conv=sparse,notrunc,fsync'], { timeoutMs: 300_000 })
        .finally(() => { writing = false })
      await waitFor('the DR to apply everything written', async () => {
        const s = await dr.status()
        peakLag = Math.max(peakLag, s.lag.seconds ?? 0)
        return !writing && caughtUp(s, 1, (await primary.status()).seq.last)
      }, 600_000, 50)
      await written
      return { seconds: (performance.now() - t0) / 1000, peakLag, crossed: proxy.bytes.fromTarget - before }
    } finally {
      await dr.stop()
    }
  } finally {
    await proxy.close()
    await primary.stop()
  }
}

/** wanCompress is the `wan-compress` benchmark. */
export const wanCompress: Benchmark = {
  name: 'wan-compress',
  description: `lag and bytes on the wire through ${LINK_BPS * 8 / 1e6} Mbit/s at ${RTT_MS} ms RTT, with zstd (auto) and without, for ext4 with text files and for random data`,
  async run (ctx) {
    const { mib } = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    const sources: Record<Kind, string> = { text: path.join(ctx.scratch, 'text.img'), random: path.join(ctx.scratch, 'random.img') }
    await textImage(ctx, sources.text, mib)
    await writeSparseImage(sources.random, mib * MiB, MiB, 1, 5)
    ctx.progress(`wan-compress: ${mib} MiB per kind, link ${LINK_BPS * 8 / 1e6} Mbit/s, RTT ${RTT_MS} ms, ${ctx.runs} run(s)`)
    for (let round = 0; round < ctx.runs; round++) {
      for (const kind of KINDS) {
        for (const mode of MODES) {
          const dir = path.join(ctx.scratch, `${kind}-${mode}-${round}`)
          try {
            const r = await replicate(ctx, sources[kind], mib, mode, dir)
            samples.add(kind, `${mode}-seconds`, r.seconds)
            samples.add(kind, `${mode}-lag`, r.peakLag)
            samples.add(kind, `${mode}-crossed`, r.crossed / MiB)
            ctx.progress(`  ${kind.padEnd(6)} --compress ${mode.padEnd(4)}: on the DR after ${fmt(r.seconds)} s, peak lag ${fmt(r.peakLag)} s, ${fmt(r.crossed / MiB)} MiB crossed`)
          } catch (err) {
            for (const f of ['seconds', 'lag', 'crossed']) samples.add(kind, `${mode}-${f}`, NaN, `failed: ${firstLine(err)}`)
            ctx.progress(`  ${kind} --compress ${mode}: FAILED: ${firstLine(err)}`)
          } finally {
            await rm(dir, { recursive: true, force: true }).catch(() => {})
          }
        }
      }
    }
    const out: MetricResult[] = []
    const link = `${LINK_BPS * 8 / 1e6} Mbit/s, RTT ${RTT_MS} ms`
    for (const kind of KINDS) {
      const label = kind === 'text' ? `ext4 with text files, ${mib} MiB` : `random data, ${mib} MiB`
      // Text should gain; random data must not lose (within noise).
      const target = kind === 'random' ? 0.95 : undefined
      const none = (f: string): MetricResult['comparisons'] => [{ name: '--compress none', role: 'peer', figure: samples.figure(kind, `none-${f}`), ...(target ? { target } : {}) }]
      out.push({
        metric: `${label}: written to on the DR (${link})`,
        unit: 's',
        better: 'lower',
        volmirror: samples.figure(kind, 'auto-seconds'),
        comparisons: none('seconds'),
        note: 'volmirror: --compress auto (asks for zstd at this RTT); from the first byte written (dd bs=1M conv=sparse through the primary\'s mount) to the DR having applied the last',
        ...(kind === 'text' ? { command: 'volmirror dr --primary PROXY --compress auto|none (proxy: test/helpers/tcp-proxy.ts, shape({ rttMs: 20, bytesPerSecond: 12.5e6 }))' } : {}),
      })
      // The peak of a 50 ms sample: reported, the target is on the time above.
      out.push({ metric: `${label}: peak lag the DR reported`, unit: 's', better: 'lower', volmirror: samples.figure(kind, 'auto-lag'), comparisons: [{ name: '--compress none', role: 'peer', figure: samples.figure(kind, 'none-lag') }] })
      out.push({ metric: `${label}: bytes on the link`, unit: 'MiB', better: 'lower', volmirror: samples.figure(kind, 'auto-crossed'), comparisons: none('crossed') })
    }
    return out
  },
}
