/**
 * code-keeper: computes missing region codes in idle time, at a bounded
 * rate (lib/store/region-codes.ts). It yields while the node is busy
 * (a write in the last `idleMs`) so hashing never competes with the write
 * path, and walks volumes and regions in order, resuming where it stopped.
 */
import type { Logger } from '../log.js'
import { describeBytes } from './realization.js'
import type { RegionCodes } from './region-codes.js'

/** CodeSource reads a region's bytes for hashing and lists what exists. */
export interface CodeSource {
  volumes (): Promise<Array<{ name: string, size: number }>>
  read (volume: string, region: number): Promise<Uint8Array>
  /** When the node last wrote anything (ms). */
  lastWriteAt (): number
}

/** CodeKeeper keeps codes computed. */
export class CodeKeeper {
  private running = false
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined

  constructor (
    private readonly codes: RegionCodes,
    private readonly source: CodeSource,
    private readonly log: Logger,
    private readonly opts: { bytesPerSecond: number, idleMs?: number },
  ) {}

  start (): void {
    if (this.running || this.opts.bytesPerSecond <= 0) return
    this.running = true
    this.loop = this.run().catch(err => this.log.warn('codes.stopped', { err }))
  }

  async stop (): Promise<void> {
    this.running = false
    this.wake?.()
    await this.loop
  }

  private async run (): Promise<void> {
    const rs = this.codes.regionSize
    while (this.running) {
      let computed = 0
      for (const v of await this.source.volumes().catch(() => [])) {
        const regions = Math.ceil(v.size / rs)
        for (let r = 0; r < regions && this.running; r++) {
          if (this.codes.get(v.name, r)) continue
          await this.idle()
          if (!this.running) return
          const stamp = this.codes.stamp(v.name, r)
          let data: Uint8Array
          try {
            data = await this.source.read(v.name, r)
          } catch {
            break // the volume went away or shrank: next volume
          }
          if (this.codes.set(v.name, r, await describeBytes(data, true), stamp)) computed++
          await this.pace(data.length)
        }
      }
      if (computed === 0) await this.sleep(2000)
    }
  }

  private async idle (): Promise<void> {
    const idleMs = this.opts.idleMs ?? 500
    while (this.running && Date.now() - this.source.lastWriteAt() < idleMs) await this.sleep(idleMs)
  }

  private readonly bucket = { tokens: 0, at: Date.now() }
  private async pace (bytes: number): Promise<void> {
    const rate = this.opts.bytesPerSecond
    if (!Number.isFinite(rate)) return
    const now = Date.now()
    this.bucket.tokens = Math.min(rate, this.bucket.tokens + (now - this.bucket.at) * rate / 1000) - bytes
    this.bucket.at = now
    if (this.bucket.tokens < 0) await this.sleep(-this.bucket.tokens / rate * 1000)
  }

  // Timers are unref'd (a keeper never keeps a process alive), so a sleep
  // that began after stop() would never end: there is none once stopped.
  private sleep (ms: number): Promise<void> {
    if (!this.running) return Promise.resolve()
    return new Promise(resolve => {
      const t = setTimeout(resolve, ms)
      t.unref()
      this.wake = () => { clearTimeout(t); resolve() }
    })
  }
}
