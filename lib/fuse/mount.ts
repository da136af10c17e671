/**
 * mount: a FUSE mount of a VolumeFs, through fuse-native.
 *
 * Before mounting, the mount point is checked (exists, is a directory, is
 * empty, is not mounted) and a stale mount left by a killed node is cleaned
 * (`fusermount -u`, then `umount -l`). fuse-native is loaded only here, so
 * commands that never mount work without libfuse, and a missing libfuse is
 * reported with the package to install.
 *
 * Mount options always include `big_writes,max_write=131072`: without them
 * libfuse 2 hands writes over in 4 KiB pieces.
 */
import { execFile } from 'node:child_process'
import { readFile, readdir, realpath, stat } from 'node:fs/promises'
import path from 'node:path'
import type { VolumeFs } from '../core/volume-fs.js'
import { VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import { makeFuseOps } from './adapter.js'

/** MountOptions choose the kernel-facing behaviour of one mount. */
export interface MountOptions {
  log: Logger
  /** fuse-native's per-op timeout; must exceed every timeout of ours (copy-on-read fetches). */
  opTimeoutMs?: number
  /** Let other users (a hypervisor running as its own user) use the mount. Default: when root. */
  allowOther?: boolean
  /** Bypass the kernel page cache (a DR mount whose files change under readers). */
  directIo?: boolean
  /** Seconds the kernel may cache attributes and names. */
  attrTimeout?: number
  /** A name for `mount` output (fsname). */
  fsname?: string
  /** The native data path's hook table (lib/fuse/native-path.ts): reads and writes it serves never reach `vfs`. */
  nativeHooks?: unknown
}

type FuseClass = typeof import('fuse-native')
type FuseInstance = InstanceType<FuseClass>
let fuseModule: FuseClass | undefined

async function loadFuse (): Promise<FuseClass> {
  if (fuseModule) return fuseModule
  try {
    const mod = await import('fuse-native')
    fuseModule = ((mod as { default?: FuseClass }).default ?? mod) as FuseClass
    return fuseModule
  } catch (err) {
    const msg = (err as Error).message
    if (/libfuse\.so/.test(msg)) {
      throw new VolmirrorError('LIBFUSE_MISSING',
        'libfuse 2 is not installed: run `apt-get install libfuse2` (libfuse2t64 on Debian 13 / Ubuntu 24.04)', { cause: err })
    }
    throw new VolmirrorError('FUSE_UNAVAILABLE', `cannot load fuse-native: ${msg}`, { cause: err })
  }
}

/** FuseMount mounts one VolumeFs at one directory. */
export class FuseMount {
  readonly mountPoint: string
  private fuse: FuseInstance | undefined
  private readonly opts: Required<Omit<MountOptions, 'fsname' | 'nativeHooks'>> & { fsname: string, nativeHooks: unknown }

  constructor (mountPoint: string, private readonly vfs: VolumeFs, opts: MountOptions) {
    this.mountPoint = path.resolve(mountPoint)
    this.opts = {
      log: opts.log,
      opTimeoutMs: opts.opTimeoutMs ?? 120_000,
      allowOther: opts.allowOther ?? process.getuid?.() === 0,
      directIo: opts.directIo ?? false,
      attrTimeout: opts.attrTimeout ?? 1,
      fsname: opts.fsname ?? 'volmirror',
      nativeHooks: opts.nativeHooks,
    }
  }

  /** mount checks the mount point, cleans a stale mount, and mounts; resolves once the kernel talks to us. */
  async mount (): Promise<void> {
    const Fuse = await loadFuse()
    await prepareMountPoint(this.mountPoint, this.opts.log)
    if (!(await stat('/dev/fuse').then(() => true, () => false))) {
      throw new VolmirrorError('FUSE_UNAVAILABLE', '/dev/fuse is missing: load the fuse kernel module (`modprobe fuse`)')
    }
    const options = this.fuseOptions()
    // fuse-native builds its option string from a fixed list (and mangles
    // user_id); we give it ours, and fix its fgetattr, which calls getattr.
    class VolmirrorFuse extends Fuse {
      override _fuseOptions (): string { return '-o' + options.join(',') }
      _op_fgetattr (signal: (...a: unknown[]) => void, p: string, fd: number): void {
        (this as unknown as { _op_getattr: (s: unknown, p: string, fd: number) => void })._op_getattr(signal, p, fd)
      }
    }
    const ops = makeFuseOps(this.vfs, { opDeadlineMs: this.opts.opTimeoutMs - 1000, log: this.opts.log })
    const fuse = new VolmirrorFuse(this.mountPoint, ops, {
      timeout: opTimeouts(this.opts.opTimeoutMs),
      ...(this.opts.nativeHooks !== undefined ? { volmirrorHooks: this.opts.nativeHooks } : {}),
    })
    await new Promise<void>((resolve, reject) => {
      fuse.mount((err) => {
        if (!err) { resolve(); return }
        reject(new VolmirrorError('MOUNT_FAILED', `cannot mount ${this.mountPoint}: ${err.message}` +
          (process.getuid?.() !== 0 ? ' (not root: is fusermount (package fuse3) installed and /dev/fuse usable?)' : ''), { cause: err }))
      })
    })
    this.fuse = fuse
    this.opts.log.info('fuse.mounted', { mount: this.mountPoint, options: options.join(','), dataPath: this.dataPath })
  }

  /** unmount detaches the mount (lazily if busy); safe to call twice. */
  async unmount (): Promise<void> {
    const fuse = this.fuse
    if (!fuse) return
    this.fuse = undefined
    const err = await new Promise<Error | null>(resolve => fuse.unmount(resolve))
    if (err) {
      this.opts.log.warn('fuse.unmount_retry', { mount: this.mountPoint, err })
      await forceUnmount(this.mountPoint)
    }
    this.opts.log.info('fuse.unmounted', { mount: this.mountPoint })
  }

  get mounted (): boolean { return this.fuse !== undefined }

  /** dataPath says who serves reads and writes: the native hooks, or JavaScript. */
  get dataPath (): 'native' | 'js' { return this.opts.nativeHooks !== undefined ? 'native' : 'js' }

  private fuseOptions (): string[] {
    const o = [
      `fsname=${this.opts.fsname.replace(/[,\\\s]/g, '_')}`,
      'subtype=volmirror',
      'big_writes',
      'max_write=131072',
      'max_read=131072',
      'default_permissions',
      `attr_timeout=${this.opts.attrTimeout}`,
      `entry_timeout=${this.opts.attrTimeout}`,
    ]
    if (this.opts.allowOther) o.push('allow_other')
    if (this.opts.directIo) o.push('direct_io')
    return o
  }
}

/**
 * opTimeouts: fuse-native answers ETIMEDOUT for an op that takes longer than
 * its timeout and frees the op's buffer. A mutation is answered only when
 * its outcome is known (a timed-out write that later lands would be a lie to
 * the application), and its buffer is written to the journal without a
 * copy, so mutations have no timeout. Reads and lookups keep one.
 */
function opTimeouts (ms: number): Record<string, number | false> {
  const t: Record<string, number | false> = { default: ms }
  for (const op of ['write', 'truncate', 'ftruncate', 'create', 'unlink', 'rename', 'mkdir', 'rmdir', 'fsync', 'chmod', 'release', 'flush']) t[op] = false
  return t
}

/** MountInfo is one line of /proc/self/mountinfo that matters here. */
interface MountInfo { mountPoint: string, fsType: string }

async function mountsAt (dir: string): Promise<MountInfo[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  const out: MountInfo[] = []
  for (const line of text.split('\n')) {
    const parts = line.split(' ')
    if (parts.length < 10) continue
    const mp = unescapeMount(parts[4]!)
    const sep = parts.indexOf('-')
    if (mp === dir) out.push({ mountPoint: mp, fsType: parts[sep + 1] ?? '' })
  }
  return out
}

function unescapeMount (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** isMounted tells whether something is mounted exactly at `dir`. */
export async function isMounted (dir: string): Promise<boolean> {
  return (await mountsAt(path.resolve(dir))).length > 0
}

/**
 * prepareMountPoint fails with a clear code unless `dir` is an empty
 * directory that nothing is mounted on; a stale FUSE mount (its process is
 * gone: ENOTCONN) is unmounted first.
 */
export async function prepareMountPoint (dir: string, log: Logger): Promise<void> {
  let st
  try {
    st = await stat(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTCONN') {
      await cleanStale(dir, log)
      return await prepareMountPoint(dir, log)
    }
    if (code === 'ENOENT') throw new VolmirrorError('MOUNTPOINT_MISSING', `mount point ${dir} does not exist (create it with: mkdir -p ${dir})`)
    throw new VolmirrorError('MOUNTPOINT_IN_USE', `mount point ${dir} cannot be used: ${(err as Error).message}`, { cause: err })
  }
  if (!st.isDirectory()) throw new VolmirrorError('MOUNTPOINT_NOT_DIRECTORY', `mount point ${dir} is not a directory`)
  const real = await realpath(dir)
  const mounted = await mountsAt(real)
  if (mounted.length > 0) {
    const live = await readdir(real).then(() => true, (err: NodeJS.ErrnoException) => err.code !== 'ENOTCONN')
    if (live) {
      throw new VolmirrorError('MOUNTPOINT_IN_USE', `${dir} is already a mount point (${mounted[0]!.fsType}); unmount it or choose another`)
    }
    await cleanStale(real, log)
  }
  const entries = await readdir(real)
  if (entries.length > 0) {
    throw new VolmirrorError('MOUNTPOINT_NOT_EMPTY', `mount point ${dir} is not empty (${entries.length} entries); use an empty directory`)
  }
}

async function cleanStale (dir: string, log: Logger): Promise<void> {
  log.warn('fuse.stale_mount', { mount: dir, action: 'unmounting' })
  if (await forceUnmount(dir)) {
    log.info('fuse.stale_mount_cleaned', { mount: dir })
    return
  }
  throw new VolmirrorError('MOUNTPOINT_STALE',
    `${dir} holds a stale mount from a node that is gone, and it could not be removed; run: fusermount -u ${dir} (or, as root: umount -l ${dir})`)
}

/** forceUnmount tries `fusermount -u`, then `umount -l`; true when nothing is mounted at `dir` afterwards. */
export async function forceUnmount (dir: string): Promise<boolean> {
  const run = (cmd: string, args: string[]): Promise<boolean> =>
    new Promise(resolve => execFile(cmd, args, err => resolve(!err)))
  if (!(await isMounted(dir))) return true
  await run('fusermount', ['-uz', dir])
  if (!(await isMounted(dir))) return true
  await run('umount', ['-l', dir])
  return !(await isMounted(dir))
}
