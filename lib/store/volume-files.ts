/**
 * volume-files: one open descriptor per volume, shared by everything that
 * reads or writes that volume's backing image.
 *
 * The apply path writes through these descriptors (not through the handles
 * applications opened), so an application's O_RDONLY handle, a rename while
 * a file is open, or a fetch reading a region all see one file. Descriptors
 * are reference-counted for in-flight asynchronous reads, so a delete never
 * closes a descriptor under a read (which could then read a reused fd).
 * The dirty flag tells the checkpointer which images to fdatasync.
 *
 * With the native data path, every open image is also registered with the
 * native side (`attachNative`), which keeps a dup of its descriptor, the
 * name its records carry, and its own dirty flag; renames and drops are
 * mirrored there, and `takeDirty` includes what native writers dirtied.
 */
import fs from 'node:fs'
import { isUnder, renamePrefix } from '../core/volume-name.js'
import { VolmirrorError } from '../errors.js'
import type { ImageDir } from './image-dir.js'

/** VolumeFile is an open backing image. */
export class VolumeFile {
  /** Written since the last checkpoint. */
  dirty = false
  /** In-flight asynchronous users; the fd is closed when this drops to 0 after removal. */
  users = 0
  removed = false
  /** The native side's slot for this image (0: not registered). */
  slot = 0
  constructor (public name: string, readonly fd: number, readonly writable: boolean) {}
}

/** NativeVolumes is what VolumeFiles mirrors to the native data path (lib/fuse/native-path.ts). */
export interface NativeVolumes {
  openVolume (fd: number, name: string): number
  renameVolume (slot: number, name: string): void
  closeVolume (slot: number): void
  takeDirty (): number[]
}

/** VolumeFiles maps volume names to open images. */
export class VolumeFiles {
  private readonly byName = new Map<string, VolumeFile>()
  private readonly dirtyFiles = new Set<VolumeFile>()
  private native: NativeVolumes | undefined
  private readonly bySlot = new Map<number, VolumeFile>()

  constructor (private readonly images: ImageDir) {}

  /** get returns the open image of `name`, opening it (synchronously) if needed. */
  get (name: string): VolumeFile {
    let f = this.byName.get(name)
    if (f) return f
    let fd: number
    let writable = true
    try {
      fd = this.images.openSync(name, fs.constants.O_RDWR)
    } catch (err) {
      if ((err as VolmirrorError).code !== 'PERMISSION_DENIED' && (err as VolmirrorError).code !== 'READ_ONLY') throw err
      fd = this.images.openSync(name, fs.constants.O_RDONLY)
      writable = false
    }
    f = new VolumeFile(name, fd, writable)
    this.byName.set(name, f)
    this.register(f)
    return f
  }

  /** attachNative registers every open image (and those opened later) with the native data path. */
  attachNative (native: NativeVolumes): void {
    this.native = native
    for (const f of this.byName.values()) this.register(f)
  }

  /** detachNative stops mirroring (the native side is closed). */
  detachNative (): void {
    this.native = undefined
    for (const f of this.bySlot.values()) f.slot = 0
    this.bySlot.clear()
  }

  private register (f: VolumeFile): void {
    if (!this.native || f.slot !== 0) return
    f.slot = this.native.openVolume(f.fd, f.name)
    this.bySlot.set(f.slot, f)
  }

  /** bySlotOf returns the open image registered under a native slot. */
  bySlotOf (slot: number): VolumeFile | undefined {
    return this.bySlot.get(slot)
  }

  /** peek returns the open image of `name` if it is open, without opening it. */
  peek (name: string): VolumeFile | undefined {
    return this.byName.get(name)
  }

  /** create opens `name` with O_CREAT (no truncation: replaying a create is harmless). */
  create (name: string, mode: number): VolumeFile {
    const fd = this.images.openSync(name, fs.constants.O_RDWR | fs.constants.O_CREAT, mode)
    const old = this.byName.get(name)
    if (old) this.drop(old)
    const f = new VolumeFile(name, fd, true)
    this.byName.set(name, f)
    this.register(f)
    return f
  }

  /** use runs an asynchronous operation on the open image, keeping its fd alive meanwhile. */
  async use<T> (name: string, fn: (f: VolumeFile) => Promise<T>): Promise<T> {
    const f = this.get(name)
    f.users++
    try {
      return await fn(f)
    } finally {
      f.users--
      if (f.removed && f.users === 0) this.images.closeSync(f.fd)
    }
  }

  /** markDirty notes that `f` needs an fdatasync at the next checkpoint. */
  markDirty (f: VolumeFile): void {
    if (!f.dirty) {
      f.dirty = true
      this.dirtyFiles.add(f)
    }
  }

  /** takeDirty returns the images written since the last call and clears their flags. */
  takeDirty (): VolumeFile[] {
    this.pollNative()
    const out = [...this.dirtyFiles]
    this.dirtyFiles.clear()
    for (const f of out) f.dirty = false
    return out
  }

  /** dirtyNow lists the images written since the last takeDirty, without clearing them (write-behind). */
  dirtyNow (): VolumeFile[] {
    this.pollNative()
    return [...this.dirtyFiles]
  }

  /** pollNative moves what native writers dirtied into the dirty set. */
  private pollNative (): void {
    for (const slot of this.native?.takeDirty() ?? []) {
      const f = this.bySlot.get(slot)
      if (f && !f.removed) this.markDirty(f)
    }
  }

  /** hold keeps an image's fd open (as `use` does) until the returned function is called. */
  hold (f: VolumeFile): () => void {
    f.users++
    let released = false
    return () => {
      if (released) return
      released = true
      f.users--
      if (f.removed && f.users === 0) this.images.closeSync(f.fd)
    }
  }

  /** renamed moves open images after a rename of a file or a directory. */
  renamed (from: string, to: string): void {
    // Whatever was open at `to` was replaced (now unlinked), even when `from` itself was not open.
    for (const f of [...this.byName.values()]) if (isUnder(f.name, to) && !isUnder(f.name, from)) this.drop(f)
    const moved: VolumeFile[] = []
    for (const [name, f] of this.byName) {
      if (isUnder(name, from)) {
        this.byName.delete(name)
        f.name = renamePrefix(name, from, to)
        moved.push(f)
      }
    }
    for (const f of moved) {
      const replaced = this.byName.get(f.name)
      if (replaced) this.drop(replaced)
      this.byName.set(f.name, f)
      if (f.slot !== 0) this.native?.renameVolume(f.slot, f.name)
    }
  }

  /** removed closes the image of a deleted volume (once its users are done). */
  removed (name: string): void {
    const f = this.byName.get(name)
    if (f) this.drop(f)
  }

  /** names lists the open images. */
  names (): string[] {
    return [...this.byName.keys()]
  }

  closeAll (): void {
    for (const f of this.byName.values()) this.drop(f)
  }

  private drop (f: VolumeFile): void {
    if (this.byName.get(f.name) === f) this.byName.delete(f.name)
    this.dirtyFiles.delete(f)
    f.removed = true
    if (f.slot !== 0) {
      this.native?.closeVolume(f.slot)
      this.bySlot.delete(f.slot)
    }
    if (f.users === 0) this.images.closeSync(f.fd)
  }
}

/** assertWritable fails with READ_ONLY for an image opened read-only. */
export function assertWritable (f: VolumeFile): void {
  if (!f.writable) throw new VolmirrorError('READ_ONLY', `backing image of ${f.name} is not writable`)
}
