/**
 * applier: applies records to backing images. One implementation serves the
 * primary's write path, crash replay on either side, and the DR's group
 * apply, so the three cannot drift apart.
 *
 * Everything here is synchronous and runs on the main thread in seq order:
 * that is what makes image order equal journal order without locks.
 *
 * `replay` makes namespace operations idempotent: a create of an existing
 * file, a delete of a missing one, a rename whose source is gone and whose
 * target exists were already applied before the crash. (Writes, zeroes,
 * truncates and chmods are absolute and need no such care.)
 */
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import type { JournalRecord } from '../core/record.js'
import { parentName } from '../core/volume-name.js'
import { fromSystemError, isVolmirrorError } from '../errors.js'
import type { ImageDir } from './image-dir.js'
import type { VolumeFiles } from './volume-files.js'

const require = createRequire(import.meta.url)
let trimSync: ((fd: number, offset: number, length: number) => void) | undefined

const ZEROES = Buffer.alloc(1024 * 1024)

/** ApplierOptions choose what zeroes and deletes become. */
export interface ApplierOptions {
  /** 'write' writes zero bytes (primary); 'punch' releases the range (DR: stays sparse). */
  zeroes: 'write' | 'punch'
  /** Where a deleted volume goes: 'unlink' (primary), or a function naming a kept-aside path (DR). */
  deletes: 'unlink' | ((rec: JournalRecord) => string)
}

/** RecordApplier applies records to an image directory. */
export class RecordApplier {
  constructor (
    private readonly images: ImageDir,
    private readonly files: VolumeFiles,
    private readonly opts: ApplierOptions,
  ) {}

  /** apply applies one record in full. */
  apply (rec: JournalRecord, replay = false): void {
    switch (rec.op) {
      case 'write':
        this.writeRange(rec.volume, rec.offset, rec.data!)
        return
      case 'zero':
        this.zeroRange(rec.volume, rec.offset, rec.length)
        return
      case 'truncate': {
        const f = this.files.get(rec.volume)
        this.images.ftruncateSync(f.fd, rec.offset, rec.volume)
        this.files.markDirty(f)
        return
      }
      case 'chmod':
        this.images.chmodSync(rec.volume, rec.mode)
        return
      case 'create':
        if (replay && this.images.lstatSync(rec.volume)?.isFile()) { this.files.get(rec.volume); return }
        this.ensureParent(rec.volume)
        this.files.create(rec.volume, rec.mode || 0o644)
        return
      case 'mkdir':
        if (replay && this.images.lstatSync(rec.volume)?.isDirectory()) return
        this.ensureParent(rec.volume)
        this.images.mkdirSync(rec.volume, rec.mode || 0o755)
        return
      case 'rmdir':
        if (replay && !this.images.lstatSync(rec.volume)) return
        this.images.rmdirSync(rec.volume)
        return
      case 'delete':
        if (replay && !this.images.lstatSync(rec.volume)) return
        this.files.removed(rec.volume)
        if (this.opts.deletes === 'unlink') {
          this.images.unlinkSync(rec.volume)
        } else {
          this.keepAside(rec.volume, this.opts.deletes(rec))
        }
        return
      case 'rename':
        if (replay && !this.images.lstatSync(rec.volume) && this.images.lstatSync(rec.target)) return
        this.ensureParent(rec.target)
        this.images.renameSync(rec.volume, rec.target)
        this.files.renamed(rec.volume, rec.target)
        return
    }
  }

  /** writeRange writes bytes of a record (or a part of one) to a volume. */
  writeRange (volume: string, offset: number, data: Uint8Array): void {
    const f = this.files.get(volume)
    this.images.pwriteSync(f.fd, data, offset, volume)
    this.files.markDirty(f)
  }

  /** zeroRange makes a byte range read as zeros: written, or punched out on a DR. */
  zeroRange (volume: string, offset: number, length: number): void {
    const f = this.files.get(volume)
    if (this.opts.zeroes === 'punch') {
      this.punch(f.fd, offset, length, volume)
    } else {
      for (let done = 0; done < length;) {
        const n = Math.min(ZEROES.length, length - done)
        this.images.pwriteSync(f.fd, ZEROES.subarray(0, n), offset + done, volume)
        done += n
      }
    }
    this.files.markDirty(f)
  }

  private punch (fd: number, offset: number, length: number, volume: string): void {
    // Punching does not extend a file; a zero record past the end must.
    const size = this.images.fstatSync(fd).size
    if (offset + length > size) this.images.ftruncateSync(fd, offset + length, volume)
    trimSync ??= (require('fs-native-extensions') as { trimSync: typeof trimSync }).trimSync
    try {
      trimSync!(fd, offset, length)
    } catch (err) {
      throw fromSystemError(err, `punch hole in ${volume}`)
    }
  }

  private ensureParent (name: string): void {
    const parent = parentName(name)
    if (parent === '' || this.images.lstatSync(parent)?.isDirectory()) return
    fs.mkdirSync(this.images.path(parent), { recursive: true, mode: 0o755 })
  }

  private keepAside (name: string, aside: string): void {
    fs.mkdirSync(path.dirname(aside), { recursive: true, mode: 0o700 })
    try {
      fs.renameSync(this.images.path(name), aside)
    } catch (err) {
      const e = fromSystemError(err, `keep ${name} aside`)
      if (!isVolmirrorError(e, 'NOT_FOUND')) throw e
    }
  }
}
