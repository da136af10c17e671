/**
 * image-dir: the backing directory of volume images, and the one place that
 * calls the file system on it.
 *
 * Every name is checked (lib/core/volume-name.ts) before it becomes a path,
 * so nothing outside the directory can be touched. The methods are thin and
 * come in the flavour their callers need: synchronous ones for the journal
 * apply path (runs on the main thread, in seq order, between a LevelDB commit
 * and the reply to the kernel), promises for everything else.
 *
 * `faults` is the seam tests use to inject failures ("ENOSPC on the 3rd
 * pwrite to vm1.raw") without mocking the file system.
 */
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { createRequire } from 'node:module'
import { checkVolumeName, RESERVED_PREFIX } from '../core/volume-name.js'
import type { FileStat, FsStat } from '../core/volume-fs.js'
import { fromSystemError, VolmirrorError } from '../errors.js'

const require = createRequire(import.meta.url)

/**
 * toFileStat is what getattr reports for a backing file. Times are
 * truncated to the millisecond (fuse-native's unit): never later than the
 * file's own (Node's Stats dates are rounded, which can be).
 */
export function toFileStat (st: fs.Stats): FileStat {
  return {
    mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, nlink: st.nlink, ino: st.ino, dev: st.dev, rdev: st.rdev,
    blksize: st.blksize, blocks: st.blocks,
    atime: Math.floor(st.atimeMs), mtime: Math.floor(st.mtimeMs), ctime: Math.floor(st.ctimeMs),
  }
}

/** FaultHook may throw (an errno error) to fail the named operation. */
export type FaultHook = (op: string, name: string) => void

/** SEEK_DATA and SEEK_HOLE (Linux lseek whence values). */
const SEEK_DATA = 3
const SEEK_HOLE = 4

interface FsExt { seekSync (fd: number, offset: number, whence: number): number }
interface FsNativeExt { trim (fd: number, offset: number, length: number): Promise<void> }
let fsExt: FsExt | undefined
let fsNativeExt: FsNativeExt | undefined

/** ImageDir is one image directory. */
export class ImageDir {
  readonly root: string
  faults: FaultHook | undefined

  constructor (root: string, opts: { faults?: FaultHook } = {}) {
    this.root = path.resolve(root)
    this.faults = opts.faults
  }

  /** check fails with IMAGES_MISSING unless the directory exists. */
  async check (): Promise<void> {
    const st = await fsp.stat(this.root).catch(() => undefined)
    if (!st) throw new VolmirrorError('IMAGES_MISSING', `image directory ${this.root} does not exist (create it, or point --images at your images)`)
    if (!st.isDirectory()) throw new VolmirrorError('IMAGES_MISSING', `image directory ${this.root} is not a directory`)
  }

  /** path maps a volume name ('' is the directory itself) to its backing path. */
  path (name: string): string {
    return name === '' ? this.root : path.join(this.root, checkVolumeName(name))
  }

  /** reservedPath is a path under volmirror's own `.volmirror` entry. */
  reservedPath (...parts: string[]): string {
    return path.join(this.root, RESERVED_PREFIX, ...parts)
  }

  private fault (op: string, name: string): void {
    this.faults?.(op, name)
  }

  // --- promise flavour ---------------------------------------------------

  async lstat (name: string): Promise<fs.Stats> {
    this.fault('lstat', name)
    return await wrap(fsp.lstat(this.path(name)), `stat ${name || '/'}`)
  }

  async readdir (name: string): Promise<fs.Dirent[]> {
    this.fault('readdir', name)
    return await wrap(fsp.readdir(this.path(name), { withFileTypes: true }), `readdir ${name || '/'}`)
  }

  async open (name: string, flags: number, mode = 0o644): Promise<number> {
    this.fault('open', name)
    return await new Promise<number>((resolve, reject) => {
      fs.open(this.path(name), flags, mode, (err, fd) => err ? reject(fromSystemError(err, `open ${name}`)) : resolve(fd))
    })
  }

  /** read reads into `buf` at `position`; short only at end of file. */
  read (fd: number, buf: Buffer, length: number, position: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      fs.read(fd, buf, 0, length, position, (err, n) => err ? reject(fromSystemError(err, 'read')) : resolve(n))
    })
  }

  /** pwrite writes all of `data` at `position` in the thread pool (loops over short writes). */
  async pwrite (fd: number, data: Uint8Array, position: number, name: string): Promise<void> {
    this.fault('pwrite', name)
    let done = 0
    while (done < data.length) {
      done += await new Promise<number>((resolve, reject) => {
        fs.write(fd, data, done, data.length - done, position + done, (err, n) => err ? reject(fromSystemError(err, `write ${name}`)) : resolve(n))
      })
    }
  }

  /** readFull reads `length` bytes, looping over short reads; fewer only at end of file. */
  async readFull (fd: number, buf: Buffer, length: number, position: number): Promise<number> {
    let done = 0
    while (done < length) {
      const n = await new Promise<number>((resolve, reject) => {
        fs.read(fd, buf, done, length - done, position + done, (err, k) => err ? reject(fromSystemError(err, 'read')) : resolve(k))
      })
      if (n === 0) break
      done += n
    }
    return done
  }

  fdatasync (fd: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      fs.fdatasync(fd, err => err ? reject(fromSystemError(err, 'fdatasync')) : resolve())
    })
  }

  close (fd: number): Promise<void> {
    return new Promise<void>((resolve) => { fs.close(fd, () => resolve()) })
  }

  async fsyncDir (name: string): Promise<void> {
    const fd = await wrap(fsp.open(this.path(name), 'r'), `open ${name || '/'}`)
    try { await fd.sync() } finally { await fd.close() }
  }

  async utimes (name: string, atimeMs: number, mtimeMs: number): Promise<void> {
    this.fault('utimes', name)
    await wrap(fsp.utimes(this.path(name), atimeMs / 1000, mtimeMs / 1000), `utimes ${name}`)
  }

  async chown (name: string, uid: number, gid: number): Promise<void> {
    this.fault('chown', name)
    await wrap(fsp.lchown(this.path(name), uid, gid), `chown ${name}`)
  }

  async statfs (): Promise<fs.StatsFs> {
    return await wrap(fsp.statfs(this.root), 'statfs')
  }

  /** punchHole releases a byte range (keeps the size); the range reads as zeros. */
  async punchHole (fd: number, offset: number, length: number): Promise<void> {
    fsNativeExt ??= require('fs-native-extensions') as FsNativeExt
    await wrap(fsNativeExt.trim(fd, offset, length), 'punch hole')
  }

  // --- what a mount shows (the same for primary and DR) ---------------------

  /** volumeStat is getattr of a volume or directory; anything else is NOT_FOUND. */
  async volumeStat (name: string): Promise<FileStat> {
    const st = await this.lstat(name)
    if (!st.isFile() && !st.isDirectory()) throw new VolmirrorError('NOT_FOUND', `${name} is not a volume`)
    return toFileStat(st)
  }

  /** volumeEntries lists a directory's volumes and subdirectories (volmirror's own entries hidden). */
  async volumeEntries (name: string): Promise<string[]> {
    const entries = await this.readdir(name)
    return entries
      .filter(e => (e.isFile() || e.isDirectory()) && !(name === '' && e.name.startsWith(RESERVED_PREFIX)))
      .map(e => e.name)
  }

  /** fsStat is statfs of the file system holding the images. */
  async fsStat (): Promise<FsStat> {
    const s = await this.statfs()
    return {
      bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
      files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0, flag: 0, namemax: 255,
    }
  }

  /** listVolumes walks the directory: every volume file with its stats (volmirror's own entries skipped). */
  async listVolumes (): Promise<Array<{ name: string, stats: fs.Stats }>> {
    const out: Array<{ name: string, stats: fs.Stats }> = []
    const walk = async (dir: string): Promise<void> => {
      for (const e of await this.readdir(dir).catch(() => [])) {
        if (dir === '' && e.name.startsWith(RESERVED_PREFIX)) continue
        const name = dir ? `${dir}/${e.name}` : e.name
        if (e.isDirectory()) { await walk(name); continue }
        if (!e.isFile()) continue
        const stats = await this.lstat(name).catch(() => undefined)
        if (stats) out.push({ name, stats })
      }
    }
    await walk('')
    return out.sort((a, b) => a.name < b.name ? -1 : 1)
  }

  // --- synchronous flavour (the apply path) --------------------------------

  openSync (name: string, flags: number, mode = 0o644): number {
    this.fault('open', name)
    try { return fs.openSync(this.path(name), flags, mode) } catch (err) { throw fromSystemError(err, `open ${name}`) }
  }

  /** pwriteSync writes all of `data` at `position` (loops over short writes). */
  pwriteSync (fd: number, data: Uint8Array, position: number, name: string): void {
    this.fault('pwrite', name)
    try {
      let done = 0
      while (done < data.length) {
        done += fs.writeSync(fd, data, done, data.length - done, position + done)
      }
    } catch (err) {
      throw fromSystemError(err, `write ${name}`)
    }
  }

  /** readSync reads on the calling thread (the main thread: no thread-pool round trip). */
  readSync (fd: number, buf: Buffer, length: number, position: number): number {
    try { return fs.readSync(fd, buf, 0, length, position) } catch (err) { throw fromSystemError(err, 'read') }
  }

  ftruncateSync (fd: number, size: number, name: string): void {
    this.fault('truncate', name)
    try { fs.ftruncateSync(fd, size) } catch (err) { throw fromSystemError(err, `truncate ${name}`) }
  }

  fstatSync (fd: number): fs.Stats {
    return fs.fstatSync(fd)
  }

  mkdirSync (name: string, mode: number): void {
    this.fault('mkdir', name)
    try { fs.mkdirSync(this.path(name), { mode }) } catch (err) { throw fromSystemError(err, `mkdir ${name}`) }
  }

  rmdirSync (name: string): void {
    this.fault('rmdir', name)
    try { fs.rmdirSync(this.path(name)) } catch (err) { throw fromSystemError(err, `rmdir ${name}`) }
  }

  unlinkSync (name: string): void {
    this.fault('unlink', name)
    try { fs.unlinkSync(this.path(name)) } catch (err) { throw fromSystemError(err, `unlink ${name}`) }
  }

  renameSync (from: string, to: string): void {
    this.fault('rename', from)
    try { fs.renameSync(this.path(from), this.path(to)) } catch (err) { throw fromSystemError(err, `rename ${from} to ${to}`) }
  }

  chmodSync (name: string, mode: number): void {
    this.fault('chmod', name)
    try { fs.chmodSync(this.path(name), mode) } catch (err) { throw fromSystemError(err, `chmod ${name}`) }
  }

  lstatSync (name: string): fs.Stats | undefined {
    try { return fs.lstatSync(this.path(name)) } catch { return undefined }
  }

  closeSync (fd: number): void {
    try { fs.closeSync(fd) } catch {}
  }

  /**
   * seekData returns the first offset >= `offset` that holds data, or -1 if
   * only a hole follows (SEEK_DATA through fs-ext). Where the file system
   * has no holes, everything is data.
   */
  seekData (fd: number, offset: number): number {
    return seek(fd, offset, SEEK_DATA)
  }

  /** seekHole returns the first offset >= `offset` inside a hole (the file size if none). */
  seekHole (fd: number, offset: number): number {
    return seek(fd, offset, SEEK_HOLE)
  }
}

function seek (fd: number, offset: number, whence: number): number {
  fsExt ??= require('fs-ext') as FsExt
  try {
    return fsExt.seekSync(fd, offset, whence)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENXIO') return -1
    throw fromSystemError(err, whence === SEEK_DATA ? 'seek data' : 'seek hole')
  }
}

async function wrap<T> (p: Promise<T>, what: string): Promise<T> {
  try { return await p } catch (err) { throw fromSystemError(err, what) }
}
