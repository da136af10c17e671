/**
 * reconcile: a DR's volumes made those of its primary's listing, for a
 * full sync and for a resync (lib/node/dr-node.ts).
 */
import { constants } from 'node:fs'
import { mkdir, rename } from 'node:fs/promises'
import path from 'node:path'
import { regionCount } from '../core/region-map.js'
import type { Replica } from '../core/replica.js'
import type { Logger } from '../log.js'
import type { VolumeList } from '../replication/protocol.js'
import type { ImageDir } from '../store/image-dir.js'
import type { RegionCodes } from '../store/region-codes.js'
import type { VolumeFiles } from '../store/volume-files.js'
import { keptAsideName } from './dr-applier.js'
import { sameVolume, type DrVolumes } from './dr-volumes.js'
import type { RecoveryHistory } from './recovery-history.js'
import type { RegionStore } from './region-store.js'

/** ReconcileContext is the DR's parts that a reconciliation changes. */
export interface ReconcileContext {
  images: ImageDir
  files: VolumeFiles
  volumes: DrVolumes
  replica: Replica
  regionStore: RegionStore
  codes: RegionCodes
  recovery: RecoveryHistory | undefined
  log: Logger
}

/**
 * reconcile makes the DR's volumes those of a primary listing: files the
 * primary does not have are kept aside; every listed volume exists with
 * its size. With `all`, every region becomes absent (a full sync); else
 * only volumes that are new or whose name was born otherwise (renamed or
 * replaced while the DR was away), and regions past a volume's old end.
 */
export async function reconcile (c: ReconcileContext, list: VolumeList, seq: number, all: boolean): Promise<void> {
  const wanted = new Set(list.volumes.map(v => v.name))
  // A resync changes the images outside any record: history keeps what it changes.
  const h = !all && c.recovery?.capturing ? c.recovery.undo : undefined
  // Volumes the primary does not have (in the table, or files an old
  // primary left) are kept aside, not destroyed.
  for (const { name } of await c.images.listVolumes()) {
    if (wanted.has(name)) continue
    c.files.removed(name)
    const aside = c.images.reservedPath('deleted', keptAsideName(seq, name))
    const known = c.volumes.get(name)
    if (h && known) h.deleted(known.id, name, path.relative(c.images.root, aside), 0)
    await mkdir(path.dirname(aside), { recursive: true })
    await rename(c.images.path(name), aside).catch(() => {})
    c.codes.deleted(name)
    c.log.info('dr.kept_aside', { volume: name, in: aside })
  }
  for (const v of c.volumes.list()) {
    if (wanted.has(v.name)) continue
    c.volumes.removed(v.name)
    c.replica.forget(v.id)
    await c.regionStore.forget(v.id)
  }
  for (const pv of list.volumes) {
    await mkdir(path.dirname(c.images.path(pv.name)), { recursive: true })
    // Created if missing, never truncated first: a stale copy is compared, not discarded.
    const fd = c.images.openSync(pv.name, constants.O_CREAT | constants.O_RDWR, pv.mode || 0o644)
    const oldSize = c.images.fstatSync(fd).size
    const before = c.volumes.get(pv.name)
    if (h && before && oldSize !== pv.size) {
      h.keepSize(before.id, pv.name, oldSize, 0)
      if (pv.size < oldSize) h.keepBytes(before.id, pv.name, fd, oldSize, pv.size, oldSize - pv.size, 0)
    }
    c.images.ftruncateSync(fd, pv.size, pv.name)
    c.images.closeSync(fd)
    const existing = c.volumes.get(pv.name)
    const same = existing !== undefined && sameVolume(existing, pv.birth)
    const v = existing ?? c.volumes.add(pv.name, pv.birth ?? -1)
    if (!existing) h?.created(v.id, pv.name, 0)
    if (existing) c.volumes.setBirth(pv.name, pv.birth ?? -1)
    if (all || !same) {
      c.replica.forget(v.id)
      await c.regionStore.forget(v.id)
      c.replica.track(v.id)
      continue
    }
    // Same volume: regions past its old end are unknown here.
    const map = c.replica.map(v.id)
    const keep = Math.floor(oldSize / c.replica.regionSize)
    map.resize(Math.min(map.length, keep))
    map.resize(regionCount(pv.size, c.replica.regionSize))
  }
}
