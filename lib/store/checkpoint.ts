/**
 * checkpoint: the image watermark.
 *
 * `imageSeq` (persisted, synchronously) is a seq such that every record up
 * to it is durable in the images. A checkpoint captures the applied seq,
 * fdatasyncs every image written since the last checkpoint, then persists
 * the captured seq. On start, records above `imageSeq` are applied again
 * (lib/store/applier.ts, replay mode); records at or below it are no longer
 * needed for recovery and may be trimmed (if no DR still needs them).
 *
 * Like a database checkpoint, one runs when enough journal has accumulated
 * (`maxBytes`, default 256 MiB) or enough time has passed (`intervalMs`,
 * default 30 s) since the last, and at namespace barriers and shutdown. They
 * never overlap. Between checkpoints the kernel writes dirty pages back on
 * its own schedule; forcing that every second costs random-write
 * throughput (writes to pages under writeback wait for it) and buys nothing
 * the journal does not already provide.
 */
import type { Logger } from '../log.js'
import type { ImageDir } from './image-dir.js'
import type { StateStore } from './state-store.js'
import type { VolumeFiles } from './volume-files.js'

const META_KEY = 'imageSeq'

/** CheckpointerOptions wire the checkpointer to the write path. */
export interface CheckpointerOptions {
  /** The last seq applied to the images (all before it applied too). */
  appliedSeq: () => number
  /** Called first: brings in what off-thread writers applied, so appliedSeq covers it. */
  catchUp?: () => void
  /** Bytes appended to the journal so far (monotonic). */
  appendedBytes: () => number
  /** Called after each checkpoint that advanced the watermark (trimming). */
  onCheckpoint?: (imageSeq: number) => Promise<void>
  /**
   * capture is called when the images to sync are taken; the function it
   * returns runs once they are synced, before the watermark is written:
   * state describing the images (a DR's region maps) becomes durable only
   * together with the bytes it describes.
   */
  capture?: () => () => Promise<void>
  intervalMs?: number
  maxBytes?: number
}

/** Checkpointer keeps the image watermark moving. */
export class Checkpointer {
  imageSeq = 0
  private chain: Promise<number> = Promise.resolve(0)
  private timer: NodeJS.Timeout | undefined
  private readonly intervalMs: number
  private readonly maxBytes: number
  private lastAt = Date.now()
  private lastBytes = 0

  constructor (
    private readonly store: StateStore,
    private readonly images: ImageDir,
    private readonly files: VolumeFiles,
    private readonly log: Logger,
    private readonly opts: CheckpointerOptions,
  ) {
    this.intervalMs = opts.intervalMs ?? 30_000
    this.maxBytes = opts.maxBytes ?? 256 * 1024 * 1024
  }

  /** load reads the persisted watermark. */
  async load (): Promise<number> {
    this.imageSeq = (await this.store.getMeta<number>(META_KEY)) ?? 0
    return this.imageSeq
  }

  /** start checks, a few times a second, whether a checkpoint is due. */
  start (): void {
    const tick = (): void => {
      this.timer = setTimeout(() => {
        const due = this.opts.appliedSeq() > this.imageSeq &&
          (Date.now() - this.lastAt >= this.intervalMs || this.opts.appendedBytes() - this.lastBytes >= this.maxBytes)
        const work = due ? this.run() : Promise.resolve(this.imageSeq)
        work.catch(err => this.log.error('checkpoint.failed', { err })).finally(() => { if (this.timer) tick() })
      }, Math.min(250, this.intervalMs))
      this.timer.unref()
    }
    tick()
  }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  /** run makes everything applied so far durable and persists the watermark; returns it. */
  run (): Promise<number> {
    const next = this.chain.then(() => this.once(), () => this.once())
    this.chain = next.catch(() => this.imageSeq)
    return next
  }

  /**
   * rewind makes the images durable and sets the watermark to `seq`, even
   * below where it was: the images were put back to that seq (a DR's
   * rollback to a recovery point).
   */
  rewind (seq: number): Promise<number> {
    const next = this.chain.then(async () => {
      const dirty = this.files.takeDirty()
      const persist = this.opts.capture?.()
      await Promise.all(dirty.map(f => this.images.fdatasync(f.fd)))
      await persist?.()
      await this.store.putMeta(META_KEY, seq, true)
      this.imageSeq = seq
      return seq
    })
    this.chain = next.catch(() => this.imageSeq)
    return next
  }

  /** The last checkpoint that ran: how long it took and how many images it synced (status). */
  last: { ms: number, images: number, at: string } | undefined

  private async once (): Promise<number> {
    const t0 = performance.now()
    this.opts.catchUp?.()
    const upto = this.opts.appliedSeq()
    this.lastAt = Date.now()
    this.lastBytes = this.opts.appendedBytes()
    const dirty = this.files.takeDirty()
    const persist = this.opts.capture?.()
    try {
      await Promise.all(dirty.map(f => this.images.fdatasync(f.fd)))
    } catch (err) {
      for (const f of dirty) if (!f.removed) this.files.markDirty(f)
      throw err
    }
    await persist?.()
    if (upto > this.imageSeq) {
      await this.store.putMeta(META_KEY, upto, true)
      this.imageSeq = upto
      this.last = { ms: performance.now() - t0, images: dirty.length, at: new Date().toISOString() }
      this.log.debug('checkpoint.done', { imageSeq: upto, images: dirty.length, ms: Math.round(this.last.ms) })
      await this.opts.onCheckpoint?.(upto)
    }
    return this.imageSeq
  }
}
