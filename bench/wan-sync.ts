/**
 * wan-sync: a fresh DR's initial sync over a WAN link, against what the
 * link allows: size / bandwidth + 2 RTT (issue 12).
 *
 * The link is the test TCP proxy (test/helpers/tcp-proxy.ts) between the
 * DR and its primary, capped at LINK_BPS each way and adding 0, 20 and
 * 80 ms of round trip. The image is filled with random bytes (nothing to
 * skip, nothing to compress), so every byte crosses the link. Each run
 * starts a fresh DR and times it from its start to the moment its status
 * says consistent and caught up. A plain TCP stream of the same size
 * through the same proxy is the reference: what the proxy itself delivers.
 */
import { mkdir, rm } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { startProxy } from '../test/helpers/tcp-proxy.js'
import { writeSparseImage } from './lib/images.js'
import { settled } from './lib/lazy-setups.js'
import { firstLine, fmt, Samples } from './lib/samples.js'
import { dropCaches } from './lib/system.js'
import type { BenchContext, Benchmark, MetricResult } from './lib/types.js'
import { caughtUp, nodeDirs, startDr, startPrimary, type VmPrimary, waitFor } from './lib/volmirror-nodes.js'

const FULL = { mib: 1024 }
const QUICK = { mib: 256 }
/** The link's capacity each way: 1 Gbit/s. */
const LINK_BPS = 125e6
const RTTS = [0, 20, 80]
const NAME = 'vm.raw'

/** streamThrough times `bytes` sent over a plain TCP connection through a proxy shaped like the link (seconds). */
async function streamThrough (bytes: number, rttMs: number): Promise<number> {
  let received = 0
  let done!: () => void
  const finished = new Promise<void>(resolve => { done = resolve })
  const server = net.createServer(sock => sock.on('data', (c: Buffer) => { received += c.length; if (received >= bytes) done() }))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const proxy = await startProxy(`127.0.0.1:${(server.address() as net.AddressInfo).port}`)
  proxy.shape({ rttMs, bytesPerSecond: LINK_BPS })
  const sock = net.connect(proxy.port, '127.0.0.1')
  try {
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
    const chunk = Buffer.alloc(1 << 20, 7)
    const t0 = performance.now()
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (!sock.write(chunk)) await new Promise(resolve => sock.once('drain', resolve))
    }
    await finished
    return (performance.now() - t0) / 1000
  } finally {
    sock.destroy()
    await proxy.close()
    await new Promise(resolve => server.close(resolve))
  }
}

/** syncOver starts a fresh DR behind a shaped proxy and times it to consistent (seconds), with the bytes that crossed. */
async function syncOver (ctx: BenchContext, primary: VmPrimary, dir: string, rttMs: number): Promise<{ seconds: number, crossed: number }> {
  const proxy = await startProxy(primary.url)
  proxy.shape({ rttMs, bytesPerSecond: LINK_BPS })
  try {
    const dirs = nodeDirs(dir, path.join(dir, 'dr.log'))
    const last = (await primary.status()).seq.last
    await dropCaches()
    const t0 = performance.now()
    const dr = await startDr(dirs, { ...primary, url: proxy.url }, { app: ctx.app, cleanup: ctx.cleanup, args: ['--hydrate-rate', 'unlimited'], ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}) })
    try {
      await waitFor('the new DR to be consistent', async () => caughtUp(await dr.status(), 1, last), 600_000, 50)
      return { seconds: (performance.now() - t0) / 1000, crossed: proxy.bytes.fromTarget }
    } finally {
      await dr.stop()
    }
  } finally {
    await proxy.close()
  }
}

/** wanSync is the `wan-sync` benchmark. */
export const wanSync: Benchmark = {
  name: 'wan-sync',
  description: `initial sync of a full image through a ${LINK_BPS * 8 / 1e9} Gbit/s link at ${RTTS.join('/')} ms RTT vs size / bandwidth + 2 RTT`,
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const size = params.mib * 2 ** 20
    const samples = new Samples()
    ctx.progress(`wan-sync: ${params.mib} MiB of random data, link ${LINK_BPS * 8 / 1e6} Mbit/s, RTT ${RTTS.join(' / ')} ms, ${ctx.runs} run(s)`)
    const images = path.join(ctx.scratch, 'images')
    await mkdir(images, { recursive: true })
    await writeSparseImage(path.join(images, NAME), size, 2 ** 20, 1, 3)
    const p = path.join(ctx.scratch, 'primary')
    const primary = await startPrimary(nodeDirs(p, path.join(p, 'primary.log'), images),
      { app: ctx.app, cleanup: ctx.cleanup, ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}) })
    try {
      await settled(ctx, primary, params.mib)
      for (const rtt of RTTS) {
        samples.add(`rtt-${rtt}`, 'stream', await streamThrough(size, rtt))
        for (let round = 0; round < ctx.runs; round++) {
          const dir = path.join(ctx.scratch, `dr-${rtt}-${round}`)
          try {
            const r = await syncOver(ctx, primary, dir, rtt)
            samples.add(`rtt-${rtt}`, 'volmirror', r.seconds)
            ctx.progress(`  RTT ${String(rtt).padStart(2)} ms: ${fmt(r.seconds)} s (${fmt(size / 2 ** 20 / r.seconds)} MiB/s), ${fmt(r.crossed / 2 ** 20)} MiB crossed; bound ${fmt(size / LINK_BPS + 2 * rtt / 1000)} s`)
          } catch (err) {
            samples.add(`rtt-${rtt}`, 'volmirror', NaN, `failed: ${firstLine(err)}`)
            ctx.progress(`  RTT ${rtt} ms: FAILED: ${firstLine(err)}`)
          } finally {
            await rm(dir, { recursive: true, force: true }).catch(() => {})
          }
        }
      }
    } finally {
      await primary.stop()
    }
    const out: MetricResult[] = []
    for (const rtt of RTTS) {
      const bound = size / LINK_BPS + 2 * rtt / 1000
      out.push({
        metric: `initial sync ${params.mib} MiB (random), ${LINK_BPS * 8 / 1e9} Gbit/s, RTT ${rtt} ms`,
        unit: 's',
        better: 'lower',
        volmirror: samples.figure(`rtt-${rtt}`, 'volmirror'),
        comparisons: [
          { name: 'size / bandwidth + 2 RTT', role: 'peer', figure: { median: bound, runs: [bound] }, target: 1 / 1.2 },
          { name: 'one TCP stream of the same size through the proxy', role: 'reference', figure: samples.figure(`rtt-${rtt}`, 'stream') },
        ],
        note: 'volmirror: a fresh DR (hydration unlimited) from its start to status consistent, through the test TCP proxy',
        ...(rtt === 0 ? { command: 'volmirror dr --primary PROXY --hydrate-rate unlimited (proxy: test/helpers/tcp-proxy.ts, shape({ rttMs, bytesPerSecond: 125e6 }))' } : {}),
      })
    }
    return out
  },
}
