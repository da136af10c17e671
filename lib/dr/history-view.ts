/**
 * history-view: every volume of a DR as it was at one recovery point, read
 * from the live images and the undo entries made since (lib/dr/history.ts),
 * while replication goes on underneath.
 *
 * Built from the entries made after the point, newest first for names and
 * sizes (each one undone in turn: a volume created since disappears, one
 * deleted since comes back from where it was kept aside, a rename goes
 * back), oldest first for bytes (the first entry covering a byte holds what
 * it was at the point; bytes no entry covers have not changed since). The
 * view follows the log from then on: a later change of a byte nobody has
 * changed since the point comes with an entry that now holds it.
 *
 * Reads are synchronous, on the main thread, where group applies and their
 * entries also happen: a read never sees an image change without its entry.
 * The view pins its entries against retention until it is closed.
 */
import fs from 'node:fs'
import path from 'node:path'
import { isUnder, renamePrefix } from '../core/volume-name.js'
import { VolmirrorError } from '../errors.js'
import type { ImageDir } from '../store/image-dir.js'
import type { DrVolumes } from './dr-volumes.js'
import type { RecoveryHistory, RecoveryPoint } from './recovery-history.js'
import type { UndoEntry } from './undo-log.js'

/** A run of bytes [start, end) of a volume that an undo entry holds as they were. */
interface Piece { start: number, end: number, entry: UndoEntry }

/** ViewVolume is one volume as it was at the point. */
export interface ViewVolume { name: string, id: number, size: number }

/** Pieces are kept per chunk of a volume, so that looking one up or adding one stays cheap. */
const CHUNK = 1024 * 1024

/** HistoryView is all volumes at one recovery point. */
export class HistoryView {
  /** Names at the point -> volume id. */
  private readonly names = new Map<string, number>()
  /** Per volume id: its size at the point. */
  private readonly sizes = new Map<number, number>()
  /** Per volume id deleted since the point: where it is kept aside (relative to the image directory). */
  private readonly aside = new Map<number, string>()
  /** Per volume id, per chunk: the pieces, sorted, not overlapping. */
  private readonly pieces = new Map<number, Map<number, Piece[]>>()
  private readonly fds = new Map<number, number>()
  private stop: (() => void) | undefined
  private unpin: (() => void) | undefined
  private closed = false

  constructor (
    readonly point: RecoveryPoint,
    private readonly history: RecoveryHistory,
    private readonly images: ImageDir,
    private readonly volumes: DrVolumes,
  ) {}

  /** open builds the view and starts following the undo log. */
  async open (): Promise<void> {
    this.unpin = this.history.pin(this.point.useq)
    // Follow first, so no entry falls between the scan and the following.
    const later: UndoEntry[] = []
    let scanned = false
    this.stop = this.history.undo.follow(e => { if (scanned) this.apply(e); else later.push(e) })
    if (this.point.useq < this.history.undo.firstSeq) {
      this.close()
      throw new VolmirrorError('NOT_FOUND', `recovery point ${this.point.seq} is no longer kept (retention dropped what it needs)`)
    }
    const entries = await this.history.undo.entries(this.point.useq - 1)
    const seen = new Set(entries.map(e => e.useq))
    const all = [...entries, ...later.filter(e => !seen.has(e.useq))]
    // Names and sizes now, then each change since undone, newest first.
    for (const v of this.volumes.list()) this.names.set(v.name, v.id)
    for (let i = all.length - 1; i >= 0; i--) this.undoName(all[i]!)
    for (const e of all) this.apply(e)
    for (const id of new Set(this.names.values())) {
      if (!this.sizes.has(id)) this.sizes.set(id, this.currentSize(id))
    }
    scanned = true
  }

  /** close stops following and lets retention go on. */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.stop?.()
    this.unpin?.()
    for (const fd of this.fds.values()) fs.closeSync(fd)
    this.fds.clear()
  }

  /** list lists the volumes at the point. */
  list (): ViewVolume[] {
    return [...this.names].map(([name, id]) => ({ name, id, size: this.sizes.get(id) ?? 0 })).sort((a, b) => a.name < b.name ? -1 : 1)
  }

  /** volume is one volume at the point, if it existed. */
  volume (name: string): ViewVolume | undefined {
    const id = this.names.get(name)
    return id === undefined ? undefined : { name, id, size: this.sizes.get(id) ?? 0 }
  }

  /** readSync reads [position, position + length) of a volume as it was at the point into `buf`; returns the bytes read (short at its end). */
  readSync (name: string, buf: Buffer, length: number, position: number): number {
    const v = this.volume(name)
    if (!v) throw new VolmirrorError('NOT_FOUND', `${name} did not exist at seq ${this.point.seq}`)
    const end = Math.min(position + length, v.size)
    if (end <= position) return 0
    let at = position
    while (at < end) {
      const chunkEnd = Math.min(end, (Math.floor(at / CHUNK) + 1) * CHUNK)
      for (const piece of this.piecesIn(v.id, at, chunkEnd)) {
        if (piece.start > at) this.readNow(v.id, buf.subarray(at - position, piece.start - position), at)
        const s = Math.max(at, piece.start)
        const e = Math.min(chunkEnd, piece.end)
        this.readOld(piece, buf.subarray(s - position, e - position), s)
        at = e
      }
      if (at < chunkEnd) this.readNow(v.id, buf.subarray(at - position, chunkEnd - position), at)
      at = chunkEnd
    }
    return end - position
  }

  // --- building ---------------------------------------------------------------

  /** undoName undoes one namespace or size change (entries taken newest first). */
  private undoName (e: UndoEntry): void {
    switch (e.op) {
      case 'delete': // created since the point
        if (this.names.get(e.volume) === e.volumeId) this.names.delete(e.volume)
        return
      case 'create': // deleted since the point, kept aside
        this.names.set(e.volume, e.volumeId)
        return
      case 'rename': { // the volumes under `volume` were under `target`
        for (const [name, id] of [...this.names]) {
          if (!isUnder(name, e.volume)) continue
          this.names.delete(name)
          this.names.set(renamePrefix(name, e.volume, e.target), id)
        }
        return
      }
      case 'truncate': // the size before: the oldest such entry wins
        this.sizes.set(e.volumeId, e.offset)
    }
  }

  /** track notes where a volume deleted since the point is kept aside (live ones are found by id). */
  private track (e: UndoEntry): void {
    if (e.op === 'create') this.aside.set(e.volumeId, e.target)
  }

  /** cover adds the parts of a write or zero entry that no older entry covers. */
  private cover (e: UndoEntry): void {
    if (e.op !== 'write' && e.op !== 'zero') return
    let chunks = this.pieces.get(e.volumeId)
    if (!chunks) { chunks = new Map(); this.pieces.set(e.volumeId, chunks) }
    for (let s = e.offset; s < e.offset + e.length;) {
      const c = Math.floor(s / CHUNK)
      const end = Math.min(e.offset + e.length, (c + 1) * CHUNK)
      let list = chunks.get(c)
      if (!list) { list = []; chunks.set(c, list) }
      insertUncovered(list, s, end, e)
      s = end
    }
  }

  /** apply takes an entry made while the view is open. */
  private apply (e: UndoEntry): void {
    this.track(e)
    this.cover(e)
  }

  // --- reading ------------------------------------------------------------------

  private piecesIn (id: number, start: number, end: number): Piece[] {
    const list = this.pieces.get(id)?.get(Math.floor(start / CHUNK))
    if (!list) return []
    return list.filter(p => p.end > start && p.start < end)
  }

  private readOld (p: Piece, dst: Buffer, at: number): void {
    if (p.entry.op === 'zero') { dst.fill(0); return }
    this.history.undo.readPayload(p.entry, at - p.entry.offset, dst)
  }

  /** readNow reads bytes no entry covers from where the volume's bytes live now (zeros past its end). */
  private readNow (id: number, dst: Buffer, at: number): void {
    const fd = this.fd(id)
    let done = 0
    while (done < dst.length) {
      const n = fd < 0 ? 0 : this.images.readSync(fd, dst.subarray(done), dst.length - done, at + done)
      if (n === 0) { dst.fill(0, done); return }
      done += n
    }
  }

  private fd (id: number): number {
    let fd = this.fds.get(id)
    if (fd !== undefined) return fd
    const rel = this.volumes.byIdOf(id)?.name ?? this.aside.get(id)
    try {
      fd = rel ? fs.openSync(path.resolve(this.images.root, rel), fs.constants.O_RDONLY) : -1
    } catch {
      fd = -1
    }
    this.fds.set(id, fd)
    return fd
  }

  private currentSize (id: number): number {
    const fd = this.fd(id)
    return fd < 0 ? 0 : fs.fstatSync(fd).size
  }
}

/** insertUncovered adds the parts of [start, end) not covered by `list` (sorted, disjoint) as pieces of `entry`. */
function insertUncovered (list: Piece[], start: number, end: number, entry: UndoEntry): void {
  let at = start
  const add: Piece[] = []
  for (const p of list) {
    if (p.end <= at) continue
    if (p.start >= end) break
    if (p.start > at) add.push({ start: at, end: p.start, entry })
    at = Math.max(at, p.end)
    if (at >= end) break
  }
  if (at < end) add.push({ start: at, end, entry })
  if (add.length === 0) return
  list.push(...add)
  list.sort((a, b) => a.start - b.start)
}
