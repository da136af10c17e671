/**
 * write-behind: the images' dirty pages go to disk steadily, not in bursts.
 *
 * Between checkpoints the kernel would otherwise keep written image data in
 * the page cache (on a machine with much memory, gigabytes) until a
 * checkpoint's fdatasync flushes it all at once; the journal's fdatasyncs
 * (before every group is shipped, and on a DR before every group is applied)
 * then wait behind that flush, and replication lag jumps. Every few hundred
 * milliseconds this starts writeback of each image written since the last
 * checkpoint (sync_file_range SYNC_FILE_RANGE_WRITE, through the native
 * addon, on the thread pool): no waiting, no device flush, so checkpoints
 * find little left to do. Durability is unchanged: the checkpoint still
 * fdatasyncs before it moves the watermark.
 */
import type { Logger } from '../log.js'
import type { VolumeFiles } from './volume-files.js'

/** WriteBehind runs the ticks; `start` without a flusher (addon not built) does nothing. */
export class WriteBehind {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  /** Ticks that started writeback, and files they covered. */
  readonly counters = { ticks: 0, files: 0, errors: 0 }

  constructor (
    private readonly files: VolumeFiles,
    private readonly flush: ((fds: number[]) => Promise<number>) | undefined,
    private readonly log: Logger,
    private readonly intervalMs = 250,
  ) {}

  start (): void {
    if (!this.flush || this.timer) return
    const tick = (): void => {
      this.timer = setTimeout(() => {
        this.running = this.once().catch(err => this.log.warn('write_behind.failed', { err })).finally(() => {
          this.running = undefined
          if (this.timer) tick()
        })
      }, this.intervalMs)
      this.timer.unref()
    }
    tick()
  }

  async stop (): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    await this.running
  }

  private async once (): Promise<void> {
    const dirty = this.files.dirtyNow().filter(f => !f.removed)
    if (dirty.length === 0) return
    const releases = dirty.map(f => this.files.hold(f))
    try {
      const errors = await this.flush!(dirty.map(f => f.fd))
      this.counters.ticks++
      this.counters.files += dirty.length
      this.counters.errors += errors
    } finally {
      for (const r of releases) r()
    }
  }
}
