/**
 * read-ahead: regions fetched ahead of a sequential reader of a DR mount.
 *
 * A reader that goes on from where its last read ended gets the next
 * `count` regions fetched before it asks. The window slides as the reader
 * moves: each fetch that completes looks where the reader is now and tops
 * the window up. Where the reader is comes from its reads: with the native
 * data path, reads of regions already here never reach JavaScript, so the
 * native side keeps where the last one ended (`position`); without that the
 * window would only move when the reader ran into its end, and wait there
 * for a whole fetch every `count` regions.
 *
 * Like the kernel's read-ahead it starts small and grows while the reader
 * keeps coming (two sequential reads are not yet a stream worth 16 MiB, and
 * a file system's small files should not each pull in a window).
 * The window never runs more than `count` regions past the reader: a reader
 * that stops stops it. A window belongs to one open file: two readers of
 * one volume each have their own.
 */
import type { Fetcher } from './fetcher.js'

/** A new window starts this many regions deep and doubles each time the reader has read a whole window more, up to `count`. */
const INITIAL = 2

interface Window {
  volume: number
  /** The first region not asked for yet. */
  next: number
  /** How many regions ahead of the reader (grows while it keeps reading). */
  size: number
  /** The reader's region when the window last grew (it grows again once the reader read a whole window more). */
  at: number
  /** Where the reader is (a byte offset). */
  position: () => number
}

/** ReadAhead keeps regions fetched ahead of sequential readers, one window per reader (open file handle). */
export class ReadAhead {
  private readonly windows = new Map<number, Window>()

  constructor (
    private readonly fetcher: Pick<Fetcher, 'prefetchOne' | 'regions'>,
    private readonly regionSize: number,
    readonly count: number,
  ) {}

  /**
   * follow notes that `reader` (a file handle) read `volume` sequentially up
   * to region `region`; `position` tells where it is later.
   */
  follow (reader: number, volume: number, region: number, position: () => number): void {
    if (this.count <= 0) return
    let w = this.windows.get(reader)
    // A reader that went back (or to another volume) starts a new window.
    if (!w || w.volume !== volume || region + 1 < w.next - this.count - 1) {
      w = { volume, next: region + 1, position, size: Math.min(this.count, INITIAL), at: region }
      this.windows.set(reader, w)
    }
    w.position = position
    w.next = Math.max(w.next, region + 1)
    this.topUp(reader, w)
  }

  /** forget drops a reader's window (its file was closed). */
  forget (reader: number): void {
    this.windows.delete(reader)
  }

  private topUp (reader: number, w: Window): void {
    if (this.windows.get(reader) !== w) return
    let regions: number
    try {
      regions = this.fetcher.regions(w.volume)
    } catch {
      this.windows.delete(reader) // the volume is gone
      return
    }
    const at = Math.floor(w.position() / this.regionSize)
    // Not a stream any more (it went back, or jumped past its window): stop.
    if (at < w.at || at > w.next + w.size) { this.windows.delete(reader); return }
    if (at >= w.at + w.size) { w.size = Math.min(this.count, w.size * 2); w.at = at }
    const limit = Math.min(at + w.size, regions - 1)
    while (w.next <= limit) {
      const done = this.fetcher.prefetchOne(w.volume, w.next)
      w.next++
      done?.then(() => this.topUp(reader, w), () => {})
    }
    if (w.next >= regions) this.windows.delete(reader)
  }
}
