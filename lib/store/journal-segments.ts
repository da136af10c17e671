/**
 * journal-segments: where journal record bytes live.
 *
 * Records (lib/core/record.ts, CRC included) are appended back to back to
 * segment files `STATE/journal/seg-<n>.log`; LevelDB keeps, per seq, the
 * record's header and its location (lib/store/journal.ts). Keeping payloads
 * out of LevelDB matters: a LevelDB batch carrying a 128 KiB value costs
 * ~390 µs here against ~40 µs for a small one, and every payload would be
 * written again by memtable flushes and compactions.
 *
 * Segments whose records are all trimmed are recycled: the next rotation
 * renames a free file instead of creating one, so appends overwrite pages
 * that are already allocated on disk and resident in the page cache (19 µs
 * per 128 KiB here, against 40-160 µs for appending to a fresh file). A batch
 * is written with one writev, straight from the buffers it was handed.
 *
 * With the native data path the native writers append instead
 * (`attachNative`): the ring hands them the current segment and always one
 * spare file, which they rename to the next segment name when they rotate
 * into it, and it learns where each record went from the entries the
 * journal drains (`noteNative`). Files stay the ring's: it reads, syncs and
 * recycles them with its own descriptors.
 */
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { decodeRecord, HEADER_SIZE, peekSize } from '../core/record.js'
import { fromSystemError, VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'

/** SegmentWrite is one record to append: its seq and its bytes as pieces. */
export interface SegmentWrite {
  seq: number
  parts: Uint8Array[]
  size: number
}

/** ScannedRecord is a record found past the index's tail by {@link SegmentRing.open}. */
export interface ScannedRecord {
  seq: number
  loc: SegmentLocation
  bytes: Buffer
}

/** SegmentLocation says where a record's bytes are. */
export interface SegmentLocation {
  segment: number
  offset: number
  size: number
}

interface Segment {
  no: number
  fd: number
  /** Highest seq written to it (0: none yet). */
  maxSeq: number
  dirty: boolean
}

const NAME = /^seg-(\d{8})\.log$/
/** A spare handed to the native writers, not yet a segment (free after a crash). */
const SPARE = /^spare-\d+\.log$/
const IOV_MAX = 512

function fileName (no: number): string {
  return `seg-${String(no).padStart(8, '0')}.log`
}

/** SegmentAppender is the native writers' side of the ring (lib/fuse/native-path.ts NativeJournal). */
export interface SegmentAppender {
  append (seq: number, parts: Uint8Array[], size: number): { segment: number, offset: number }
  setSpare (fd: number, file: string): void
}

/** SegmentPosition is where appends continue. */
export interface SegmentPosition {
  dir: string
  segmentSize: number
  segment: number
  segmentFd: number
  segmentOffset: number
  nextSegment: number
}

/** SegmentRing appends to, reads from and recycles a directory of segment files. */
export class SegmentRing {
  readonly dir: string
  private readonly segmentSize: number
  private readonly keepFree: number
  private readonly segments = new Map<number, Segment>()
  private readonly free: string[] = []
  private current: Segment | undefined
  private writeOffset = 0
  private nextNo = 1
  /** Set when a segment file was created or renamed since the last sync: the directory is synced too. */
  private dirChanged = false
  private native: SegmentAppender | undefined
  private pendingSpare: { fd: number, file: string } | undefined
  private spareNo = 0

  constructor (dir: string, private readonly log: Logger, opts: { segmentSize?: number, keepFree?: number } = {}) {
    this.dir = dir
    this.segmentSize = opts.segmentSize ?? 64 * 1024 * 1024
    this.keepFree = opts.keepFree ?? 4
  }

  /**
   * open takes stock of the directory and finds the write position.
   *
   * `live` maps each segment still referenced by the index to its highest
   * seq; `tail` is the location of the last indexed record, `expectSeq` the
   * seq that follows it. Records appended after it but not yet indexed when
   * the process stopped are found by parsing on from there (into the next
   * segment if the writer had rotated) and returned, so the journal can
   * index them again; the first record that is torn, fails its CRC or does
   * not carry the expected seq ends the journal. Unreferenced files become
   * free (recycled by later rotations).
   */
  async open (live: Map<number, number>, tail: SegmentLocation | undefined, expectSeq: number): Promise<ScannedRecord[]> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 })
    const files = new Map<number, string>()
    for (const name of await fsp.readdir(this.dir)) {
      const m = NAME.exec(name)
      if (m) files.set(Number(m[1]), path.join(this.dir, name))
      else if (SPARE.test(name)) this.free.push(path.join(this.dir, name))
    }
    for (const no of live.keys()) {
      if (!files.has(no)) throw new VolmirrorError('STATE_INVALID', `journal segment ${fileName(no)} is missing from ${this.dir}`)
    }
    const highest = Math.max(0, ...files.keys())
    this.nextNo = highest + 1
    // Where appends would have continued: right after the tail, or (an empty
    // index) somewhere in the newest segment, after records already trimmed.
    let at: { segment: number, offset: number, skipOlder: boolean } | undefined =
      tail ? { segment: tail.segment, offset: tail.offset + tail.size, skipOlder: false }
        : highest > 0 ? { segment: highest, offset: 0, skipOlder: true } : undefined
    const found: ScannedRecord[] = []
    let position: { segment: number, offset: number } | undefined = tail ? { segment: tail.segment, offset: tail.offset + tail.size } : undefined
    while (at && files.has(at.segment)) {
      const got = await scanSegment(files.get(at.segment)!, at.segment, at.offset, expectSeq + found.length, at.skipOlder)
      found.push(...got.records)
      if (got.records.length > 0 || at.skipOlder) position = { segment: at.segment, offset: got.end }
      if (!files.has(at.segment + 1)) break
      at = { segment: at.segment + 1, offset: 0, skipOlder: false }
    }
    for (const r of found) live.set(r.loc.segment, r.seq)
    for (const [no, file] of files) {
      if (live.has(no) || no === position?.segment) {
        this.segments.set(no, { no, fd: openFile(file), maxSeq: live.get(no) ?? 0, dirty: false })
      } else {
        this.free.push(file)
      }
    }
    if (position) {
      this.current = this.segments.get(position.segment)
      this.writeOffset = position.offset
    }
    while (this.free.length > this.keepFree) await fsp.rm(this.free.pop()!, { force: true })
    return found
  }

  /**
   * appendSync writes records in order (one writev per up to IOV_MAX
   * pieces), rotating to a new segment when one would not fit, and returns
   * where each went. Synchronous: it runs between a FUSE write and its
   * LevelDB batch, on pages that are normally already cached.
   */
  appendSync (records: SegmentWrite[]): SegmentLocation[] {
    if (this.native) return records.map(r => this.appendNative(this.native!, r))
    const out: SegmentLocation[] = new Array(records.length)
    let i = 0
    while (i < records.length) {
      if (records[i]!.size > this.segmentSize) {
        throw new VolmirrorError('TOO_LARGE', `record of ${records[i]!.size} bytes exceeds the journal segment size ${this.segmentSize}`)
      }
      if (!this.current || this.writeOffset + records[i]!.size > this.segmentSize) this.rotate()
      const seg = this.current!
      // Take as many records as fit in this segment and in one writev.
      const start = this.writeOffset
      const iov: Uint8Array[] = []
      let size = 0
      let j = i
      while (j < records.length) {
        const r = records[j]!
        if (start + size + r.size > this.segmentSize || iov.length + r.parts.length > IOV_MAX) break
        out[j] = { segment: seg.no, offset: start + size, size: r.size }
        for (const p of r.parts) iov.push(p)
        size += r.size
        j++
      }
      writevFully(seg.fd, iov, start, size)
      this.writeOffset = start + size
      seg.maxSeq = records[j - 1]!.seq
      seg.dirty = true
      i = j
    }
    return out
  }

  /**
   * syncDirty fdatasyncs every segment written since the last call, and
   * the directory if a segment got its name since (a record in a renamed
   * file is only durable once the new name is).
   */
  async syncDirty (): Promise<void> {
    const dirty = [...this.segments.values()].filter(s => s.dirty)
    for (const s of dirty) s.dirty = false
    const dir = this.dirChanged
    this.dirChanged = false
    try {
      await Promise.all([
        ...dirty.map(s => new Promise<void>((resolve, reject) => {
          fs.fdatasync(s.fd, err => err ? reject(fromSystemError(err, `fdatasync journal segment ${fileName(s.no)}`)) : resolve())
        })),
        dir ? syncDir(this.dir) : undefined,
      ])
    } catch (err) {
      for (const s of dirty) s.dirty = true
      if (dir) this.dirChanged = true
      throw err
    }
  }

  // --- the native writers ----------------------------------------------------

  /** position is where appends continue (a first segment is made if there is none). */
  position (): SegmentPosition {
    if (!this.current) this.rotate()
    return {
      dir: this.dir, segmentSize: this.segmentSize, segment: this.current!.no, segmentFd: this.current!.fd,
      segmentOffset: this.writeOffset, nextSegment: this.nextNo,
    }
  }

  /** attachNative lets native writers append from `position()` on; they get a spare at once. */
  attachNative (appender: SegmentAppender): void {
    this.native = appender
    this.provideSpare()
  }

  /**
   * detachNative takes appending back at the native writers' final
   * position (after the last of their entries was noted).
   */
  detachNative (at: { segment: number, segmentOffset: number, nextSegment: number }): void {
    this.native = undefined
    const seg = this.segments.get(at.segment)
    if (seg) {
      this.current = seg
      this.writeOffset = at.segmentOffset
    }
    this.nextNo = Math.max(this.nextNo, at.nextSegment)
    const spare = this.pendingSpare
    this.pendingSpare = undefined
    if (spare) {
      fs.closeSync(spare.fd)
      this.free.push(spare.file)
    }
  }

  /**
   * noteNative records that a native writer put a record at `loc`: a
   * segment not seen before is the spare it rotated into (it gets the next
   * spare now).
   */
  noteNative (loc: SegmentLocation, seq: number): void {
    let seg = this.segments.get(loc.segment)
    if (!seg) {
      const spare = this.pendingSpare
      if (!spare) throw new VolmirrorError('STATE_INVALID', `native writers appended to segment ${loc.segment}, which the journal never handed them`)
      this.pendingSpare = undefined
      seg = { no: loc.segment, fd: spare.fd, maxSeq: 0, dirty: false }
      this.segments.set(seg.no, seg)
      this.nextNo = Math.max(this.nextNo, seg.no + 1)
      this.dirChanged = true
      this.log.debug('journal.segment_rotated', { segment: seg.no, native: true })
      if (this.native) this.provideSpare()
    }
    if (!this.current || seg.no >= this.current.no) {
      this.current = seg
      this.writeOffset = loc.offset + loc.size
    }
    seg.maxSeq = Math.max(seg.maxSeq, seq)
    seg.dirty = true
  }

  /** provideSpare hands the native writers the file they rotate into next: a free one, or a new one. */
  provideSpare (): void {
    if (this.pendingSpare || !this.native) return
    let file = this.free.pop()
    if (!file) {
      do file = path.join(this.dir, `spare-${++this.spareNo}.log`)
      while (fs.existsSync(file))
      this.dirChanged = true
    }
    const fd = openFile(file)
    this.pendingSpare = { fd, file }
    this.native.setSpare(fd, file)
  }

  private appendNative (native: SegmentAppender, r: SegmentWrite): SegmentLocation {
    if (r.size > this.segmentSize) {
      throw new VolmirrorError('TOO_LARGE', `record of ${r.size} bytes exceeds the journal segment size ${this.segmentSize}`)
    }
    let at
    try {
      at = native.append(r.seq, r.parts, r.size)
    } catch (err) {
      if ((err as VolmirrorError).code !== 'NEED_SPARE') throw err
      this.provideSpare()
      at = native.append(r.seq, r.parts, r.size)
    }
    const loc = { segment: at.segment, offset: at.offset, size: r.size }
    this.noteNative(loc, r.seq)
    return loc
  }

  /** readSync fills `buf` from `position` of segment `segment`, on this thread. */
  readSync (segment: number, position: number, buf: Buffer): void {
    const seg = this.segments.get(segment)
    if (!seg) throw new VolmirrorError('STATE_INVALID', `journal segment ${fileName(segment)} is not open`)
    let done = 0
    while (done < buf.length) {
      let n: number
      try {
        n = fs.readSync(seg.fd, buf, done, buf.length - done, position + done)
      } catch (err) {
        throw fromSystemError(err, `read journal segment ${fileName(segment)}`)
      }
      if (n === 0) throw new VolmirrorError('RECORD_CORRUPT', `journal segment ${fileName(segment)} ends at ${position + done}, before a record it should hold`)
      done += n
    }
  }

  /** read reads the bytes at `loc`. */
  async read (loc: SegmentLocation): Promise<Buffer> {
    return (await this.readRun([loc]))[0]!
  }

  /**
   * readRun reads several locations, one pread per stretch of neighbouring
   * records (the common case: records of a batch sit back to back).
   */
  async readRun (locs: SegmentLocation[]): Promise<Buffer[]> {
    const out: Buffer[] = new Array(locs.length)
    let i = 0
    while (i < locs.length) {
      const first = locs[i]!
      let j = i + 1
      let end = first.offset + first.size
      while (j < locs.length && locs[j]!.segment === first.segment && locs[j]!.offset === end && end - first.offset < 16 * 1024 * 1024) {
        end += locs[j]!.size
        j++
      }
      const seg = this.segments.get(first.segment)
      if (!seg) throw new VolmirrorError('STATE_INVALID', `journal segment ${fileName(first.segment)} is not open`)
      const buf = Buffer.allocUnsafe(end - first.offset)
      const n = await preadFully(seg.fd, buf, first.offset)
      if (n < buf.length) throw new VolmirrorError('RECORD_CORRUPT', `journal segment ${fileName(first.segment)} ends at ${first.offset + n}, before a record it should hold`)
      for (let k = i; k < j; k++) {
        const at = locs[k]!.offset - first.offset
        out[k] = buf.subarray(at, at + locs[k]!.size)
      }
      i = j
    }
    return out
  }

  /** release frees segments whose records are all at or below `seq` (never the current one). */
  async release (seq: number): Promise<void> {
    for (const seg of [...this.segments.values()]) {
      // Native writers may be in a segment past the current one before its
      // first entry is drained: nothing from the current one on is freed.
      if (seg === this.current || (this.current && seg.no >= this.current.no) || seg.maxSeq > seq) continue
      this.segments.delete(seg.no)
      fs.closeSync(seg.fd)
      const file = path.join(this.dir, fileName(seg.no))
      if (this.free.length < this.keepFree) this.free.push(file)
      else await fsp.rm(file, { force: true })
    }
  }

  /**
   * rewind makes appends continue right after `loc` (the last record kept
   * when a torn tail was dropped), freeing later segments; without `loc`
   * (nothing kept) appends start in a fresh segment, where the tail scan of
   * an empty index looks first.
   */
  async rewind (loc: SegmentLocation | undefined): Promise<void> {
    const at = loc ? this.segments.get(loc.segment) : undefined
    for (const seg of [...this.segments.values()]) {
      if (at && seg.no <= at.no) continue
      if (!at && seg !== this.current) continue
      this.segments.delete(seg.no)
      fs.closeSync(seg.fd)
      this.free.push(path.join(this.dir, fileName(seg.no)))
    }
    if (at && loc) {
      this.current = at
      this.writeOffset = loc.offset + loc.size
    } else {
      this.current = undefined
    }
  }

  /** stats for status: segment files in use and kept free. */
  stats (): { segments: number, free: number, segmentSize: number } {
    return { segments: this.segments.size, free: this.free.length, segmentSize: this.segmentSize }
  }

  close (): void {
    if (this.pendingSpare) fs.closeSync(this.pendingSpare.fd)
    this.pendingSpare = undefined
    for (const s of this.segments.values()) fs.closeSync(s.fd)
    this.segments.clear()
    this.current = undefined
  }

  private rotate (): void {
    const no = this.nextNo++
    const file = path.join(this.dir, fileName(no))
    const recycled = this.free.pop()
    if (recycled) fs.renameSync(recycled, file)
    const fd = openFile(file)
    this.dirChanged = true
    const seg: Segment = { no, fd, maxSeq: 0, dirty: false }
    this.segments.set(no, seg)
    this.current = seg
    this.writeOffset = 0
    this.log.debug('journal.segment_rotated', { segment: no, recycled: recycled !== undefined })
  }
}

/**
 * scanSegment parses records from `offset` on while each is whole, passes
 * its CRC and carries the next expected seq (with `skipOlder`, records with
 * lower seqs, already trimmed, are stepped over). Returns what it found and
 * where the valid run ends.
 */
async function scanSegment (file: string, segment: number, offset: number, expect: number, skipOlder: boolean): Promise<{ records: ScannedRecord[], end: number }> {
  const records: ScannedRecord[] = []
  const data = await fsp.readFile(file).catch(() => Buffer.alloc(0))
  let pos = offset
  let end = offset
  while (pos + HEADER_SIZE <= data.length) {
    let size: number
    try {
      size = peekSize(data.subarray(pos, pos + HEADER_SIZE))
    } catch {
      break
    }
    if (size < HEADER_SIZE || pos + size > data.length) break
    let rec
    try {
      rec = decodeRecord(data.subarray(pos, pos + size))
    } catch {
      break
    }
    if (rec.seq === expect) {
      records.push({ seq: rec.seq, loc: { segment, offset: pos, size }, bytes: Buffer.from(rec.bytes) })
      expect++
      end = pos + size
    } else if (!(skipOlder && rec.seq < expect)) {
      break
    } else {
      end = pos + size
    }
    pos += size
  }
  return { records, end }
}

function syncDir (dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, (err, fd) => {
      if (err) { reject(fromSystemError(err, `open journal directory ${dir}`)); return }
      fs.fsync(fd, (e) => {
        fs.close(fd, () => {})
        if (e) reject(fromSystemError(e, `fsync journal directory ${dir}`))
        else resolve()
      })
    })
  })
}

function openFile (file: string): number {
  try {
    return fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600)
  } catch (err) {
    throw fromSystemError(err, `open journal segment ${file}`)
  }
}

function writevFully (fd: number, iov: Uint8Array[], position: number, size: number): void {
  try {
    let done = fs.writevSync(fd, iov, position)
    if (done === size) return
    // Short write (rare): finish piece by piece.
    let skip = done
    for (const p of iov) {
      if (skip >= p.length) { skip -= p.length; continue }
      let off = skip
      skip = 0
      while (off < p.length) {
        const n = fs.writeSync(fd, p, off, p.length - off, position + done)
        off += n
        done += n
      }
    }
  } catch (err) {
    throw fromSystemError(err, 'write journal segment')
  }
}

function preadFully (fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = 0
    const step = (): void => {
      fs.read(fd, buf, done, buf.length - done, position + done, (err, n) => {
        if (err) { reject(fromSystemError(err, 'read journal segment')); return }
        done += n
        if (n === 0 || done === buf.length) resolve(done)
        else step()
      })
    }
    step()
  })
}
