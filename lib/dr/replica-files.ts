/**
 * replica-files: the DR's images as a ReplicaImage (lib/core/replica.ts).
 *
 * Synchronous, like the primary's apply path: group applies and fetched
 * chunks are written on the main thread, in order, so they never interleave.
 * Zeroes are punched out (the DR stays sparse).
 */
import { createRequire } from 'node:module'
import type { ReplicaImage } from '../core/replica.js'
import { fromSystemError } from '../errors.js'
import type { ImageDir } from '../store/image-dir.js'
import type { VolumeFiles } from '../store/volume-files.js'
import type { DrVolumes } from './dr-volumes.js'

const require = createRequire(import.meta.url)
const { trimSync } = require('fs-native-extensions') as { trimSync: (fd: number, offset: number, length: number) => void }

/** ReplicaFiles writes replica bytes into the DR's image files. */
export class ReplicaFiles implements ReplicaImage {
  constructor (
    private readonly images: ImageDir,
    private readonly files: VolumeFiles,
    private readonly volumes: DrVolumes,
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
    this.images.pwriteSync(f.fd, data, offset, f.name)
    this.files.markDirty(f)
  }

  zero (volume: number, offset: number, length: number): void {
    const f = this.file(volume)
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
    this.images.ftruncateSync(f.fd, size, f.name)
    this.files.markDirty(f)
  }
}
