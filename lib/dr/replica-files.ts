/**
 * replica-files: the DR's images as a ReplicaImage (lib/core/replica.ts).
 *
 * Synchronous, like the primary's apply path: group applies and fetched
 * chunks are written on the main thread, in order, so they never interleave.
 * Zeroes are punched out (the DR stays sparse). Every write clears the
 * codes of the regions it touches: this is the one place DR bytes change,
 * and so where history keeps what they were first (lib/dr/history.ts).
 */
import { createRequire } from 'node:module'
import type { ReplicaImage } from '../core/replica.js'
import { fromSystemError } from '../errors.js'
import type { ImageDir } from '../store/image-dir.js'
import type { RegionCodes } from '../store/region-codes.js'
import type { VolumeFiles } from '../store/volume-files.js'
import type { DrVolumes } from './dr-volumes.js'
import type { RecoveryHistory } from './recovery-history.js'

const require = createRequire(import.meta.url)
const { trimSync } = require('fs-native-extensions') as { trimSync: (fd: number, offset: number, length: number) => void }

/** ReplicaFiles writes replica bytes into the DR's image files. */
export class ReplicaFiles implements ReplicaImage {
  /** When bytes last changed (ms): idle time is for computing codes. */
  lastWriteAt = 0
  /** Keeps what bytes held before they change (recovery points), when set. */
  history: RecoveryHistory | undefined
  /** Told of every change (a region reader serving downstream DRs seqlocks on it); `whole` for a size change. */
  onChange: ((volume: number, name: string, offset: number, length: number, whole: boolean) => void) | undefined

  constructor (
    private readonly images: ImageDir,
    private readonly files: VolumeFiles,
    private readonly volumes: DrVolumes,
    private readonly codes: RegionCodes,
  ) {}

  private file (volume: number): ReturnType<VolumeFiles['get']> {
    const v = this.volumes.byIdOf(volume)
    if (!v) throw new Error(`no DR volume with id ${volume}`)
    return this.files.get(v.name)
  }

  size (volume: number): number {
    return this.images.fstatSync(this.file(volume).fd).size
  }

  write (volume: number, offset: number, data: Uint8Array): void {
    const f = this.file(volume)
    this.keep(volume, f, offset, data.length)
    this.codes.invalidate(f.name, offset, data.length)
    this.onChange?.(volume, f.name, offset, data.length, false)
    this.images.pwriteSync(f.fd, data, offset, f.name)
    this.files.markDirty(f)
    this.lastWriteAt = Date.now()
  }

  /**
   * writeAsync writes in the thread pool (a fetched region, for hydration).
   * The caller keeps records from being applied meanwhile (apply lock);
   * the image stays open until the write is done, even if it is removed.
   */
  async writeAsync (volume: number, offset: number, data: Uint8Array): Promise<void> {
    const f = this.file(volume)
    this.keep(volume, f, offset, data.length)
    this.codes.invalidate(f.name, offset, data.length)
    this.onChange?.(volume, f.name, offset, data.length, false)
    await this.files.use(f.name, async g => { await this.images.pwrite(g.fd, data, offset, g.name) })
    this.files.markDirty(f)
    this.lastWriteAt = Date.now()
  }

  zero (volume: number, offset: number, length: number): void {
    const f = this.file(volume)
    this.keep(volume, f, offset, length)
    this.codes.invalidate(f.name, offset, length)
    this.onChange?.(volume, f.name, offset, length, false)
    this.lastWriteAt = Date.now()
    if (offset + length > this.images.fstatSync(f.fd).size) this.images.ftruncateSync(f.fd, offset + length, f.name)
    try {
      trimSync(f.fd, offset, length)
    } catch (err) {
      throw fromSystemError(err, `punch hole in ${f.name}`)
    }
    this.files.markDirty(f)
  }

  truncate (volume: number, size: number): void {
    const f = this.file(volume)
    const h = this.history
    if (h?.capturing) {
      const old = this.images.fstatSync(f.fd).size
      if (size !== old) h.undo.keepSize(volume, f.name, old, h.cause)
      if (size < old) h.undo.keepBytes(volume, f.name, f.fd, old, size, old - size, h.cause)
    }
    this.onChange?.(volume, f.name, 0, 0, true)
    this.codes.invalidateFrom(f.name, Math.min(size, this.images.fstatSync(f.fd).size))
    this.lastWriteAt = Date.now()
    this.images.ftruncateSync(f.fd, size, f.name)
    this.files.markDirty(f)
  }

  /** keep gives history what [offset, offset + length) holds before it changes. */
  private keep (volume: number, f: ReturnType<VolumeFiles['get']>, offset: number, length: number): void {
    const h = this.history
    if (!h?.capturing) return
    h.undo.keepBytes(volume, f.name, f.fd, this.images.fstatSync(f.fd).size, offset, length, h.cause)
  }
}
