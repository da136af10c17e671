/**
 * lazy-setups: ways to read a remote image through a FUSE mount that
 * fetches what is read from an HTTP server on 127.0.0.1: volmirror's DR
 * mount (hydration off: only what is read is fetched) and PEERS.md's
 * lazy-fetch peers, httpfs2 and rclone (with and without its full VFS
 * cache), over nginx serving the very file the volmirror primary serves.
 *
 * Each start is fresh: a new DR (new state and empty image directory), a
 * new rclone cache directory, so every measurement starts with nothing
 * fetched. Only the read through the mount is timed; starting, and for
 * volmirror waiting until the DR has registered and lists the volume, is
 * not.
 *
 * One primary serves every volmirror measurement of a benchmark, started
 * first and left until its region codes are all computed (a primary a DR
 * joins has been running: its idle-time hashing is done, and must not read
 * the disk while the peers are measured).
 */
import { mkdir, rm } from 'node:fs/promises'
import path from 'node:path'
import type { Cleanup } from './cleanup.js'
import { writeRandomFile } from './files.js'
import { MountProcess } from './mount-process.js'
import { startNginx } from './nginx.js'
import { firstLine, rotate } from './samples.js'
import type { BenchContext } from './types.js'
import { listed, startDr, startPrimary, waitFor, type VmPrimary } from './volmirror-nodes.js'

/** Served is the image every setup reads: `dir/name`, served by nginx at `url` + name and by volmirror primaries. */
export interface Served { dir: string, name: string, size: number, url: string }

/** LazyEnv is what a setup needs to start: a fresh directory of its own, the served image, the primary serving it, the program snapshot. */
export interface LazyEnv { root: string, served: Served, primary: VmPrimary, app: string, cleanup: Cleanup, cpuProfDir?: string }

/** LazyMount is a started setup: `file` is the image seen through its mount; `counters` reads what it fetched (volmirror only). */
export interface LazyMount {
  file: string
  stop: () => Promise<void>
  counters?: () => Promise<Record<string, number>>
}

/** LazySetup is one way to read the served image lazily. */
export interface LazySetup {
  id: string
  label: string
  /** The command, MNT standing for the mount point, for the JSON. */
  command: string
  start: (env: LazyEnv) => Promise<LazyMount>
}

async function dirs (root: string, ...names: string[]): Promise<string[]> {
  const out = names.map(n => path.join(root, n))
  for (const d of out) await mkdir(d, { recursive: true })
  return out
}

/** volmirrorDr: a fresh DR (new state, empty image directory) with hydration off (`--hydrate-rate 0`) following the fixture's primary, read through the DR mount. */
export const volmirrorDr: LazySetup = {
  id: 'volmirror',
  label: 'volmirror DR (hydration off)',
  command: 'volmirror dr --images EMPTY --state NEW --mount MNT --primary URL --token-file TOKEN --hydrate-rate 0 (primary: volmirror primary --images SRC --listen 127.0.0.1:0)',
  async start (env) {
    const [drImages, drMnt] = await dirs(env.root, 'dr-images', 'dr-mnt')
    const dr = await startDr({ images: drImages!, state: path.join(env.root, 'dr-state'), mnt: drMnt!, log: path.join(env.root, 'dr.log') }, env.primary,
      { app: env.app, cleanup: env.cleanup, args: ['--hydrate-rate', '0'], ready: listed(env.served.name), ...(env.cpuProfDir ? { cpuProfDir: env.cpuProfDir } : {}) })
    return {
      file: path.join(drMnt!, env.served.name),
      stop: () => dr.stop(),
      counters: async () => {
        const s = await dr.status()
        return { onDemandBytes: s.fetched.onDemandBytes, hydrationBytes: s.fetched.hydrationBytes, fetches: s.fetched.fetches, retries: s.fetched.retries }
      },
    }
  },
}

/** httpfs2 keeps nothing: every read is a range request (PEERS.md: `httpfs2 -c /dev/null -f URL MNT -o ro`). */
export const httpfs2: LazySetup = {
  id: 'httpfs2',
  label: 'httpfs2 (keeps nothing)',
  command: 'httpfs2 -c /dev/null -f http://127.0.0.1:PORT/IMG MNT -o ro',
  async start (env) {
    const [mnt] = await dirs(env.root, 'mnt')
    const proc = await MountProcess.start({
      name: 'httpfs2', cmd: 'httpfs2', args: ['-c', '/dev/null', '-f', env.served.url + env.served.name, mnt!, '-o', 'ro'],
      mountPoint: mnt!, logFile: path.join(env.root, 'httpfs2.log'), cleanup: env.cleanup, stopTimeoutMs: 10_000,
    })
    return { file: path.join(mnt!, env.served.name), stop: () => proc.stop() }
  },
}

function rclone (id: string, label: string, cache: boolean): LazySetup {
  const flags = (cacheDir: string): string[] => cache ? ['--vfs-cache-mode', 'full', '--cache-dir', cacheDir] : ['--vfs-cache-mode', 'off']
  return {
    id,
    label,
    command: `rclone mount :http: MNT --http-url http://127.0.0.1:PORT/ --read-only ${flags('DIR').join(' ')} (fresh cache dir)`,
    async start (env) {
      const [mnt, cacheDir] = await dirs(env.root, 'mnt', 'rclone-cache')
      const proc = await MountProcess.start({
        name: id, cmd: 'rclone',
        // An empty config of our own: rclone never reads or writes the user's.
        args: ['mount', ':http:', mnt!, '--http-url', env.served.url, '--read-only', ...flags(cacheDir!), '--config', path.join(env.root, 'rclone.conf')],
        mountPoint: mnt!, logFile: path.join(env.root, `${id}.log`), cleanup: env.cleanup, stopTimeoutMs: 10_000,
      })
      return { file: path.join(mnt!, env.served.name), stop: () => proc.stop() }
    },
  }
}

/** rcloneFull: `rclone mount --vfs-cache-mode full`, the peer the targets name (keeps what it fetched, downloads ahead in the background). */
export const rcloneFull = rclone('rclone-full', 'rclone full cache', true)

/** rcloneNoCache: `rclone mount` without a VFS cache, an extra reference row. */
export const rcloneNoCache = rclone('rclone-nocache', 'rclone no cache', false)

/** LAZY_SETUPS are every setup, volmirror first. */
export const LAZY_SETUPS: LazySetup[] = [volmirrorDr, httpfs2, rcloneFull, rcloneNoCache]

/**
 * eachLazySetup runs `measure` on every setup, `ctx.runs` times, the setups
 * taking turns in an order rotated every run; each measurement gets a
 * freshly started setup (and its own directory, removed afterwards).
 * A setup that fails to start, or a measurement that throws, is reported
 * to `failed` and the others go on.
 */
export async function eachLazySetup (
  ctx: BenchContext, fixture: LazyFixture, setups: LazySetup[],
  measure: (setup: LazySetup, mount: LazyMount, round: number) => Promise<void>,
  failed: (setup: LazySetup, round: number, why: string) => void,
): Promise<void> {
  for (let round = 0; round < ctx.runs; round++) {
    const order = rotate(setups, round)
    ctx.progress(`run ${round + 1}/${ctx.runs}: ${order.map(s => s.id).join(', ')}`)
    for (const setup of order) {
      const root = path.join(ctx.scratch, `run${round + 1}-${setup.id}`)
      await mkdir(root, { recursive: true })
      try {
        let mount: LazyMount
        try {
          mount = await setup.start({ root, served: fixture.served, primary: fixture.primary, app: ctx.app, cleanup: ctx.cleanup, ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}) })
        } catch (err) {
          failed(setup, round, `did not start: ${firstLine(err)}`)
          ctx.progress(`  ${setup.label}: did not start: ${(err as Error)?.message ?? String(err)}`)
          continue
        }
        try {
          await measure(setup, mount, round)
        } catch (err) {
          failed(setup, round, `failed: ${firstLine(err)}`)
          ctx.progress(`  ${setup.label}: FAILED: ${firstLine(err)}`)
        } finally {
          await mount.stop()
        }
      } finally {
        await rm(root, { recursive: true, force: true }).catch(() => {})
      }
    }
  }
}

/** LazyFixture is the served image, nginx serving it and a volmirror primary serving its directory. */
export interface LazyFixture { served: Served, primary: VmPrimary, stop: () => Promise<void> }

/**
 * lazyFixture writes a `mib` MiB file of random bytes as `served/img.bin`,
 * serves it with nginx and with a volmirror primary, and waits until the
 * primary has computed every region code (reported as a progress line).
 */
export async function lazyFixture (ctx: BenchContext, mib: number): Promise<LazyFixture> {
  const name = 'img.bin'
  const dir = path.join(ctx.scratch, 'served')
  await mkdir(dir, { recursive: true })
  await writeRandomFile(path.join(dir, name), mib)
  const nginx = await startNginx(dir, path.join(ctx.scratch, 'nginx'), ctx.cleanup)
  try {
    const p = path.join(ctx.scratch, 'primary')
    const primary = await startPrimary({ images: dir, state: path.join(p, 'state'), mnt: path.join(p, 'mnt'), log: path.join(p, 'primary.log') },
      { app: ctx.app, cleanup: ctx.cleanup, ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}) })
    try {
      await settled(ctx, primary, mib)
    } catch (err) {
      await primary.stop()
      throw err
    }
    return {
      served: { dir, name, size: mib * 1048576, url: nginx.url },
      primary,
      stop: async () => { try { await primary.stop() } finally { await nginx.stop() } },
    }
  } catch (err) {
    await nginx.stop()
    throw err
  }
}

/** settled waits until `primary` has a valid code for each of the `mib` MiB of its volumes' regions (idle-time hashing done). */
export async function settled (ctx: BenchContext, primary: VmPrimary, mib: number): Promise<void> {
  const t0 = Date.now()
  const s0 = await primary.status()
  const regions = Math.ceil(mib * 1048576 / s0.regionSize)
  // Hashing runs at 64 MiB/s by default: give it twice that long, plus a margin.
  await waitFor(`the primary to compute its ${regions} region codes`, async () => (await primary.status()).codes.valid >= regions, (mib / 32 + 60) * 1000, 250)
  ctx.progress(`primary: all ${regions} region codes valid after ${((Date.now() - t0) / 1000).toFixed(0)} s`)
}
