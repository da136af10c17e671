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

/** describeBytes says whether bytes are realized and, if asked, hashes them. */
export async function describeBytes (data: Uint8Array, checksum: boolean): Promise<RegionFacts> {
  if (data.length === 0 || isAllZero(data)) return { realized: false }
  return checksum ? { realized: true, sha256: await sha256(data) } : { realized: true }
}

/** sha256 hashes in the thread pool. */
export async function sha256 (data: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex')
}
