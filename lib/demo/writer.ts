/**
 * writer: the demo's application. It writes random blocks at random
 * offsets of one image through the primary's mount, as a VM would, and
 * fsyncs now and then, so there is always something to replicate.
 *
 * The demo process hosts no mount, so plain async file calls are safe here.
 */
import { randomBytes } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'

/** WriterOptions pace the writer. */
export interface WriterOptions {
  /** Bytes per write (default 64 KiB). */
  blockSize?: number
  /** Pause between writes (default 100 ms). */
  intervalMs?: number
  /** fdatasync after this many writes (default 10). */
  syncEvery?: number
}

/** Writer keeps writing to one file until stopped. */
export class Writer {
  /** What it did so far. */
  readonly counters = { writes: 0, bytes: 0, syncs: 0 }
  /** The first error (the writer stops at it). */
  error: Error | undefined
  private running = false
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined

  constructor (readonly file: string, readonly size: number, private readonly opts: WriterOptions = {}) {}

  start (): void {
    if (this.running) return
    this.running = true
    this.loop = this.run().catch(err => { this.error = err as Error })
  }

  /** stop ends the loop after the write in progress and closes the file. */
  async stop (): Promise<void> {
    this.running = false
    this.wake?.()
    await this.loop
  }

  private async run (): Promise<void> {
    const bs = this.opts.blockSize ?? 64 * 1024
    const every = this.opts.syncEvery ?? 10
    let fh: FileHandle | undefined
    try {
      fh = await open(this.file, 'r+')
      while (this.running) {
        const at = Math.floor(Math.random() * Math.floor(this.size / bs)) * bs
        await fh.write(randomBytes(bs), 0, bs, at)
        this.counters.writes++
        this.counters.bytes += bs
        if (this.counters.writes % every === 0) {
          await fh.datasync()
          this.counters.syncs++
        }
        await new Promise<void>(resolve => {
          this.wake = resolve
          setTimeout(resolve, this.opts.intervalMs ?? 100)
        })
        this.wake = undefined
      }
    } finally {
      await fh?.close()
    }
  }
}
