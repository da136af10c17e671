/**
 * restore: every volume as it was at one group boundary, rebuilt from a
 * journal archive on any machine (no primary, no FUSE), sparse.
 *
 *   1. pick the base and the chunks that reach the point (layout.pickSpan);
 *   2. lay down the base: each volume at its size, each realized region's
 *      bytes (checked against their SHA-256), holes left holes;
 *   3. replay the records after the base's seq, in order, up to the point.
 *
 * Step 3 over step 2 is exact although a base's regions were read at
 * different seqs (each at or after the base's seq, at or before
 * `complete`, which the point is at or after): a region's bytes already
 * hold the records up to their asOf, and replaying those records again,
 * in order, ends with the same bytes, because writes, zeroes and
 * truncates are absolute (the last record to touch a byte decides it, and
 * a byte no record touches kept its base value throughout) and namespace
 * records replay idempotently (lib/store/applier.ts).
 *
 * The image directory must be empty (or absent): a restore never
 * overwrites. A marker file says a restore is unfinished until it is.
 */
import { chmod, mkdir, open, readdir, rm, writeFile, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { eachLimited } from '../core/each-limited.js'
import { checkVolumeName, RESERVED_PREFIX } from '../core/volume-name.js'
import { VolmirrorError, isVolmirrorError } from '../errors.js'
import { decompressInto } from '../http/compression.js'
import { ImageDir } from '../store/image-dir.js'
import { RecordApplier } from '../store/applier.js'
import { VolumeFiles } from '../store/volume-files.js'
import { decodeChunk, decodeManifest, parseBaseKey, parseChunkKey, pickSpan, regionKey, sha256, spans, type BaseInfo, type ChunkInfo, type Span, type Target } from './layout.js'
import type { ObjectStore } from './object-store.js'

/** Named under the reserved prefix: never taken for a volume. */
export const INCOMPLETE_MARKER = `${RESERVED_PREFIX}-restore-incomplete`

/** ArchiveListing is what an archive holds (`volmirror archive ls`). */
export interface ArchiveListing {
  url: string
  bases: Array<{ seq: number, complete: number, time: string, key: string }>
  chunks: { count: number, bytes: number, firstSeq?: number, lastSeq?: number }
  /** Stretches of restorable group boundaries: from (a base complete) to (the last chunk after it without a gap). */
  restorable: Array<{ fromSeq: number, toSeq: number, from: string, to: string }>
  regions: { count: number, bytes: number }
}

/** listArchive lists an archive's bases, chunks and restorable points. */
export async function listArchive (store: ObjectStore): Promise<ArchiveListing> {
  const { bases, chunks } = await contents(store)
  const regions = await withRetries(() => store.list('regions/'))
  return {
    url: store.url,
    bases: bases.map(b => ({ seq: b.seq, complete: b.complete, time: iso(b.ts), key: b.key })),
    chunks: {
      count: chunks.length,
      bytes: chunks.reduce((n, c) => n + c.size, 0),
      ...(chunks.length > 0 ? { firstSeq: Math.min(...chunks.map(c => c.first)), lastSeq: Math.max(...chunks.map(c => c.last)) } : {}),
    },
    restorable: spans(bases, chunks).filter(s => s.last >= s.base.complete)
      .map(s => ({ fromSeq: s.base.complete, toSeq: s.last, from: iso(s.base.ts), to: iso(s.lastTs) })),
    regions: { count: regions.length, bytes: regions.reduce((n, o) => n + o.size, 0) },
  }
}

/** RestoreProgress: which step, how far. */
export interface RestoreProgress { step: 'regions' | 'journal', done: number, total: number }

export interface RestoreOptions {
  images: string
  target: Target
  onProgress?: (p: RestoreProgress) => void
  /** Region downloads at once (default 8). */
  concurrency?: number
}

/** RestoreResult says which point was restored, and what it took. */
export interface RestoreResult {
  seq: number
  time: string
  base: { seq: number, complete: number, time: string }
  volumes: Array<{ name: string, size: number }>
  regions: number
  records: number
  downloadedBytes: number
}

/** restore rebuilds every volume at the chosen point into `opts.images`. */
export async function restore (store: ObjectStore, opts: RestoreOptions): Promise<RestoreResult> {
  const { bases, chunks } = await contents(store)
  const { span, chunks: needed } = pickSpan(spans(bases, chunks), opts.target)
  await emptyDir(opts.images)
  const marker = path.join(opts.images, INCOMPLETE_MARKER)
  await writeFile(marker, `restore of ${store.url} started ${new Date().toISOString()}\n`)
  let downloaded = 0
  const manifestBody = await withRetries(() => store.get(span.base.key))
  downloaded += manifestBody.length
  const manifest = decodeManifest(manifestBody, span.base.key)
  const rs = manifest.regionSize

  // 2. The base.
  const all = manifest.volumes.flatMap(v => v.regions.map(r => ({ v, r })))
  const handles = new Map<string, FileHandle>()
  try {
    for (const v of manifest.volumes) {
      // Names from the store are checked like names from the network: no path escapes.
      const file = path.join(opts.images, checkVolumeName(v.name))
      await mkdir(path.dirname(file), { recursive: true })
      const fh = await open(file, 'w', 0o600)
      handles.set(v.name, fh)
      await fh.truncate(v.size)
    }
    let done = 0
    opts.onProgress?.({ step: 'regions', done, total: all.length })
    const buf = (): Buffer => Buffer.allocUnsafe(rs)
    await eachLimited(all, opts.concurrency ?? 8, async ({ v, r }) => {
      const [index, length, sha] = r
      const body = await withRetries(() => store.get(regionKey(sha)))
      downloaded += body.length
      const data = buf()
      const n = decompressInto(body, data, regionKey(sha))
      if (n !== length || sha256(data.subarray(0, n)) !== sha) {
        throw new VolmirrorError('ARCHIVE_CORRUPT', `${regionKey(sha)} (region ${index} of ${v.name}) does not hold the bytes its name says`)
      }
      await handles.get(v.name)!.write(data, 0, n, index * rs)
      opts.onProgress?.({ step: 'regions', done: ++done, total: all.length })
    })
  } finally {
    for (const fh of handles.values()) await fh.close().catch(() => {})
    handles.clear()
  }

  // 3. The journal, from the base's seq to the point.
  const images = new ImageDir(opts.images)
  const files = new VolumeFiles(images)
  const applier = new RecordApplier(images, files, { zeroes: 'punch', deletes: 'unlink' })
  let point = span.base.seq
  let pointTs = span.base.ts
  let records = 0
  try {
    // The next chunk downloads while this one is applied.
    const fetchChunk = (i: number): Promise<Buffer> | undefined => i < needed.length ? withRetries(() => store.get(needed[i]!.key)) : undefined
    let next = fetchChunk(0)
    next?.catch(() => {})
    for (let i = 0; i < needed.length; i++) {
      const c = needed[i]!
      const body = await next!
      next = fetchChunk(i + 1)
      next?.catch(() => {})
      downloaded += body.length
      const chunk = decodeChunk(body, c.key)
      const stop = stopIn(chunk.header.ends, i === needed.length - 1, opts.target, span)
      // The point is before this chunk's first boundary: the previous one ends it.
      if (stop === 'before') break
      for (const rec of chunk.records) {
        if (rec.seq <= span.base.seq) continue
        if (stop !== undefined && rec.seq > stop[0]) break
        applier.apply(rec, true)
        records++
      }
      if (stop !== undefined) { point = stop[0]; pointTs = stop[1]; break }
      point = c.last
      pointTs = c.lastTs
      opts.onProgress?.({ step: 'journal', done: i + 1, total: needed.length })
    }
    if (point < span.base.complete) {
      throw new VolmirrorError('ARCHIVE_NO_POINT', `the archive's base ${span.base.key} is complete from seq ${span.base.complete} on; the point asked for (seq ${point}) is before it: ask for ${iso(span.base.ts)} or later, or an earlier time`)
    }
    for (const f of files.dirtyNow()) await images.fdatasync(f.fd)
  } finally {
    files.closeAll()
  }
  // The image directory's own listing (it skips the reserved names: the marker too).
  const kept = (await images.listVolumes()).map(v => ({ name: v.name, size: v.stats.size })).sort((a, b) => a.name.localeCompare(b.name))
  for (const v of manifest.volumes) {
    if (kept.some(k => k.name === v.name)) await chmod(path.join(opts.images, v.name), v.mode & 0o7777).catch(() => {})
  }
  await rm(marker, { force: true })
  return {
    seq: point,
    time: iso(pointTs),
    base: { seq: span.base.seq, complete: span.base.complete, time: iso(span.base.ts) },
    volumes: kept,
    regions: all.length,
    records,
    downloadedBytes: downloaded,
  }
}

/**
 * stopIn finds the point inside a chunk: for a seq, that seq (which must
 * be a group boundary); for a time, the last boundary at or before it, in
 * the last chunk needed ('before': none of it, the point is the previous
 * chunk's end). undefined: the whole chunk is wanted.
 */
function stopIn (ends: Array<[number, number]>, lastChunk: boolean, target: Target, span: Span): [number, number] | 'before' | undefined {
  if (target.seq !== undefined) {
    const e = ends.find(x => x[0] === target.seq)
    if (e) return e
    if (lastChunk) {
      const near = ends.filter(x => x[0] >= span.base.complete).map(x => x[0])
      throw new VolmirrorError('ARCHIVE_NO_POINT', `seq ${target.seq} is not a group boundary; nearby boundaries: ${near.filter(s => Math.abs(s - target.seq!) < 50).slice(0, 10).join(', ') || near.slice(-5).join(', ')}`)
    }
    return undefined
  }
  if (target.atMs !== undefined && lastChunk) {
    const before = ends.filter(x => x[1] <= target.atMs!)
    return before.length === 0 ? 'before' : before[before.length - 1]
  }
  return undefined
}

async function contents (store: ObjectStore): Promise<{ bases: BaseInfo[], chunks: ChunkInfo[] }> {
  const [b, c] = await Promise.all([withRetries(() => store.list('bases/')), withRetries(() => store.list('journal/'))])
  return {
    bases: b.map(o => parseBaseKey(o.key)).filter((x): x is BaseInfo => x !== undefined),
    chunks: c.map(o => parseChunkKey(o.key, o.size)).filter((x): x is ChunkInfo => x !== undefined),
  }
}

async function emptyDir (dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  const there = await readdir(dir)
  if (there.length > 0) {
    throw new VolmirrorError('USAGE', `${dir} is not empty (${there.slice(0, 3).join(', ')}${there.length > 3 ? ', ...' : ''}): restore writes into a new or empty directory and never overwrites`)
  }
}

/** withRetries retries a store call a few times (a restore is not a daemon: it then fails with the store's error). */
async function withRetries<T> (fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn()
    } catch (err) {
      if (i + 1 >= attempts || !isVolmirrorError(err, 'ARCHIVE_UNREACHABLE')) throw err
      await new Promise(resolve => setTimeout(resolve, 500 * 2 ** i))
    }
  }
}


const iso = (ms: number): string => new Date(ms).toISOString()
