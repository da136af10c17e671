/**
 * status: what `volmirror status --json` says of a node, as types. Below
 * the nodes (lib/node/*-node.ts), which fill them in, and below what reads
 * them (metrics, the CLI, the demo): no import circle between those.
 */
import type { ArchiveStatus } from '../archive/archiver.js'
import type { History } from '../core/history.js'
import type { Lag } from '../dr/follower.js'
import type { RecoveryStatus } from '../dr/recovery-history.js'
import type { VerifyProgress } from '../dr/verifier.js'
import type { WireStatus } from '../http/compression.js'
import type { SplitBrain } from '../primary/replication-source.js'
import type { SyncStatus } from '../primary/sync-gate.js'
import type { JournalStats } from '../store/journal.js'

/** VolumeStatus is one volume in `status`. */
export interface VolumeStatus {
  name: string
  size: number
  /** Bytes allocated on disk (sparse images allocate less than their size). */
  allocated: number
  /** Set when the volume changed outside volmirror's write path and needs a checksum resync. */
  flagged?: Flag
}

/** Flag says why a volume must be compared by checksum before it is trusted. */
export interface Flag {
  reason: 'added-outside' | 'changed-outside' | 'removed-outside' | 'apply-failed'
  since: string
  seq: number
  /** apply-failed: writes journaled but not in the image (their writers got the error), and why (ENOSPC: the disk is full). */
  failedWrites?: number
  errno?: string
}

/** NodeStatusCommon is what the status of either role starts with. */
export interface NodeStatusCommon {
  nodeId: string
  epoch: number
  regionSize: number
  pid: number
  startedAt: string
  images: string
  state: string
  mount: string
}

/** PrimaryStatus is `status --json` of a primary. */
export interface PrimaryStatus extends NodeStatusCommon {
  role: 'primary'
  /** Replication traffic sent to DRs, as data and on the wire (absent when not listening). */
  wire?: WireStatus
  /** Where DRs reach this primary (absent when not listening). */
  listen?: string
  /** Who serves the mount's reads and writes, and (native) what the native writers did. */
  dataPath: { mount: 'native' | 'js', native?: NativeWriteStats }
  seq: { last: number, applied: number, durableInImages: number }
  journal: JournalStats & { retained: boolean }
  /** Set when the scrub at start found damaged journal records (in the images; never shipped). */
  journalDamage?: { through: number, note: string }
  /** The last checkpoint: how long it took (images fdatasynced, maps persisted) and how many images it synced. */
  checkpoint?: { ms: number, images: number, at: string }
  history: History
  /** Region codes (checksums kept valid): how many, and how they were used. */
  codes: { valid: number }
  splitBrain?: SplitBrain
  /** Sync mode (RPO 0): whether fsyncs wait for the DRs now, and for which. */
  sync?: SyncStatus
  /** Set while a demotion waits for the DRs (writes are refused meanwhile). */
  demoting?: boolean
  /** The journal archive (with --archive): where it stands, and whether the store answers. */
  archive?: ArchiveStatus
  drs: Array<{
    nodeId: string
    ackedSeq: number
    lagSeq: number
    lastSeenAt: string
    /** Seconds since the DR last polled or acknowledged. */
    lastContactSeconds: number
    listenUrl?: string
    /** journaling: every record kept for it; bitmap: some were dropped, it will resync dirty regions. */
    mode: 'journaling' | 'bitmap'
    dirtyBytes: number
  }>
  volumes: VolumeStatus[]
  removedOutside: Array<{ name: string } & Flag>
}

/** NativeWriteStats is what status shows of the native data path of a primary. */
export interface NativeWriteStats {
  writes: number
  writeBytes: number
  reads: number
  readBytes: number
  /** Operations the native hooks passed to JavaScript. */
  passedReads: number
  passedWrites: number
  /** Seconds spent inside the write critical section, in all and at most once; seconds writers waited for it. */
  holdSeconds: number
  maxHoldSeconds: number
  waitSeconds: number
  /** Times writers waited for JavaScript: the ring full, no spare segment, paused. */
  waitsFull: number
  waitsSpare: number
  waitsPaused: number
  /** Records not yet brought in by JavaScript. */
  pending: number
  drains: number
}

/** Discarded is what a failback or a discard-local sync gave up. */
export interface Discarded {
  forkSeq: number
  records: number
  regions: number
  bytes: number
  keptIn?: string
}

/** DrVolumeStatus is one volume in a DR's status. */
export interface DrVolumeStatus {
  name: string
  size: number
  allocated: number
  state: 'consistent' | 'inconsistent'
  regions: { total: number, present: number, absent: number, aheadOfApplied: number }
  hydratedPercent: number
}

/** DrStatus is `status --json` of a DR. */
export interface DrStatus extends NodeStatusCommon {
  role: 'dr'
  /** Who serves the mount's reads, and (native) how many it served and passed to JavaScript (fetches). */
  dataPath: { mount: 'native' | 'js', native?: { reads: number, readBytes: number, passedReads: number } }
  /** Replication traffic received from the primary, as data and on the wire (over HTTP). */
  wire?: WireStatus
  primary: { label: string, id: string | undefined, journalBytes: number | undefined }
  /** `primaryLast` is null before the DR heard from its primary. */
  seq: { applied: number, stored: number, primaryLast: number | null, durableInImages: number }
  lag: Lag
  consistent: boolean
  volumes: DrVolumeStatus[]
  fetched: { onDemandBytes: number, hydrationBytes: number, fetches: number, retries: number, failures: number }
  hydration: {
    bytesPerSecond: number, complete: boolean, kept: number, released: number, copied: number, comparedBytes: number
    /** Copies allowed in flight, and the link as the last copies measured it (delivery rate, shortest fetch). */
    window: { regions: number, measuredBytesPerSecond: number, baseLatencyMs: number }
  }
  replication: { groups: number, records: number, bytes: number, reconnects: number, resyncs: number }
  /**
   * Bytes moved since this node started: records shipped, regions fetched,
   * and of those, the ones fetched while catching up after each kind of
   * event (what an initial sync, a resync or a failback cost).
   */
  moved: { recordBytes: number, fetchedBytes: number, initialSyncBytes: number, resyncBytes: number, failbackBytes: number, compareBytes: number }
  /** The last resync after an outage (journal limit): how much it had to fetch again. */
  resync?: { fromSeq: number, dirtyRegions: number, at: string }
  history: History
  /** What the last full sync discarded (failback). */
  discarded?: Discarded
  splitBrain?: string
  /** Set while applying is stalled by this DR's own disk (e.g. full): groups are kept and applied when it is fixed. */
  stalled?: string
  /** The running or last `volmirror verify` on this node: regions compared so far (for progress bars). */
  verifyProgress?: VerifyProgress
  /** Region codes (checksums kept valid in idle time): how many are valid now. */
  codes: { valid: number }
  /** Recovery points kept (--history): how many, the oldest and newest, their cost. */
  recovery?: RecoveryStatus
  /**
   * Where a promotion would land now: the applied seq when the DR is
   * consistent, else (resyncing) the newest recovery point, and how old it is.
   */
  promotionPoint?: { seq: number, ts: number, ageSeconds: number, rollback: boolean }
}
