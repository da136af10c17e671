/**
 * dr-applier: applies the primary's records to a DR's copy.
 *
 * Data records (write, zero, truncate) go through the Replica, that is, by
 * the asOf rule. Namespace records go through the shared RecordApplier
 * (lib/store/applier.ts) and keep the DR's volume table and region maps in
 * step: a created volume is present from the start (it is empty), a renamed
 * one keeps its id, a deleted one is kept aside under `.volmirror/deleted/`
 * until the operator prunes it. The same code runs for live groups and for
 * crash replay.
 *
 * Namespace operations are always applied idempotently on a DR: during an
 * initial sync the DR takes its list of volumes from the primary after its
 * start seq, so records after that seq may find their work already done (a
 * rename whose target is there and source gone). A record whose source is
 * missing altogether is logged and skipped: the comparison of the initial
 * sync reconciles the bytes.
 */
import type { JournalRecord } from '../core/record.js'
import type { Replica } from '../core/replica.js'
import { isVolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import type { RecordApplier } from '../store/applier.js'
import type { RegionCodes } from '../store/region-codes.js'
import type { DrVolumes } from './dr-volumes.js'
import type { RecoveryHistory } from './recovery-history.js'

/** keptAsideName is where a volume deleted at `seq` goes on a DR (relative to `.volmirror/deleted`). */
export function keptAsideName (seq: number, volume: string): string {
  return `${String(seq).padStart(12, '0')}-${volume.replaceAll('/', '%2F')}`
}

/** DrApplier applies records on a DR. */
export class DrApplier {
  /** Bytes of payload applied, for status. */
  readonly counters = { records: 0, bytes: 0 }
  /** The seq of the record being applied now (0 between records). */
  current = 0

  constructor (
    private readonly replica: Replica,
    private readonly volumes: DrVolumes,
    private readonly namespace: RecordApplier,
    private readonly log: Logger,
    private readonly codes: RegionCodes,
    private readonly onVolumeGone?: (id: number) => void,
    /** Keeps what each change undoes (recovery points), and where a deleted volume is kept aside (relative to the image directory). */
    private readonly history?: { history: RecoveryHistory, asideOf: (seq: number, volume: string) => string },
  ) {}

  /** apply applies one record (`_replay` is implied: see above). */
  apply (rec: JournalRecord, _replay = false): void {
    this.counters.records++
    const h = this.history?.history
    if (h) h.cause = rec.seq
    this.current = rec.seq
    try {
      this.applyOne(rec, h?.capturing ? h : undefined)
    } finally {
      if (h) h.cause = 0
      this.current = 0
    }
  }

  private applyOne (rec: JournalRecord, h: RecoveryHistory | undefined): void {
    switch (rec.op) {
      case 'write':
      case 'zero':
      case 'truncate': {
        let v = this.volumes.get(rec.volume)
        if (!v) {
          // A volume this DR did not know (it appeared outside the primary's
          // write path before the DR registered): take it as it comes; its
          // regions are absent until fetched.
          this.log.warn('dr.unknown_volume', { volume: rec.volume, seq: rec.seq })
          this.namespaceOp({ ...rec, op: 'create', mode: 0o644, data: undefined })
          v = this.volumes.add(rec.volume, -1)
          this.replica.track(v.id)
        }
        if (rec.op === 'write') this.counters.bytes += rec.length
        this.replica.apply(v.id, { seq: rec.seq, op: rec.op, offset: rec.offset, length: rec.length, data: rec.data })
        return
      }
      case 'create': {
        this.codes.deleted(rec.volume)
        this.namespaceOp(rec)
        const v = this.volumes.add(rec.volume, rec.seq)
        h?.undo.created(v.id, rec.volume, rec.seq)
        this.replica.track(v.id, true)
        return
      }
      case 'delete': {
        this.codes.deleted(rec.volume)
        const gone = this.volumes.get(rec.volume)
        if (gone && h) h.undo.deleted(gone.id, rec.volume, this.history!.asideOf(rec.seq, rec.volume), rec.seq)
        this.namespaceOp(rec)
        const v = this.volumes.removed(rec.volume)
        if (v) {
          this.replica.forget(v.id)
          this.onVolumeGone?.(v.id)
        }
        return
      }
      case 'rename': {
        // A volume renamed over another replaces it.
        const replaced = this.volumes.get(rec.target)
        if (h) {
          if (replaced && this.volumes.get(rec.volume)) {
            // History needs the replaced bytes: kept aside, as a delete would.
            h.undo.deleted(replaced.id, rec.target, this.history!.asideOf(rec.seq, rec.target), rec.seq)
            this.namespaceOp({ ...rec, op: 'delete', volume: rec.target, target: '' })
          }
          h.undo.renamed(rec.volume, rec.target, rec.seq)
        }
        this.namespaceOp(rec)
        if (replaced && this.volumes.get(rec.volume)) {
          this.volumes.removed(rec.target)
          this.replica.forget(replaced.id)
          this.onVolumeGone?.(replaced.id)
        }
        this.volumes.renamed(rec.volume, rec.target, rec.seq)
        this.codes.renamed(rec.volume, rec.target)
        return
      }
      case 'mkdir':
      case 'rmdir':
      case 'chmod':
        this.namespaceOp(rec)
    }
  }

  private namespaceOp (rec: JournalRecord): void {
    try {
      this.namespace.apply(rec, true)
    } catch (err) {
      if (!isVolmirrorError(err, 'NOT_FOUND')) throw err
      this.log.warn('dr.namespace_skipped', { seq: rec.seq, op: rec.op, volume: rec.volume, target: rec.target || undefined, err })
    }
  }
}
