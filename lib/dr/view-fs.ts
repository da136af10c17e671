/**
 * view-fs: a FUSE file system of a history view (lib/dr/history-view.ts):
 * every volume as it was at one recovery point, read-only (`mount-at`), or
 * writable through a scratch overlay (`test-failover`): writes go to
 * sparse files of their own, never to the DR's images, and are gone when
 * the test ends (unless kept).
 *
 * The overlay keeps, per volume, which 4 KiB blocks it holds; a write that
 * covers part of a block first copies the rest of the block from the view.
 * A volume cut shorter and grown again reads zeros past the cut, as a file
 * would.
 */
import fs from 'node:fs'
import path from 'node:path'
import { RegionBitmap } from '../core/region-map.js'
import type { FileStat, FsStat, VolumeFs } from '../core/volume-fs.js'
import { VolmirrorError } from '../errors.js'
import type { ImageDir } from '../store/image-dir.js'
import type { HistoryView } from './history-view.js'

const BLOCK = 4096
/** O_ACCMODE masks the access mode of open flags. */
const O_ACCMODE = 3

/** OverlayFile is one volume's writes in a test failover. */
interface OverlayFile {
  fd: number
  file: string
  size: number
  /** Bytes at or past this offset that the overlay does not hold read as zeros (the volume was cut there). */
  zeroFrom: number
  blocks: RegionBitmap
}

/** Overlay holds a test failover's writes in sparse scratch files. */
export class Overlay {
  private readonly files = new Map<string, OverlayFile>()
  /** Bytes written through the overlay. */
  written = 0

  constructor (readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  }

  /** file is the overlay of `name` (made at its first write), starting from the view's size. */
  file (name: string, viewSize: number, create: boolean): OverlayFile | undefined {
    let f = this.files.get(name)
    if (f || !create) return f
    const file = path.join(this.dir, encodeURIComponent(name))
    const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_RDWR | fs.constants.O_TRUNC, 0o600)
    f = { fd, file, size: viewSize, zeroFrom: viewSize, blocks: new RegionBitmap(0) }
    this.files.set(name, f)
    return f
  }

  /** close closes the scratch files; `keep` leaves them (and a list of what they hold), else removes the directory. */
  close (keep: boolean): void {
    for (const f of this.files.values()) fs.closeSync(f.fd)
    if (keep) {
      const list = [...this.files].map(([name, f]) => ({ volume: name, file: path.basename(f.file), size: f.size, blocks: f.blocks.setCount, blockSize: BLOCK }))
      fs.writeFileSync(path.join(this.dir, 'overlay.json'), JSON.stringify({ volumes: list, note: 'each file holds the blocks written during the test failover at their own offsets; blocks not listed as held came from the recovery point' }, null, 2) + '\n')
    } else {
      fs.rmSync(this.dir, { recursive: true, force: true })
    }
    this.files.clear()
  }
}

/** ViewFs serves a history view (and, for a test failover, an overlay over it). */
export class ViewFs implements VolumeFs {
  private nextHandle = 1
  private readonly handles = new Map<number, string>()
  /** The recovery point's time, shown as every volume's times. */
  private readonly timeMs: number

  constructor (
    private readonly view: HistoryView,
    private readonly images: ImageDir,
    private readonly overlay?: Overlay,
  ) {
    this.timeMs = view.point.ts
  }

  async getattr (name: string): Promise<FileStat> {
    const v = this.view.volume(name)
    if (v) return this.stat(0o100000 | (this.overlay ? 0o644 : 0o444), this.size(name, v.size))
    if (name === '' || this.view.list().some(x => x.name.startsWith(name + '/'))) return this.stat(0o40000 | 0o755, 4096)
    throw new VolmirrorError('NOT_FOUND', `${name} did not exist at seq ${this.view.point.seq}`)
  }

  async readdir (name: string): Promise<string[]> {
    const prefix = name === '' ? '' : name + '/'
    const out = new Set<string>()
    for (const v of this.view.list()) if (v.name.startsWith(prefix)) out.add(v.name.slice(prefix.length).split('/')[0]!)
    if (out.size === 0 && name !== '') await this.getattr(name)
    return [...out].sort()
  }

  async open (name: string, flags: number): Promise<number> {
    if (!this.view.volume(name)) {
      await this.getattr(name)
      throw new VolmirrorError('IS_DIRECTORY', `${name} is a directory`)
    }
    if ((flags & O_ACCMODE) !== fs.constants.O_RDONLY && !this.overlay) throw readOnly()
    if ((flags & fs.constants.O_TRUNC) !== 0) await this.truncate(name, 0)
    const h = this.nextHandle++
    this.handles.set(h, name)
    return h
  }

  async release (_name: string, handle: number): Promise<void> {
    this.handles.delete(handle)
  }

  async read (name: string, _handle: number, target: Buffer, length: number, position: number): Promise<number> {
    const v = this.view.volume(name)
    if (!v) throw new VolmirrorError('NOT_FOUND', `${name} did not exist at seq ${this.view.point.seq}`)
    const o = this.overlay?.file(name, v.size, false)
    if (!o) return this.view.readSync(name, target, length, position)
    const end = Math.min(position + length, o.size)
    if (end <= position) return 0
    for (let at = position; at < end;) {
      const b = Math.floor(at / BLOCK)
      const stop = Math.min(end, (b + 1) * BLOCK)
      const dst = target.subarray(at - position, stop - position)
      if (b < o.blocks.length && o.blocks.get(b)) readFull(o.fd, dst, at)
      else this.readUnder(name, v.size, o, dst, at)
      at = stop
    }
    return end - position
  }

  async write (name: string, _handle: number, data: Buffer, position: number): Promise<number> {
    const v = this.view.volume(name)
    if (!v) throw new VolmirrorError('NOT_FOUND', `${name} did not exist at seq ${this.view.point.seq}`)
    if (!this.overlay) throw readOnly()
    const o = this.overlay.file(name, v.size, true)!
    const end = position + data.length
    const first = Math.floor(position / BLOCK)
    const last = Math.floor((end - 1) / BLOCK)
    if (o.blocks.length <= last) o.blocks.resize(last + 1)
    // Blocks only partly written are first filled from below.
    for (const b of new Set([first, last])) {
      if (o.blocks.get(b) || (position <= b * BLOCK && end >= (b + 1) * BLOCK)) continue
      const buf = Buffer.alloc(BLOCK)
      this.readUnder(name, v.size, o, buf, b * BLOCK)
      writeFull(o.fd, buf, b * BLOCK)
    }
    writeFull(o.fd, data, position)
    o.blocks.setRange(first, last + 1)
    if (end > o.size) o.size = end
    this.overlay.written += data.length
    return data.length
  }

  async truncate (name: string, size: number): Promise<void> {
    const v = this.view.volume(name)
    if (!v) throw new VolmirrorError('NOT_FOUND', `${name} did not exist at seq ${this.view.point.seq}`)
    if (!this.overlay) throw readOnly()
    const o = this.overlay.file(name, v.size, true)!
    if (size < o.size) {
      o.zeroFrom = Math.min(o.zeroFrom, size)
      fs.ftruncateSync(o.fd, size)
      const keep = Math.ceil(size / BLOCK)
      if (o.blocks.length > keep) o.blocks.resize(keep)
      // The block the cut falls in keeps only its head: the rest reads zeros.
      if (size % BLOCK !== 0 && keep > 0 && !o.blocks.get(keep - 1)) {
        const buf = Buffer.alloc(BLOCK)
        this.readUnder(name, v.size, o, buf.subarray(0, size % BLOCK), (keep - 1) * BLOCK)
        writeFull(o.fd, buf, (keep - 1) * BLOCK)
        o.blocks.set(keep - 1)
      }
    }
    o.size = size
  }

  async fsync (): Promise<void> {}
  async flush (): Promise<void> {}
  async statfs (): Promise<FsStat> { return await this.images.fsStat() }
  async create (): Promise<number> { throw notHere() }
  async unlink (): Promise<void> { throw notHere() }
  async rename (): Promise<void> { throw notHere() }
  async mkdir (): Promise<void> { throw notHere() }
  async rmdir (): Promise<void> { throw notHere() }
  async chmod (): Promise<void> { throw notHere() }
  async chown (): Promise<void> { throw notHere() }
  async utimens (): Promise<void> {}

  private size (name: string, viewSize: number): number {
    return this.overlay?.file(name, viewSize, false)?.size ?? viewSize
  }

  /** readUnder reads what lies under the overlay: the view's bytes, or zeros past a cut or the view's end. */
  private readUnder (name: string, viewSize: number, o: OverlayFile, dst: Buffer, at: number): void {
    const limit = Math.min(viewSize, o.zeroFrom)
    const n = at < limit ? this.view.readSync(name, dst, Math.min(dst.length, limit - at), at) : 0
    dst.fill(0, n)
  }

  private stat (mode: number, size: number): FileStat {
    const uid = process.getuid?.() ?? 0
    const gid = process.getgid?.() ?? 0
    return {
      mode, uid, gid, size, nlink: 1, ino: 0, dev: 0, rdev: 0, blksize: BLOCK, blocks: Math.ceil(size / 512),
      atime: this.timeMs, mtime: this.timeMs, ctime: this.timeMs,
    }
  }
}

function readOnly (): VolmirrorError {
  return new VolmirrorError('READ_ONLY', 'this is a point-in-time view: read-only (a test failover is writable)')
}

function notHere (): VolmirrorError {
  return new VolmirrorError('READ_ONLY', 'a point-in-time view keeps the volumes of its recovery point: no names are created, removed or renamed')
}

function readFull (fd: number, dst: Buffer, at: number): void {
  let done = 0
  while (done < dst.length) {
    const n = fs.readSync(fd, dst, done, dst.length - done, at + done)
    if (n === 0) { dst.fill(0, done); return }
    done += n
  }
}

function writeFull (fd: number, data: Buffer, at: number): void {
  let done = 0
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, at + done)
}
