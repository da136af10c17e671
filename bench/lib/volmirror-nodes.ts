/**
 * volmirror-nodes: a volmirror primary serving DRs on 127.0.0.1 and DRs
 * following it, each its own process (`bin/volmirror.js` of the run's
 * snapshot) hosting its own mount, for the dr-* benchmarks.
 *
 * Status comes from the control socket (what `volmirror status --json`
 * prints), asked from this process: it hosts no mount, so nothing here can
 * block on a FUSE handler. With `cpuProfDir` the node runs under
 * `node --cpu-prof` and writes its profile to `cpuProfDir/primary` or
 * `cpuProfDir/dr` when it stops (SIGTERM, a normal exit).
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { callControl } from '../../lib/control/control-socket.js'
import type { DrStatus } from '../../lib/node/dr-node.js'
import type { PrimaryStatus } from '../../lib/node/primary-node.js'
import type { Cleanup } from './cleanup.js'
import { MountProcess } from './mount-process.js'

export { waitFor } from '../../test/helpers/wait.js'

/** NodeDirs are one node's directories and log file. */
export interface NodeDirs { images: string, state: string, mnt: string, log: string }

/** nodeDirs lays out a node's directories under `dir` (images there too, unless given elsewhere), its log at `log`. */
export function nodeDirs (dir: string, log: string, images = path.join(dir, 'images')): NodeDirs {
  return { images, state: path.join(dir, 'state'), mnt: path.join(dir, 'mnt'), log }
}

/** NodeOptions: the program snapshot, the teardown registry, extra CLI flags, and where a CPU profile goes (none when unset). */
export interface NodeOptions {
  app: string
  cleanup: Cleanup
  args?: string[]
  cpuProfDir?: string
}

/** VmNode is a running volmirror node. */
export interface VmNode {
  dirs: NodeDirs
  process: MountProcess
  stop: () => Promise<void>
}

/** VmPrimary is a running primary; `url` is where DRs reach it. */
export interface VmPrimary extends VmNode {
  url: string
  tokenFile: string
  status: () => Promise<PrimaryStatus>
}

/** VmDr is a running DR. */
export interface VmDr extends VmNode {
  status: () => Promise<DrStatus>
}

/** primaryStatus asks the primary on `state` for its status. */
export async function primaryStatus (state: string): Promise<PrimaryStatus> {
  return await callControl<PrimaryStatus>(state, 'status', {}, 10_000)
}

/** drStatus asks the DR on `state` for its status. */
export async function drStatus (state: string): Promise<DrStatus> {
  return await callControl<DrStatus>(state, 'status', {}, 10_000)
}

/** nodeArgs is the command line (after `node`) that runs volmirror with `args`, under the profiler when asked. */
export function nodeArgs (app: string, args: string[], cpuProfDir?: string): string[] {
  return [...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : []), path.join(app, 'bin', 'volmirror.js'), ...args]
}

/** profDir is where a node of `role` writes its CPU profile: a directory per role, so primary and DR profiles stay apart. */
function profDir (opts: NodeOptions, role: 'primary' | 'dr'): string | undefined {
  return opts.cpuProfDir ? path.join(opts.cpuProfDir, role) : undefined
}

async function mkdirs (dirs: NodeDirs, profileDir: string | undefined): Promise<void> {
  for (const d of [dirs.images, dirs.mnt, ...(profileDir ? [profileDir] : [])]) await mkdir(d, { recursive: true })
}

/**
 * startPrimary starts `volmirror primary` listening on 127.0.0.1 (`port`,
 * or one the kernel picks: pass a fixed one to restart it where its DRs
 * expect it) and resolves once it answers status.
 */
export async function startPrimary (dirs: NodeDirs, opts: NodeOptions & { port?: number }): Promise<VmPrimary> {
  await mkdirs(dirs, profDir(opts, 'primary'))
  const proc = await MountProcess.start({
    name: 'volmirror primary', cmd: process.execPath,
    args: nodeArgs(opts.app, ['primary', '--images', dirs.images, '--state', dirs.state, '--mount', dirs.mnt, '--listen', `127.0.0.1:${opts.port ?? 0}`, ...(opts.args ?? [])], profDir(opts, 'primary')),
    mountPoint: dirs.mnt, logFile: dirs.log, cleanup: opts.cleanup,
    ready: async () => (await primaryStatus(dirs.state)).listen !== undefined,
  })
  const url = (await primaryStatus(dirs.state)).listen!
  return { dirs, process: proc, url, tokenFile: path.join(dirs.state, 'token'), status: () => primaryStatus(dirs.state), stop: () => proc.stop() }
}

/**
 * startDr starts `volmirror dr` following `primary` and resolves once its
 * mount is up and it answers status (`ready`, when given, must say yes too:
 * e.g. "the volume is listed", i.e. the DR has registered).
 */
export async function startDr (dirs: NodeDirs, primary: VmPrimary, opts: NodeOptions & { ready?: (s: DrStatus) => boolean }): Promise<VmDr> {
  await mkdirs(dirs, profDir(opts, 'dr'))
  const proc = await MountProcess.start({
    name: 'volmirror dr', cmd: process.execPath,
    args: nodeArgs(opts.app, ['dr', '--images', dirs.images, '--state', dirs.state, '--mount', dirs.mnt,
      '--primary', primary.url, '--token-file', primary.tokenFile, ...(opts.args ?? [])], profDir(opts, 'dr')),
    mountPoint: dirs.mnt, logFile: dirs.log, cleanup: opts.cleanup,
    ready: async () => { const s = await drStatus(dirs.state); return !opts.ready || opts.ready(s) },
    startTimeoutMs: 60_000,
  })
  return { dirs, process: proc, status: () => drStatus(dirs.state), stop: () => proc.stop() }
}

/** listed is a `ready` test: the DR lists `volume` (it has registered with the primary and knows the volume). */
export function listed (volume: string): (s: DrStatus) => boolean {
  return (s) => s.volumes.some(v => v.name === volume)
}

/**
 * caughtUp tells whether the DR is consistent with the primary: it lists
 * `volumes` volumes (an empty list is vacuously "consistent"), all of them
 * consistent, and it has applied everything up to `primaryLast`.
 */
export function caughtUp (s: DrStatus, volumes: number, primaryLast: number): boolean {
  return s.consistent && s.volumes.length >= volumes && s.seq.applied >= primaryLast
}

