/**
 * layout: what a journal archive holds in an object store, and how its
 * objects are named, encoded and checked. Pure: no network, no files.
 *
 * Under the archive's prefix (`s3://bucket/prefix/`):
 *
 *   journal/<first>-<last>-<lastTs>.vmj   a sealed chunk of the journal: the
 *        records first..last (contiguous, ending at a group boundary) in
 *        their journal format, zstd-compressed, behind a header that lists
 *        the group boundaries inside (seq and time) and the SHA-256 of the
 *        records; every record keeps its own CRC
 *   bases/<seq>-<complete>-<ts>.json      a base snapshot's manifest
 *        (zstd-compressed JSON): the volumes as of `seq` (the journal seq
 *        when it was listed), and for each realized region the SHA-256 of
 *        its bytes and the seq they were read as of (>= `seq`, <= `complete`)
 *   regions/<sha256>.zst                  one region's bytes, compressed;
 *        named by content, so a region unchanged since an earlier base (or
 *        equal to another) is stored once and a new base uploads only the
 *        regions that changed
 *
 * Seqs in names are zero-padded to 16 digits and times are milliseconds
 * since the epoch (13 digits), so names sort in seq order.
 *
 * A state of every volume at a group boundary S is rebuilt from a base
 * with `complete <= S` and the chunks that cover (base.seq, S] without a
 * gap: a region is its base bytes, then the records after its own asOf laid
 * over it (the asOf rule of DESIGN.md, exactly as a DR hydrates).
 */
import { createHash } from 'node:crypto'
import type { History } from '../core/history.js'
import { decodeRecord, peekSize, type DecodedRecord } from '../core/record.js'
import { VolmirrorError } from '../errors.js'
import { compressBody, decompressInto } from '../http/compression.js'

const SEQ_DIGITS = 16
const TS_DIGITS = 13
const CHUNK_MAGIC = Buffer.from('VMJ1')

/** ChunkInfo is what a chunk's name says. */
export interface ChunkInfo { key: string, first: number, last: number, lastTs: number, size: number }

/** BaseInfo is what a base manifest's name says. */
export interface BaseInfo { key: string, seq: number, complete: number, ts: number }

/** ArchivedRegion: [index, length, sha256 (hex), asOf]. */
export type ArchivedRegion = [number, number, string, number]

/** ArchivedVolume is one volume of a base. */
export interface ArchivedVolume {
  name: string
  size: number
  mode: number
  mtimeMs: number
  birth?: number
  /** Realized regions only: any other region is a hole (zeros). */
  regions: ArchivedRegion[]
}

/** BaseManifest is one base snapshot. */
export interface BaseManifest {
  v: 1
  primaryId: string
  epoch: number
  history?: History
  regionSize: number
  /** The journal seq the volumes were listed as of: chunks from seq + 1 on complete it. */
  seq: number
  /** The highest asOf of its regions: a restore to any group boundary from here on can use it. */
  complete: number
  /** When it was written (ms). */
  ts: number
  volumes: ArchivedVolume[]
}

/** ChunkHeader heads a chunk: its records, their group boundaries, and their SHA-256. */
export interface ChunkHeader {
  v: 1
  first: number
  last: number
  /** Group boundaries in (first - 1, last], each with its last record's time. */
  ends: Array<[number, number]>
  sha256: string
  bytes: number
}

/** Chunk is a decoded chunk. */
export interface Chunk { header: ChunkHeader, records: DecodedRecord[] }

const pad = (n: number, d: number): string => String(n).padStart(d, '0')

export function chunkKey (first: number, last: number, lastTs: number): string {
  return `journal/${pad(first, SEQ_DIGITS)}-${pad(last, SEQ_DIGITS)}-${pad(lastTs, TS_DIGITS)}.vmj`
}

export function baseKey (seq: number, complete: number, ts: number): string {
  return `bases/${pad(seq, SEQ_DIGITS)}-${pad(complete, SEQ_DIGITS)}-${pad(ts, TS_DIGITS)}.json`
}

export function regionKey (sha256: string): string {
  return `regions/${sha256}.zst`
}

/** parseChunkKey reads a chunk's name (relative to the prefix); undefined if it is not one. */
export function parseChunkKey (key: string, size = 0): ChunkInfo | undefined {
  const m = /^journal\/(\d{16})-(\d{16})-(\d{13})\.vmj$/.exec(key)
  return m ? { key, first: Number(m[1]), last: Number(m[2]), lastTs: Number(m[3]), size } : undefined
}

/** parseBaseKey reads a base manifest's name; undefined if it is not one. */
export function parseBaseKey (key: string): BaseInfo | undefined {
  const m = /^bases\/(\d{16})-(\d{16})-(\d{13})\.json$/.exec(key)
  return m ? { key, seq: Number(m[1]), complete: Number(m[2]), ts: Number(m[3]) } : undefined
}

/** parseRegionKey gives the SHA-256 a region object is named by; undefined if it is not one. */
export function parseRegionKey (key: string): string | undefined {
  return /^regions\/([0-9a-f]{64})\.zst$/.exec(key)?.[1]
}

export function sha256 (data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** encodeChunk seals records (contiguous, from `first`) and their group boundaries into a chunk object. */
export function encodeChunk (records: Uint8Array[], first: number, last: number, ends: Array<[number, number]>): Buffer {
  const h = createHash('sha256')
  let bytes = 0
  for (const r of records) { h.update(r); bytes += r.length }
  const header: ChunkHeader = { v: 1, first, last, ends, sha256: h.digest('hex'), bytes }
  const json = Buffer.from(JSON.stringify(header))
  const len = Buffer.alloc(4)
  len.writeUInt32BE(json.length)
  return compressBody([CHUNK_MAGIC, len, json, ...records])
}

/** decodeChunk opens a chunk object, checks it whole (SHA-256, every record's CRC, contiguous seqs) and decodes its records. */
export function decodeChunk (body: Uint8Array, what: string, maxBytes = 1024 * 1024 * 1024): Chunk {
  const raw = Buffer.allocUnsafe(Math.min(maxBytes, Math.max(1024 * 1024, body.length * 64)))
  let n: number
  try {
    n = decompressInto(body, raw, what)
  } catch (err) {
    throw new VolmirrorError('ARCHIVE_CORRUPT', `${what}: ${(err as Error).message}`)
  }
  const buf = raw.subarray(0, n)
  if (n < 8 || !buf.subarray(0, 4).equals(CHUNK_MAGIC)) throw new VolmirrorError('ARCHIVE_CORRUPT', `${what}: not a volmirror journal chunk`)
  const hl = buf.readUInt32BE(4)
  let header: ChunkHeader
  try {
    header = JSON.parse(buf.subarray(8, 8 + hl).toString('utf8')) as ChunkHeader
  } catch {
    throw new VolmirrorError('ARCHIVE_CORRUPT', `${what}: unreadable header`)
  }
  const body2 = buf.subarray(8 + hl)
  if (header.v !== 1 || body2.length !== header.bytes || sha256(body2) !== header.sha256) {
    throw new VolmirrorError('ARCHIVE_CORRUPT', `${what}: the records do not match the chunk's checksum`)
  }
  const records: DecodedRecord[] = []
  for (let off = 0; off < body2.length;) {
    const size = peekSize(body2.subarray(off))
    const rec = decodeRecord(Buffer.from(body2.subarray(off, off + size)))
    const want = header.first + records.length
    if (rec.seq !== want) throw new VolmirrorError('ARCHIVE_CORRUPT', `${what}: seq ${rec.seq} where ${want} belongs`)
    records.push(rec)
    off += size
  }
  if (header.first + records.length - 1 !== header.last) throw new VolmirrorError('ARCHIVE_CORRUPT', `${what}: holds ${records.length} records, its header says ${header.first}..${header.last}`)
  return { header, records }
}

/** regionShas lists the region objects a base refers to (by SHA-256). */
export function regionShas (m: BaseManifest): string[] {
  return m.volumes.flatMap(v => v.regions.map(r => r[2]))
}

export function encodeManifest (m: BaseManifest): Buffer {
  return compressBody([Buffer.from(JSON.stringify(m))])
}

export function decodeManifest (body: Uint8Array, what: string): BaseManifest {
  const raw = Buffer.allocUnsafe(Math.max(1024 * 1024, body.length * 64))
  try {
    const m = JSON.parse(raw.subarray(0, decompressInto(body, raw, what)).toString('utf8')) as BaseManifest
    if (m.v !== 1 || !Array.isArray(m.volumes)) throw new Error('unknown manifest version')
    return m
  } catch (err) {
    throw new VolmirrorError('ARCHIVE_CORRUPT', `${what}: ${(err as Error).message}`)
  }
}

/** Span is a stretch of restorable history: a base, and the chunks after it without a gap. */
export interface Span {
  base: BaseInfo
  /** The chunks from base.seq + 1 to `last`. */
  chunks: ChunkInfo[]
  /** The last seq the chunks reach (the base's seq when there are none). */
  last: number
  lastTs: number
}

/**
 * spans lists what can be restored: for each base, the unbroken run of
 * chunks after its seq. A span restores any group boundary in
 * [base.complete, last] (none if last < complete: the chunks have not
 * caught up with the base yet).
 */
export function spans (bases: BaseInfo[], chunks: ChunkInfo[]): Span[] {
  const sorted = [...chunks].sort((a, b) => a.first - b.first)
  return [...bases].sort((a, b) => a.seq - b.seq).map(base => {
    const run: ChunkInfo[] = []
    let last = base.seq
    let lastTs = base.ts
    for (const c of sorted) {
      if (c.last <= last) continue
      if (c.first > last + 1) break
      if (c.first !== last + 1) continue // an overlapping chunk (a re-upload): the other covers it
      run.push(c)
      last = c.last
      lastTs = c.lastTs
    }
    return { base, chunks: run, last, lastTs }
  })
}

/** Target is what a restore asks for: a time (ms) or a seq; neither means the latest. */
export interface Target { atMs?: number, seq?: number }

/**
 * pickSpan chooses the span a restore to `target` reads: the one with the
 * latest base that can reach it. For a time, the chunks up to the first
 * one whose last record is later than the time are needed (the group
 * boundary is found inside it). ARCHIVE_NO_POINT says what is restorable.
 */
export function pickSpan (all: Span[], target: Target): { span: Span, chunks: ChunkInfo[] } {
  const usable = all.filter(s => s.last >= s.base.complete)
  const describe = (): string => usable.length === 0
    ? 'the archive holds no restorable point yet (no base snapshot whose journal has caught up)'
    : `restorable: ${usable.map(s => `seq ${s.base.complete}..${s.last} (${new Date(s.base.ts).toISOString()} .. ${new Date(s.lastTs).toISOString()})`).join(', ')}`
  const candidates = [...usable].reverse()
  for (const span of candidates) {
    if (target.seq !== undefined) {
      if (target.seq < span.base.complete || target.seq > span.last) continue
      return { span, chunks: span.chunks.filter(c => c.first <= target.seq!) }
    }
    if (target.atMs !== undefined) {
      // The base's own time bounds the point from below (its complete seq may be a little later).
      if (target.atMs < span.base.ts) continue
      const k = span.chunks.findIndex(c => c.lastTs > target.atMs!)
      return { span, chunks: k < 0 ? span.chunks : span.chunks.slice(0, k + 1) }
    }
    return { span, chunks: span.chunks }
  }
  const what = target.seq !== undefined ? `seq ${target.seq}` : target.atMs !== undefined ? new Date(target.atMs).toISOString() : 'the latest point'
  throw new VolmirrorError('ARCHIVE_NO_POINT', `no restore point for ${what} in the archive; ${describe()}`)
}

/**
 * retained decides what retention keeps: every base written since
 * `cutoffMs`, and the newest one before it (the cutoff moment stays
 * restorable); the chunks from the oldest kept base on. Never deletes the
 * newest base.
 */
export function retained (bases: BaseInfo[], chunks: ChunkInfo[], cutoffMs: number): { bases: BaseInfo[], dropBases: BaseInfo[], dropChunks: ChunkInfo[] } {
  const sorted = [...bases].sort((a, b) => a.seq - b.seq)
  let from = sorted.findIndex(b => b.ts >= cutoffMs)
  if (from < 0) from = sorted.length - 1
  else if (from > 0) from--
  const keep = from < 0 ? [] : sorted.slice(from)
  const floor = keep.length > 0 ? keep[0]!.seq : -1
  return {
    bases: keep,
    dropBases: from < 0 ? [] : sorted.slice(0, from),
    dropChunks: floor < 0 ? [] : chunks.filter(c => c.last <= floor),
  }
}
