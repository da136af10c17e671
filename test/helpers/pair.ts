/**
 * pair: a primary and a DR as separate processes, each with its real FUSE
 * mount, talking HTTP on 127.0.0.1, in one line:
 *
 *   const { primary, dr, dirs } = await startPair({ images: { 'vm1.raw': pattern(1, 64 << 20) } })
 *
 * Both are started through the CLI (bin/volmirror.js) and torn down (stop,
 * unmount) even when the test fails. The test process hosts no mount, so
 * it may read the backing directories directly; the mounts it touches
 * through child processes as usual (fsop.ts, run()).
 */
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { DrStatus } from '../../lib/node/dr-node.js'
import type { PrimaryStatus } from '../../lib/node/primary-node.js'
import { startNode, type NodeProcess } from './proc.js'
import { tmpDir } from './tmp.js'
import { waitFor } from './wait.js'

/** PairDirs are the directories of a pair. */
export interface PairDirs {
  root: string
  images: string
  state: string
  mnt: string
  drImages: string
  drState: string
  drMnt: string
}

/** Pair is a running primary and DR. */
export interface Pair {
  primary: NodeProcess
  dr: NodeProcess
  dirs: PairDirs
  url: string
  /** primaryStatus and drStatus ask the nodes (control socket). */
  primaryStatus: () => Promise<PrimaryStatus>
  drStatus: () => Promise<DrStatus>
  /** startDr starts (again) the DR with the same directories; the old one must be stopped. */
  startDr: (extra?: string[]) => Promise<NodeProcess>
  /**
   * restartPrimary stops the primary (if it runs) and starts it again with
   * the same directories, at the same address (the DR keeps its URL).
   */
  restartPrimary: (extra?: string[]) => Promise<NodeProcess>
  /** caughtUp waits until the DR has applied everything the primary has. */
  caughtUp: (timeoutMs?: number) => Promise<DrStatus>
  /**
   * consistent waits until the DR has registered with the primary, knows
   * the primary's volumes, says every volume is consistent, and has caught
   * up. (A DR's status says consistent before its first registration too:
   * it knows no volumes yet.)
   */
  consistent: (timeoutMs?: number) => Promise<DrStatus>
}

/** PairOptions: files to put in the primary's image directory first, and extra CLI flags. */
export interface PairOptions {
  images?: Record<string, Buffer>
  /** Files for the DR's image directory before it starts (a stale copy). */
  drImages?: Record<string, Buffer>
  primaryArgs?: string[]
  drArgs?: string[]
  /** Hydration rate for the DR (default unlimited); '0' to fetch on demand only. */
  hydrateRate?: string
  /**
   * prepare runs once the directories exist, before any node starts: for
   * images too big to pass as buffers, or made with other tools.
   */
  prepare?: (dirs: PairDirs) => Promise<void>
  /**
   * dr: false starts only the primary; start the DR later with
   * `pair.startDr()` (until then `pair.dr` is not set). Default true.
   */
  dr?: boolean
}

/** startPair starts a primary, then a DR following it. */
export async function startPair (opts: PairOptions = {}): Promise<Pair> {
  const root = await tmpDir('pair')
  const dirs: PairDirs = {
    root,
    images: path.join(root, 'images'),
    state: path.join(root, 'state'),
    mnt: path.join(root, 'mnt'),
    drImages: path.join(root, 'dr-images'),
    drState: path.join(root, 'dr-state'),
    drMnt: path.join(root, 'dr-mnt'),
  }
  for (const d of [dirs.images, dirs.mnt, dirs.drImages, dirs.drMnt]) await mkdir(d, { recursive: true })
  for (const [name, data] of Object.entries(opts.images ?? {})) {
    await mkdir(path.dirname(path.join(dirs.images, name)), { recursive: true })
    await writeFile(path.join(dirs.images, name), data)
  }
  for (const [name, data] of Object.entries(opts.drImages ?? {})) {
    await mkdir(path.dirname(path.join(dirs.drImages, name)), { recursive: true })
    await writeFile(path.join(dirs.drImages, name), data)
  }
  await opts.prepare?.(dirs)
  const startPrimary = async (listen: string, extra: string[] = []): Promise<NodeProcess> => await startNode(['primary', '--images', dirs.images,
    '--state', dirs.state, '--mount', dirs.mnt, '--listen', listen, ...(opts.primaryArgs ?? []), ...extra], { state: dirs.state, mount: dirs.mnt })
  const primary = await startPrimary('127.0.0.1:0')
  const url = (await primary.status<PrimaryStatus>()).listen!
  const startDr = async (extra: string[] = []): Promise<NodeProcess> => await startNode(['dr', '--images', dirs.drImages, '--state', dirs.drState,
    '--mount', dirs.drMnt, '--primary', url, '--token-file', path.join(dirs.state, 'token'),
    '--hydrate-rate', opts.hydrateRate ?? 'unlimited', ...(opts.drArgs ?? []), ...extra], { state: dirs.drState, mount: dirs.drMnt })
  const pair: Pair = {
    primary,
    // Not set until startDr() when opts.dr is false.
    dr: opts.dr === false ? undefined as unknown as NodeProcess : await startDr(),
    dirs,
    url,
    primaryStatus: () => pair.primary.status<PrimaryStatus>(),
    drStatus: () => pair.dr.status<DrStatus>(),
    startDr: async (extra) => { pair.dr = await startDr(extra); return pair.dr },
    restartPrimary: async (extra) => {
      await pair.primary.stop()
      pair.primary = await startPrimary(new URL(url).host, extra)
      return pair.primary
    },
    caughtUp: async (timeoutMs = 30_000) => {
      const last = (await pair.primaryStatus()).seq.last
      return await waitFor(`DR to apply up to seq ${last}`, async () => {
        const s = await pair.drStatus()
        return s.seq.applied >= last ? s : undefined
      }, timeoutMs, 50)
    },
    consistent: async (timeoutMs = 60_000) => {
      return await waitFor('DR to become consistent', async () => {
        const [p, s] = [await pair.primaryStatus(), await pair.drStatus()]
        const names = (vs: Array<{ name: string }>): string => vs.map(v => v.name).sort().join('\n')
        const registered = s.primary.id !== undefined && names(s.volumes) === names(p.volumes)
        return registered && s.consistent && s.seq.applied >= p.seq.last ? s : undefined
      }, timeoutMs, 100)
    },
  }
  return pair
}
