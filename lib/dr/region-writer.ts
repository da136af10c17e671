/**
 * region-writer: writes fetched regions off the main thread (hydration).
 *
 * Copy-on-read writes each chunk as it arrives, on the main thread, so the
 * waiting reader gets its bytes at once. Hydration has nobody waiting: the
 * fetcher gathers a whole region and hands it here, to be written in the
 * thread pool while the main thread goes on with the next one. The asOf
 * rule still holds: the apply lock is held (shared) from deciding which
 * ranges the rule lets through until they are written, so no record can
 * be applied in between and be overwritten by older fetched bytes.
 */
import type { Range } from '../core/as-of.js'
import type { FetchToken, Replica } from '../core/replica.js'
import type { ApplyLock } from './apply-lock.js'
import type { ReplicaFiles } from './replica-files.js'

/** RegionWriter writes fetched bytes by the asOf rule, asynchronously. */
export class RegionWriter {
  constructor (
    private readonly replica: Replica,
    private readonly files: ReplicaFiles,
    private readonly lock: ApplyLock,
  ) {}

  /** write writes `data` (fetched bytes at `offset`) where the asOf rule allows; resolves with the ranges written. */
  async write (t: FetchToken, offset: number, data: Uint8Array): Promise<Range[]> {
    return await this.lock.read(async () => {
      const ranges = this.replica.fetchWritable(t, offset, offset + data.length)
      // Settled, all of them, before the caller may reuse `data`.
      const done = await Promise.allSettled(ranges.map(([s, e]) => this.files.writeAsync(t.volume, s, data.subarray(s - offset, e - offset))))
      for (const d of done) if (d.status === 'rejected') throw d.reason
      return ranges
    })
  }
}
