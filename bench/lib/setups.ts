/**
 * setups: the file systems a benchmark can put its target file behind,
 * each started as its own child process on (src, mnt).
 *
 * - native: no FUSE at all, the tools work in `src` itself;
 * - bindfs: the C passthrough peer, with PEERS.md's options;
 * - passthrough: bench/passthrough.ts, a bare fuse-native mount in Node;
 * - volmirror: `volmirror primary` with default settings (journaling on,
 *   the native data path);
 * - volmirrorJs: the same with `--data-path js` (every op on Node's main thread).
 */
import path from 'node:path'
import { callControl } from '../../lib/control/control-socket.js'
import type { Cleanup } from './cleanup.js'
import { MountProcess } from './mount-process.js'

/** SetupDirs are one setup's directories: backing files, mount point, node state, log, and the program snapshot (lib/app.ts). */
export interface SetupDirs { src: string, mnt: string, state: string, log: string, app: string }

/** Running is a started setup: `dir` is where the tools do their I/O; `pid` the daemon's, if any. */
export interface Running { dir: string, stop: () => Promise<void>, pid?: number }

/** Setup is one way to serve a directory. */
export interface Setup {
  id: string
  /** Label in the table. */
  label: string
  start: (dirs: SetupDirs, cleanup: Cleanup) => Promise<Running>
}

function fromProcess (p: MountProcess, dir: string): Running {
  return { dir, stop: () => p.stop(), ...(p.pid !== undefined ? { pid: p.pid } : {}) }
}

/** native serves nothing: the tools write to the backing directory. */
export const native: Setup = {
  id: 'native',
  label: 'native (no FUSE)',
  start: async (dirs) => ({ dir: dirs.src, stop: async () => {} }),
}

/** bindfs is PEERS.md's peer: `bindfs --multithreaded -o big_writes,max_write=131072 SRC MNT` (-f: stay our child). */
export const bindfs: Setup = {
  id: 'bindfs',
  label: 'bindfs mt+big_writes',
  start: async (dirs, cleanup) => fromProcess(await MountProcess.start({
    name: 'bindfs', cmd: 'bindfs', args: ['-f', '--multithreaded', '-o', 'big_writes,max_write=131072', dirs.src, dirs.mnt],
    mountPoint: dirs.mnt, logFile: dirs.log, cleanup,
  }), dirs.mnt),
}

/** passthrough is bench/passthrough.ts: FUSE in Node with volmirror's mount options, no journal. */
export const passthrough: Setup = {
  id: 'passthrough',
  label: 'fuse-native passthrough (no journal)',
  start: async (dirs, cleanup) => fromProcess(await MountProcess.start({
    name: 'passthrough', cmd: process.execPath, args: [path.join(dirs.app, 'dist', 'bench', 'passthrough.js'), dirs.src, dirs.mnt],
    env: { UV_THREADPOOL_SIZE: '64' }, // as bin/volmirror.js sets it
    mountPoint: dirs.mnt, logFile: dirs.log, cleanup,
  }), dirs.mnt),
}

function primarySetup (id: string, label: string, extra: string[]): Setup {
  return {
    id,
    label,
    start: async (dirs, cleanup) => fromProcess(await MountProcess.start({
      name: label, cmd: process.execPath,
      args: [path.join(dirs.app, 'bin', 'volmirror.js'), 'primary', '--images', dirs.src, '--state', dirs.state, '--mount', dirs.mnt, ...extra],
      mountPoint: dirs.mnt, logFile: dirs.log, cleanup,
      ready: async () => { await callControl(dirs.state, 'status', {}, 2000); return true },
    }), dirs.mnt),
  }
}

/** volmirror is a primary with default settings: journaling on, no --retain-journal, the native data path. */
export const volmirror: Setup = primarySetup('volmirror', 'volmirror primary', [])

/** volmirrorJs is the same primary on the JavaScript data path (the fallback; what the native path replaced). */
export const volmirrorJs: Setup = primarySetup('volmirror-js', 'volmirror primary, --data-path js', ['--data-path', 'js'])
