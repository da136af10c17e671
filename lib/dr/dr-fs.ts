/**
 * dr-fs: the DR's file system of volumes (the DR mount).
 *
 * Read-only until the DR is promoted: every mutation answers EROFS. A read
 * makes the regions it covers present first (copy-on-read: lib/dr/fetcher.ts),
 * waiting only for the bytes it needs, then reads the DR image. Groups are
 * applied synchronously on the main thread, so a read done there (the
 * default) never sees half a group; with `asyncReads` the read runs in the
 * thread pool holding the apply lock shared instead. A reader that goes on
 * where it stopped is sequential: the next regions are fetched ahead.
 *
 * With the native data path, reads of present regions on handles bound to
 * the native side are served on FUSE threads and never arrive here; only
 * reads that need a fetch do.
 */
import fs from 'node:fs'
import { regionSpans } from '../core/region-map.js'
import type { FileStat, FsStat, VolumeFs } from '../core/volume-fs.js'
import type { Replica } from '../core/replica.js'
import { VolmirrorError } from '../errors.js'
import type { ImageDir } from '../store/image-dir.js'
import type { VolumeFiles } from '../store/volume-files.js'
import type { ApplyLock } from './apply-lock.js'
import type { DrVolumes } from './dr-volumes.js'
import type { Fetcher } from './fetcher.js'
import { ReadAhead } from './read-ahead.js'

/** O_ACCMODE masks the access mode of open flags (not in Node's fs.constants). */
const O_ACCMODE = 3

/** NativeDrHandles binds FUSE handles to native volume slots tied to presence maps. */
export interface NativeDrHandles {
  bind (slot: number): number
  unbind (fh: number): void
  setVolumeId (slot: number, id: number): void
  /** readEnd is where the last native read of the volume in `slot` ended. */
  readEnd (slot: number): number
}

/** DrFs implements VolumeFs for a DR node. */
export class DrFs implements VolumeFs {
  private readonly handles = new Map<number, { name: string, nextRead: number, slot: number }>()
  private readonly readAhead: ReadAhead
  /** JavaScript's own handles start high: native ones are small numbers. */
  private nextHandle = 1 << 30
  private native: NativeDrHandles | undefined

  /** attachNative makes new handles native: the native hooks serve their reads of present regions. */
  attachNative (native: NativeDrHandles | undefined): void {
    this.native = native
  }
  /**
   * Read the images in the thread pool (holding the apply lock) rather than
   * on the main thread: for slow disks, where a read would hold up every
   * other operation meanwhile.
   */
  asyncReads = false

  constructor (
    private readonly images: ImageDir,
    private readonly files: VolumeFiles,
    private readonly volumes: DrVolumes,
    private readonly replica: Replica,
    private readonly fetcher: Fetcher,
    private readonly lock: ApplyLock,
  ) {
    this.readAhead = new ReadAhead(fetcher, replica.regionSize, fetcher.readAhead)
  }

  async getattr (name: string): Promise<FileStat> {
    return await this.images.volumeStat(name)
  }

  async readdir (name: string): Promise<string[]> {
    return await this.images.volumeEntries(name)
  }

  async open (name: string, flags: number): Promise<number> {
    if ((flags & O_ACCMODE) !== fs.constants.O_RDONLY || (flags & fs.constants.O_TRUNC) !== 0) throw readOnly()
    const st = await this.images.lstat(name)
    if (st.isDirectory()) throw new VolmirrorError('IS_DIRECTORY', `${name} is a directory`)
    let h: number
    const slot = this.native ? this.files.get(name).slot : 0
    if (this.native && slot !== 0) {
      this.native.setVolumeId(slot, this.volumes.get(name)?.id ?? -1)
      h = this.native.bind(slot)
    } else {
      do {
        h = this.nextHandle++
        if (this.nextHandle > 0x7fffffff) this.nextHandle = 1 << 30
      } while (this.handles.has(h))
    }
    this.handles.set(h, { name, nextRead: -1, slot })
    return h
  }

  async release (_name: string, handle: number): Promise<void> {
    this.handles.delete(handle)
    this.readAhead.forget(handle)
    if (handle < 1 << 30) this.native?.unbind(handle)
  }

  async read (name: string, handle: number, target: Buffer, length: number, position: number): Promise<number> {
    const v = this.volumes.get(name)
    const file = this.files.get(name)
    const size = this.images.fstatSync(file.fd).size
    const n = Math.max(0, Math.min(length, size - position))
    if (n === 0) return 0
    if (v) {
      const waits: Array<Promise<void>> = []
      const spans = regionSpans(position, n, this.replica.regionSize)
      for (const s of spans) {
        if (!this.replica.present(v.id, s.region)) waits.push(this.fetcher.ensure(v.id, s.region, 'read', { start: s.start, end: s.end }))
      }
      const h = this.handles.get(handle)
      // Sequential: on from where the last read here stopped, or (reads of
      // present regions served natively in between) a little further on.
      const window = this.native ? (this.readAhead.count + 1) * this.replica.regionSize : 0
      if (h && h.nextRead >= 0 && position >= h.nextRead && position <= h.nextRead + window) {
        const native = this.native
        this.readAhead.follow(handle, v.id, spans[spans.length - 1]!.region, native && h.slot !== 0
          ? () => Math.max(h.nextRead, native.readEnd(h.slot))
          : () => h.nextRead)
      }
      if (h) h.nextRead = position + n
      await Promise.all(waits)
    }
    if (!this.asyncReads) return this.images.readSync(this.files.get(name).fd, target, n, position)
    return await this.lock.read(() => this.files.use(name, f => this.images.read(f.fd, target, n, position)))
  }

  async statfs (): Promise<FsStat> {
    return await this.images.fsStat()
  }

  async flush (): Promise<void> {}
  async fsync (): Promise<void> {}
  async write (): Promise<number> { throw readOnly() }
  async create (): Promise<number> { throw readOnly() }
  async truncate (): Promise<void> { throw readOnly() }
  async unlink (): Promise<void> { throw readOnly() }
  async rename (): Promise<void> { throw readOnly() }
  async mkdir (): Promise<void> { throw readOnly() }
  async rmdir (): Promise<void> { throw readOnly() }
  async chmod (): Promise<void> { throw readOnly() }
  async chown (): Promise<void> { throw readOnly() }
  async utimens (): Promise<void> { throw readOnly() }
}

function readOnly (): VolmirrorError {
  return new VolmirrorError('READ_ONLY', 'this is a DR mount: read-only until the DR is promoted')
}
