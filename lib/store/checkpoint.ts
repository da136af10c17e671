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
 * Checkpoints run on a timer, at namespace barriers and at shutdown; they
 * never overlap.
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
  /** Called after each checkpoint that advanced the watermark (trimming). */
  onCheckpoint?: (imageSeq: number) => Promise<void>
  intervalMs?: number
}

/** Checkpointer keeps the image watermark moving. */
export class Checkpointer {
  imageSeq = 0
  private chain: Promise<number> = Promise.resolve(0)
  private timer: NodeJS.Timeout | undefined
  private readonly intervalMs: number

  constructor (
    private readonly store: StateStore,
    private readonly images: ImageDir,
    private readonly files: VolumeFiles,
    private readonly log: Logger,
    private readonly opts: CheckpointerOptions,
  ) {
    this.intervalMs = opts.intervalMs ?? 1000
  }

  /** load reads the persisted watermark. */
  async load (): Promise<number> {
    this.imageSeq = (await this.store.getMeta<number>(META_KEY)) ?? 0
    return this.imageSeq
  }

  /** start runs a checkpoint every interval while there is something to make durable. */
  start (): void {
    const tick = (): void => {
      this.timer = setTimeout(() => {
        const work = this.opts.appliedSeq() > this.imageSeq ? this.run() : Promise.resolve(this.imageSeq)
        work.catch(err => this.log.error('checkpoint.failed', { err })).finally(() => { if (this.timer) tick() })
      }, this.intervalMs)
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

  private async once (): Promise<number> {
    const upto = this.opts.appliedSeq()
    const dirty = this.files.takeDirty()
    try {
      await Promise.all(dirty.map(f => this.images.fdatasync(f.fd)))
    } catch (err) {
      for (const f of dirty) if (!f.removed) this.files.markDirty(f)
      throw err
    }
    if (upto > this.imageSeq) {
      await this.store.putMeta(META_KEY, upto, true)
      this.imageSeq = upto
      this.log.debug('checkpoint.done', { imageSeq: upto, images: dirty.length })
      await this.opts.onCheckpoint?.(upto)
    }
    return this.imageSeq
  }
}
