/**
 * native-path: the TypeScript face of the native data path (native/).
 *
 * With `--data-path native` (the default) a mount's reads and writes are
 * served in C on libfuse's worker threads, through hooks the patched
 * fuse-native calls before it would hand the request to this thread
 * (native/README.md). JavaScript keeps the control plane: it names the
 * volumes and binds FUSE handles to them, indexes and ships what the
 * native writers journaled (drained from a bounded ring), pauses them
 * around what it does to the journal or the images itself, and mirrors a
 * DR's region presence so that only present regions are read natively.
 *
 * `--data-path js` keeps every operation on this thread, as before.
 */
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { VolmirrorError } from '../errors.js'

/** DataPath chooses who serves a mount's reads and writes. */
export type DataPath = 'native' | 'js'

/** DATA_PATHS are the accepted `--data-path` values. */
export const DATA_PATHS: readonly DataPath[] = ['native', 'js']

/** defaultDataPath is `VOLMIRROR_DATA_PATH` when set (tests run both), else native. */
export function defaultDataPath (): DataPath {
  const env = process.env.VOLMIRROR_DATA_PATH
  return env === 'js' ? 'js' : 'native'
}

interface Binding {
  hooksAbi: number
  entrySize: number
  PASS: number
  create (kind: number, regionSize: number): unknown
  hooks (m: unknown): unknown
  volumeOpen (m: unknown, fd: number, name: string): number
  volumeRename (m: unknown, slot: number, name: string): void
  volumeClose (m: unknown, slot: number): void
  volumeSetId (m: unknown, slot: number, id: number): void
  volumeVersion (m: unknown, slot: number, offset: number, length: number): number
  volumeReadEnd (m: unknown, slot: number): number
  takeDirty (m: unknown): number[]
  handleBind (m: unknown, slot: number): number
  handleUnbind (m: unknown, fh: number): void
  journalStart (m: unknown, dir: string, segmentSize: number, segNo: number, segFd: number, segOffset: number,
    nextNo: number, lastSeq: number, ringCapacity: number, onWake: () => void): void
  journalSetSpare (m: unknown, fd: number, path: string): void
  journalDrain (m: unknown): Buffer | null
  journalPause (m: unknown): void
  journalResume (m: unknown): void
  journalAppend (m: unknown, seq: number, parts: Uint8Array[], size: number): [number, number]
  journalState (m: unknown): NativeJournalState
  journalLastSeq (m: unknown): number
  stop (m: unknown): number
  close (m: unknown): void
  stats (m: unknown): NativeMountStats
  drApplyBegin (m: unknown): void
  drApplyEnd (m: unknown): void
  drSet (m: unknown, id: number, from: number, to: number, on: boolean): void
  drResize (m: unknown, id: number, regions: number): void
  drLoad (m: unknown, id: number, bits: Uint8Array, regions: number): void
  drDrop (m: unknown, id: number): void
  encodeHead (op: number, seq: number, ts: number, offset: number, length: number, name: string): Buffer
  hookRead (m: unknown, fh: number, buf: Uint8Array, offset: number): number
  hookWrite (m: unknown, fh: number, buf: Uint8Array, offset: number): number
  hammer (m: unknown, fhs: number[], threads: number, writes: number, maxLength: number, span: number, seed: number,
    done: (err: null, failures: number) => void): void
  writeBehind (fds: number[], done: (err: null, errors: number) => void): void
  tuneMalloc (): boolean
}

/** NativeJournalState is the native writers' position and counters. */
export interface NativeJournalState {
  lastSeq: number
  segment: number
  segmentOffset: number
  nextSegment: number
  needSpare: number
  pending: number
  writes: number
  writeBytes: number
  zeroWrites: number
  rotations: number
  waitsFull: number
  waitsSpare: number
  waitsPaused: number
  /** Time spent inside the write critical section, in all and at most once. */
  holdSeconds: number
  maxHoldSeconds: number
  /** Time writers waited for it. */
  waitSeconds: number
}

/** NativeMountStats counts what the hooks served and what they passed to JavaScript. */
export interface NativeMountStats {
  reads: number
  readBytes: number
  passedReads: number
  passedWrites: number
  volumes: number
  handles: number
}

/** NativeEntry is one record the native writers appended (drained from the ring). */
export interface NativeEntry {
  seq: number
  ts: number
  op: 'write' | 'zero'
  offset: number
  length: number
  slot: number
  segment: number
  segOffset: number
  size: number
  /** errno of a failed image write: journaled but not applied. */
  err: number
}

let binding: Binding | undefined

/** repoRoot finds the directory holding native/ from this module (lib/ or dist/lib/). */
function repoRoot (): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'native', 'binding.gyp'))) return dir
    dir = path.dirname(dir)
  }
  throw new VolmirrorError('NATIVE_UNAVAILABLE', 'cannot find the native/ directory of volmirror')
}

/** loadNative loads the addon (built at install) and checks it fits the patched fuse-native. */
export function loadNative (): Binding {
  if (binding) return binding
  const require = createRequire(import.meta.url)
  const root = repoRoot()
  const file = path.join(root, 'native', 'build', 'Release', 'volmirror_native.node')
  let b: Binding
  try {
    b = require(file) as Binding
  } catch (err) {
    throw new VolmirrorError('NATIVE_UNAVAILABLE',
      `the native data path is not built (${(err as Error).message.split('\n')[0]}): run \`npm run setup\`, or use --data-path js`, { cause: err })
  }
  let fuseAbi: number | undefined
  try {
    const fuseDir = path.dirname(require.resolve('fuse-native/package.json'))
    fuseAbi = (require(path.join(fuseDir, 'build', 'Release', 'fuse.node')) as { VOLMIRROR_HOOKS_ABI?: number }).VOLMIRROR_HOOKS_ABI
  } catch {}
  if (fuseAbi !== b.hooksAbi) {
    throw new VolmirrorError('NATIVE_UNAVAILABLE',
      `fuse-native is not built with volmirror's patch (hooks ABI ${fuseAbi ?? 'missing'}, need ${b.hooksAbi}): run \`npm run setup\`, or use --data-path js`)
  }
  binding = b
  return b
}

function nativeError (err: unknown, what: string): VolmirrorError {
  const code = (err as { code?: string }).code
  const mapped = code === 'ENOSPC' ? 'NO_SPACE' : code === 'EFBIG' ? 'TOO_LARGE' : 'IO_ERROR'
  return new VolmirrorError(mapped, `${what}: ${(err as Error).message}`, { cause: err })
}

/**
 * NativeMount is one node's native state behind one mount: its volumes,
 * its handles, and (primary) its journal writers or (DR) its presence maps.
 */
export class NativeMount {
  private readonly b: Binding
  private readonly m: unknown
  private closed = false
  /** The journal writers, once started (primary). */
  journal: NativeJournal | undefined

  constructor (readonly kind: 'primary' | 'dr', readonly regionSize: number) {
    this.b = loadNative()
    this.m = this.b.create(kind === 'dr' ? 1 : 0, regionSize)
  }

  /** hooks is the table to hand to fuse-native at mount. */
  hooks (): unknown { return this.b.hooks(this.m) }

  /** openVolume registers an open image (the native side keeps a dup of `fd`); returns its slot. */
  openVolume (fd: number, name: string): number { return this.b.volumeOpen(this.m, fd, name) }
  /** renameVolume changes the name records carry (with the writers paused). */
  renameVolume (slot: number, name: string): void { this.b.volumeRename(this.m, slot, name) }
  /** closeVolume forgets a volume; ops on handles still bound to it go to JavaScript. */
  closeVolume (slot: number): void { if (!this.closed) this.b.volumeClose(this.m, slot) }
  /** setVolumeId ties a DR volume's image to its presence map (-1: none, reads go to JavaScript). */
  setVolumeId (slot: number, id: number): void { if (!this.closed) this.b.volumeSetId(this.m, slot, id) }
  /** version is the seqlock version of [offset, offset + length): the seq of the last native write that began there. */
  version (slot: number, offset: number, length: number): number { return this.b.volumeVersion(this.m, slot, offset, length) }
  /** readEnd is where the last native read of a volume ended (DR: read-ahead follows sequential readers). */
  readEnd (slot: number): number { return this.closed ? 0 : this.b.volumeReadEnd(this.m, slot) }
  /** takeDirty returns the slots written natively since the last call. */
  takeDirty (): number[] { return this.closed ? [] : this.b.takeDirty(this.m) }

  /** bind makes a FUSE handle for a volume: the native hooks serve ops on it. */
  bind (slot: number): number { return this.b.handleBind(this.m, slot) }
  unbind (fh: number): void { if (!this.closed) this.b.handleUnbind(this.m, fh) }

  stats (): NativeMountStats { return this.b.stats(this.m) }

  /** startJournal starts the native writers at the journal's current position (primary). */
  startJournal (at: { dir: string, segmentSize: number, segment: number, segmentFd: number, segmentOffset: number, nextSegment: number, lastSeq: number },
    onWake: () => void, ringCapacity = 65536): NativeJournal {
    this.b.journalStart(this.m, at.dir, at.segmentSize, at.segment, at.segmentFd, at.segmentOffset, at.nextSegment, at.lastSeq, ringCapacity, onWake)
    this.journal = new NativeJournal(this.b, this.m)
    return this.journal
  }

  // DR presence (see native/src/dr.h).
  applyBegin (): void { if (!this.closed) this.b.drApplyBegin(this.m) }
  applyEnd (): void { if (!this.closed) this.b.drApplyEnd(this.m) }
  presenceSet (id: number, from: number, to: number, on: boolean): void { if (!this.closed) this.b.drSet(this.m, id, from, to, on) }
  presenceResize (id: number, regions: number): void { if (!this.closed) this.b.drResize(this.m, id, regions) }
  presenceLoad (id: number, bits: Uint8Array, regions: number): void { if (!this.closed) this.b.drLoad(this.m, id, bits, regions) }
  presenceDrop (id: number): void { if (!this.closed) this.b.drDrop(this.m, id) }

  /**
   * stop (after unmount) refuses new hook calls (they go to JavaScript),
   * fails blocked writers with EIO and waits (at most 5 s) for the calls in
   * flight; returns how many are still running. The journal's last entries
   * can still be drained.
   */
  stop (): number {
    return this.closed ? 0 : this.b.stop(this.m)
  }

  /** close stops and frees the native state; safe to call twice. */
  close (): void {
    if (this.closed) return
    this.closed = true
    this.b.close(this.m)
  }

  /** Test seams: call a hook as a FUSE thread would, and many writers at once. */
  testRead (fh: number, buf: Uint8Array, offset: number): number { return this.b.hookRead(this.m, fh, buf, offset) }
  testWrite (fh: number, buf: Uint8Array, offset: number): number { return this.b.hookWrite(this.m, fh, buf, offset) }
  testHammer (fhs: number[], o: { threads: number, writes: number, maxLength: number, span: number, seed: number }): Promise<number> {
    return new Promise(resolve => this.b.hammer(this.m, fhs, o.threads, o.writes, o.maxLength, o.span, o.seed, (_e, failures) => resolve(failures)))
  }
}

/** NativeJournal is the native writers' side of the journal (native/src/journal.h). */
export class NativeJournal {
  private paused = 0

  constructor (private readonly b: Binding, private readonly m: unknown) {}

  /** lastSeq is the last seq the native side assigned (appended, maybe not drained yet). */
  get lastSeq (): number { return this.b.journalLastSeq(this.m) }

  /** isPaused tells whether JavaScript holds the writers. */
  get isPaused (): boolean { return this.paused > 0 }

  /** pause waits for a writer inside its critical section and holds the rest back (nests). */
  pause (): void {
    this.b.journalPause(this.m)
    this.paused++
  }

  resume (): void {
    if (this.paused === 0) return
    this.paused--
    this.b.journalResume(this.m)
  }

  /** drain takes the entries appended since the last drain, in seq order. */
  drain (): NativeEntry[] {
    const raw = this.b.journalDrain(this.m)
    if (!raw) return []
    const size = this.b.entrySize
    const out: NativeEntry[] = new Array(raw.length / size)
    for (let i = 0, at = 0; at < raw.length; i++, at += size) {
      out[i] = {
        seq: u64(raw, at),
        ts: u64(raw, at + 8),
        offset: u64(raw, at + 16),
        length: u64(raw, at + 24),
        slot: raw.readUInt32LE(at + 32),
        segment: raw.readUInt32LE(at + 36),
        segOffset: raw.readUInt32LE(at + 40),
        size: raw.readUInt32LE(at + 44),
        err: raw.readInt32LE(at + 48),
        op: raw[at + 52] === 2 ? 'zero' : 'write',
      }
    }
    return out
  }

  /**
   * append writes a record JavaScript encoded itself (seq = lastSeq + 1),
   * with the writers paused; returns where it went. NEED_SPARE: hand over
   * a spare segment first.
   */
  append (seq: number, parts: Uint8Array[], size: number): { segment: number, offset: number } {
    try {
      const [segment, offset] = this.b.journalAppend(this.m, seq, parts, size)
      return { segment, offset }
    } catch (err) {
      if ((err as { code?: string }).code === 'EAGAIN') throw new VolmirrorError('NEED_SPARE', 'the native journal needs a spare segment')
      throw nativeError(err, 'append to the journal')
    }
  }

  /** setSpare hands over the file the writers rotate into when the current segment is full. */
  setSpare (fd: number, file: string): void { this.b.journalSetSpare(this.m, fd, file) }

  state (): NativeJournalState { return this.b.journalState(this.m) }
}

function u64 (b: Buffer, at: number): number {
  return b.readUInt32LE(at + 4) * 0x100000000 + b.readUInt32LE(at)
}

/**
 * tuneMemory makes the process keep freed buffers for reuse instead of
 * handing them back to the kernel (see tuneMalloc in native/src/addon.c):
 * on machines where page faults are dear, a fresh 8 MiB buffer cost 30x a
 * reused one. Once per process, before a node starts; a no-op (false)
 * without the addon.
 */
export function tuneMemory (): boolean {
  try {
    return loadNative().tuneMalloc()
  } catch {
    return false
  }
}

/**
 * writeBehindNative starts the kernel's writeback of the files' dirty pages
 * without waiting for it (sync_file_range), on a thread-pool thread; resolves
 * with how many calls failed. undefined when the addon is not built (then
 * the kernel writes back on its own schedule).
 */
export function writeBehindNative (): ((fds: number[]) => Promise<number>) | undefined {
  let b: Binding
  try {
    b = loadNative()
  } catch {
    return undefined
  }
  return fds => new Promise(resolve => b.writeBehind(fds, (_e, errors) => resolve(errors)))
}

/** encodeHeadNative is the C encoder's header of a write or zero record (tests pin it to the TypeScript one). */
export function encodeHeadNative (op: 'write' | 'zero', seq: number, ts: number, offset: number, length: number, name: string): Buffer {
  return loadNative().encodeHead(op === 'zero' ? 2 : 1, seq, ts, offset, length, name)
}
