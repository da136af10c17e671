/**
 * volume-flags: volumes a primary's DRs must compare by checksum, because
 * their image is not what the journal says: changed behind the mount
 * (added, changed, removed outside), or written through it where the
 * image write failed (journaled but not applied; a full disk). Kept in
 * LevelDB (`flags`, by volume name) across restarts; DRs learn them from
 * the primary's info and compare each flagged volume once per flag seq.
 */
import { isVolmirrorError, systemErrno } from '../errors.js'
import type { Logger } from '../log.js'
import type { Flag } from '../node/status.js'
import type { JsonLevel } from '../store/state-store.js'
import type { OutsideChange } from './image-watcher.js'

export class VolumeFlags {
  /** Writes not applied since this process started, per volume. */
  private readonly failed = new Map<string, { since: string, count: number }>()

  constructor (private readonly level: JsonLevel, private readonly log: Logger) {}

  /** all reads every flag, by volume name. */
  async all (): Promise<Map<string, Flag>> {
    const out = new Map<string, Flag>()
    for await (const [k, v] of this.level.iterator()) out.set(k, v as Flag)
    return out
  }

  /** toCompare lists what DRs must compare (a volume removed outside is not there to compare). */
  async toCompare (): Promise<Array<{ volume: string, seq: number }>> {
    return [...await this.all()].filter(([, f]) => f.reason !== 'removed-outside').map(([volume, f]) => ({ volume, seq: f.seq }))
  }

  /** applyFailed counts a write journaled but not applied (its writer got `err`). */
  applyFailed (volume: string, seq: number, err: unknown): void {
    const f = this.failed.get(volume) ?? { since: new Date().toISOString(), count: 0 }
    f.count++
    this.failed.set(volume, f)
    const errno = systemErrno(err) ?? (isVolmirrorError(err, 'NO_SPACE') ? 'ENOSPC' : isVolmirrorError(err) ? err.code : 'EIO')
    void this.put(volume, { reason: 'apply-failed', since: f.since, seq, failedWrites: f.count, errno })
  }

  /** outside records a change behind the mount, noticed at `seq`. */
  async outside (c: OutsideChange, seq: number): Promise<void> {
    const reason = c.kind === 'added' ? 'added-outside' : c.kind === 'removed' ? 'removed-outside' : 'changed-outside'
    const existing = await this.level.get(c.volume).catch(() => undefined) as Flag | undefined
    // A volume whose writes failed keeps saying so (both are compared by checksum).
    if (existing?.reason === 'apply-failed' && reason === 'changed-outside') { await this.put(c.volume, { ...existing, seq }); return }
    await this.put(c.volume, { reason, since: existing?.since ?? new Date().toISOString(), seq })
  }

  private async put (volume: string, flag: Flag): Promise<void> {
    try {
      await this.level.put(volume, flag)
    } catch (err) {
      this.log.error('flag.write_failed', { volume, err })
    }
  }
}
