/**
 * sync-write: what sync mode (`primary --sync`, RPO 0) costs a writer that
 * fsyncs every write, against the same primary without it, with the DR
 * reaching the primary over loopback and through the test TCP proxy adding
 * 1 ms and 10 ms of round trip (test/helpers/tcp-proxy.ts).
 *
 * fio writes 4 KiB at random places and fsyncs after every write
 * (`--fsync=1`, psync) for a few seconds; the figure is the time per
 * write + fsync (1 / IOPS). Each RTT setting gets a fresh primary/DR pair
 * per mode, taking turns. Beside them, the round-trip floor: a 1-byte
 * echo through the same proxy, median of 200.
 *
 * Target (the issue): sync within 1.3x of (async + RTT floor).
 */
import { mkdir, open, rm } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { startProxy, type TcpProxy } from '../test/helpers/tcp-proxy.js'
import { fioArgs, runFio, type FioJob } from './lib/fio.js'
import { firstLine, fmt, rotate, Samples } from './lib/samples.js'
import { median } from './lib/stats.js'
import type { Benchmark, MetricResult } from './lib/types.js'
import { caughtUp, nodeDirs, startDr, startPrimary, waitFor } from './lib/volmirror-nodes.js'

const FULL = { runtimeS: 6 }
const QUICK = { runtimeS: 2 }
const RTTS = [0, 1, 10]
const NAME = 'vol.raw'
const VOLUME = 256 * 2 ** 20

/** rttFloor measures a 1-byte round trip through `proxy` to an echo server (median of 200, ms). */
async function rttFloor (rttMs: number): Promise<number> {
  const server = net.createServer(s => { s.setNoDelay(true); s.on('data', c => s.write(c)); s.on('error', () => {}) })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const proxy = await startProxy(`127.0.0.1:${(server.address() as net.AddressInfo).port}`)
  proxy.shape({ rttMs })
  const sock = net.connect(proxy.port, '127.0.0.1')
  sock.setNoDelay(true)
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  const times: number[] = []
  try {
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now()
      await new Promise<void>(resolve => { sock.once('data', () => resolve()); sock.write('x') })
      times.push(performance.now() - t0)
    }
  } finally {
    sock.destroy()
    await proxy.close()
    await new Promise(resolve => server.close(resolve))
  }
  return median(times)
}

/** syncWrite is the `sync-write` benchmark. */
export const syncWrite: Benchmark = {
  name: 'sync-write',
  description: 'fsync after every 4 KiB write: primary --sync (RPO 0) vs async, DR over loopback and +1 ms / +10 ms RTT, with the round-trip floor',
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    ctx.progress(`sync-write: fio 4 KiB randwrite --fsync=1 ${params.runtimeS} s, async and --sync, RTT + ${RTTS.join(' / ')} ms, ${ctx.runs} run(s)`)
    const job = (mnt: string): FioJob => ({ filename: path.join(mnt, NAME), size: VOLUME, rw: 'randwrite', bs: '4k', ioengine: 'psync', runtimeS: params.runtimeS, fsync: 1 })
    for (const rtt of RTTS) {
      samples.add(`floor-${rtt}`, 'floor', await rttFloor(rtt))
      for (let round = 0; round < ctx.runs; round++) {
        for (const mode of rotate(['async', 'sync'], round + rtt)) {
          const dir = path.join(ctx.scratch, `${mode}-${rtt}-${round}`)
          const images = path.join(dir, 'images')
          await mkdir(images, { recursive: true })
          const fh = await open(path.join(images, NAME), 'w')
          await fh.truncate(VOLUME)
          await fh.close()
          let proxy: TcpProxy | undefined
          try {
            const primary = await startPrimary(nodeDirs(path.join(dir, 'p'), path.join(dir, 'primary.log'), images),
              { app: ctx.app, cleanup: ctx.cleanup, args: mode === 'sync' ? ['--sync'] : [] })
            proxy = await startProxy(primary.url)
            proxy.shape({ rttMs: rtt })
            const dr = await startDr(nodeDirs(path.join(dir, 'd'), path.join(dir, 'dr.log')),
              { ...primary, url: proxy.url }, { app: ctx.app, cleanup: ctx.cleanup, args: ['--hydrate-rate', 'unlimited'] })
            try {
              await waitFor('the DR to be consistent', async () => caughtUp(await dr.status(), 1, (await primary.status()).seq.last), 120_000, 100)
              const res = await runFio(job(primary.dirs.mnt))
              const s = (await primary.status()).sync
              const note = s && s.state !== 'in-sync' ? `sync state ${s.state} (${s.degradations} degradations)` : undefined
              samples.add(`lat-${rtt}`, mode, 1000 / res.iops, note)
              ctx.progress(`  RTT +${rtt} ms, ${mode.padEnd(5)}: ${fmt(res.iops)} write+fsync/s, ${fmt(1000 / res.iops)} ms each${s ? `; ${s.released} fsyncs waited ${fmt(1000 * s.waitSeconds / Math.max(1, s.released))} ms on average for the DR` : ''}`)
            } finally {
              await dr.stop()
              await primary.stop()
            }
          } catch (err) {
            samples.add(`lat-${rtt}`, mode, NaN, `failed: ${firstLine(err)}`)
            ctx.progress(`  RTT +${rtt} ms, ${mode}: FAILED: ${firstLine(err)}`)
          } finally {
            await proxy?.close()
            await rm(dir, { recursive: true, force: true }).catch(() => {})
          }
        }
      }
    }
    const out: MetricResult[] = []
    for (const rtt of RTTS) {
      const floor = samples.figure(`floor-${rtt}`, 'floor')
      const asyncFig = samples.figure(`lat-${rtt}`, 'async')
      // The peer row is "async + RTT": what RPO 0 cannot avoid paying.
      const bound = { median: asyncFig.median + floor.median, runs: asyncFig.runs.map(v => v + floor.median) }
      out.push({
        metric: `write + fsync, --sync, DR over ${rtt === 0 ? 'loopback' : `+${rtt} ms RTT`}`,
        unit: 'ms', better: 'lower', volmirror: samples.figure(`lat-${rtt}`, 'sync'),
        comparisons: [
          { name: `async + round-trip floor (${fmt(floor.median)} ms)`, role: 'peer', figure: bound, target: 1 / 1.3 },
          { name: 'async (no --sync)', role: 'reference', figure: asyncFig },
        ],
        ...(rtt === 0 ? { command: `fio ${fioArgs(job('MNT')).join(' ')} on the primary's mount, with and without primary --sync; the DR through the test TCP proxy (+RTT)` } : {}),
      })
    }
    return out
  },
}
