/**
 * rollback: puts a DR's images back to one of its recovery points, for
 * `promote --at` (and a promotion in the middle of a resync, which lands on
 * the last point the DR was consistent at).
 *
 * The undo entries made after the point are undone newest first: old bytes
 * written back, old sizes set, volumes created since moved aside (nothing
 * is destroyed), volumes deleted since brought back from where they were
 * kept, renames reversed. The DR's volume table follows. What the caller
 * does next (the applied seq, the journal, the checkpoint) makes the point
 * the DR's state; history after it is forgotten.
 *
 * Synchronous once the entries are read: it runs with the apply lock held,
 * so no group and no reader of the mount sees it half done.
 */
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { isUnder, renamePrefix } from '../core/volume-name.js'
import { fromSystemError } from '../errors.js'
import type { Logger } from '../log.js'
import type { ImageDir } from '../store/image-dir.js'
import type { VolumeFiles } from '../store/volume-files.js'
import type { DrVolumes } from './dr-volumes.js'
import type { RecoveryPoint } from './recovery-history.js'
import type { UndoEntry, UndoLog } from './undo-log.js'

const require = createRequire(import.meta.url)
const { trimSync } = require('fs-native-extensions') as { trimSync: (fd: number, offset: number, length: number) => void }

/** RollbackReport says what a rollback undid. */
export interface RollbackReport {
  point: RecoveryPoint
  entries: number
  bytes: number
  volumes: string[]
  /** Volumes created after the point, moved aside (relative to the image directory). */
  setAside: string[]
}

/** RollbackContext is what a rollback works on. */
export interface RollbackContext {
  undo: UndoLog
  images: ImageDir
  files: VolumeFiles
  volumes: DrVolumes
  log: Logger
}

/** readEntries lists the entries to undo (those after the point), newest first. */
export async function entriesAfter (undo: UndoLog, point: RecoveryPoint): Promise<UndoEntry[]> {
  return (await undo.entries(point.useq - 1)).reverse()
}

/** rollback undoes `entries` (newest first) on the images and the volume table. */
export function rollback (ctx: RollbackContext, point: RecoveryPoint, entries: UndoEntry[]): RollbackReport {
  const { images, files, volumes } = ctx
  const touched = new Set<string>()
  const setAside: string[] = []
  let bytes = 0
  const nameOf = (id: number): string | undefined => volumes.byIdOf(id)?.name
  for (const e of entries) {
    switch (e.op) {
      case 'write': {
        const name = nameOf(e.volumeId)
        if (!name) break
        const buf = Buffer.allocUnsafe(e.length)
        ctx.undo.readPayload(e, 0, buf)
        const f = files.get(name)
        images.pwriteSync(f.fd, buf, e.offset, name)
        files.markDirty(f)
        bytes += e.length
        touched.add(name)
        break
      }
      case 'zero': {
        const name = nameOf(e.volumeId)
        if (!name) break
        const f = files.get(name)
        const size = images.fstatSync(f.fd).size
        const len = Math.min(e.length, Math.max(0, size - e.offset))
        if (len > 0) {
          try { trimSync(f.fd, e.offset, len) } catch (err) { throw fromSystemError(err, `punch hole in ${name}`) }
        }
        files.markDirty(f)
        touched.add(name)
        break
      }
      case 'truncate': {
        const name = nameOf(e.volumeId)
        if (!name) break
        const f = files.get(name)
        images.ftruncateSync(f.fd, e.offset, name)
        files.markDirty(f)
        touched.add(name)
        break
      }
      case 'delete': { // created after the point: set aside
        const v = volumes.byIdOf(e.volumeId)
        if (!v) break
        const aside = path.relative(images.root, images.reservedPath('rolled-back', `${String(point.seq).padStart(12, '0')}-${v.name.replaceAll('/', '%2F')}`))
        files.removed(v.name)
        move(images.path(v.name), path.join(images.root, aside))
        volumes.removed(v.name)
        setAside.push(aside)
        touched.add(v.name)
        break
      }
      case 'create': { // deleted after the point: back from where it was kept
        move(path.join(images.root, e.target), images.path(e.volume))
        volumes.restore(e.volume, e.volumeId)
        touched.add(e.volume)
        break
      }
      case 'rename': { // the volumes under `volume` go back under `target`
        move(images.path(e.volume), images.path(e.target))
        files.renamed(e.volume, e.target)
        volumes.renamed(e.volume, e.target, -1)
        for (const v of volumes.list()) if (isUnder(v.name, e.target)) touched.add(v.name)
        touched.add(renamePrefix(e.volume, e.volume, e.target))
        break
      }
    }
  }
  const report: RollbackReport = { point, entries: entries.length, bytes, volumes: [...touched].sort(), setAside }
  ctx.log.warn('history.rolled_back', { seq: point.seq, at: new Date(point.ts).toISOString(), entries: entries.length, bytes, volumes: report.volumes.length, setAside: setAside.length })
  return report
}

/** move renames `from` to `to`, making `to`'s directory first. */
function move (from: string, to: string): void {
  try {
    fs.mkdirSync(path.dirname(to), { recursive: true })
    fs.renameSync(from, to)
  } catch (err) {
    throw fromSystemError(err, `move ${from} to ${to}`)
  }
}
