/**
 * realization: is a region a hole, all zeros, or data; and its SHA-256.
 *
 * Holes are found with SEEK_DATA (no read needed); where the file system
 * has no holes, an all-zero test decides. Hashing uses WebCrypto, which
 * runs in the libuv thread pool, off the main thread (FUSE handlers run
 * there).
 */
import { webcrypto } from 'node:crypto'
import { isAllZero } from '../core/zero.js'
import type { RegionFacts } from '../core/sync-decision.js'
import type { ImageDir } from './image-dir.js'

/** isHole tells whether [start, start+length) of an open file holds no data at all. */
export function isHole (images: ImageDir, fd: number, start: number, length: number): boolean {
  const next = images.seekData(fd, start)
  return next < 0 || next >= start + length
}

/**
 * dataRegions says, for regions [from, from+count) of size `rs` of an open
 * file, which hold any data, walking the file's data extents (SEEK_DATA,
 * SEEK_HOLE): two seeks per extent, not one per region (a sparse volume of
 * 10 GiB is 10,240 regions and often a handful of extents).
 */
export function dataRegions (images: ImageDir, fd: number, from: number, count: number, rs: number): boolean[] {
  const out = new Array<boolean>(count).fill(false)
  const end = (from + count) * rs
  for (let at = from * rs; at < end;) {
    const data = images.seekData(fd, at)
    if (data < 0 || data >= end) break
    const hole = images.seekHole(fd, data)
    const last = Math.min(from + count, Math.ceil(Math.max(hole, data + 1) / rs))
    for (let r = Math.floor(data / rs); r < last; r++) out[r - from] = true
    at = Math.max(hole, data + 1)
  }
  return out
}

/** describeBytes says whether bytes are realized and, if asked, hashes them. */
export async function describeBytes (data: Uint8Array, checksum: boolean): Promise<RegionFacts> {
  if (data.length === 0 || isAllZero(data)) return { realized: false }
  return checksum ? { realized: true, sha256: await sha256(data) } : { realized: true }
}

/** sha256 hashes in the thread pool. */
export async function sha256 (data: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex')
}
