/**
 * protocol: what a primary offers its DR nodes, as an interface.
 *
 * The primary implements it in process (lib/primary/replication-source.ts);
 * the HTTP client (lib/http/client.ts) implements it over the network
 * against the HTTP server (lib/http/server.ts), which serves the in-process
 * one. A DR only ever talks to this interface, so one conformance suite
 * (test/integration/primary-service.test.ts) runs against both.
 */
import type { History } from '../core/history.js'
import type { DecodedRecord } from '../core/record.js'
import type { Role } from '../store/state-store.js'

/** NodeInfo describes a primary. */
export interface NodeInfo {
  nodeId: string
  epoch: number
  /** Which node was primary when (lib/core/history.ts). */
  history?: History
  role: Role
  regionSize: number
  /** Last seq appended, and the last one readable by DRs (indexed). */
  lastSeq: number
  indexedSeq: number
  /** The last closed group boundary: DRs can be given records up to here. */
  groupEnd: number
  /** Oldest seq still in the journal, and the journal's size. */
  firstSeq: number
  journalBytes: number
  /** The primary's clock (ms since the epoch) when it answered. */
  time: number
  /**
   * Volumes changed behind the primary's back (not journaled), each with
   * the seq it was noticed at: a DR compares them by checksum.
   */
  flagged?: Array<{ volume: string, seq: number }>
}

/** VolumeInfo is one volume in a listing. */
export interface VolumeInfo {
  name: string
  size: number
  mode: number
  mtimeMs: number
  /** Seq of the record that bound the name to this volume (lib/primary/name-births.ts). */
  birth?: number
}

/** VolumeList lists the volumes; `asOf` is the applied seq when the listing started. */
export interface VolumeList {
  asOf: number
  volumes: VolumeInfo[]
}

/** RegionInfo says whether a region holds data and, if asked, its SHA-256. */
export interface RegionInfo {
  index: number
  /** Bytes of the region inside the volume as of `asOf` (less than the region size only at the end). */
  length: number
  /** A region is realized unless it is a hole or all zeros. */
  realized: boolean
  sha256?: string
  /** The applied seq as of which this was read. */
  asOf: number
}

/** RegionInfoList answers one `regions` call. */
export interface RegionInfoList {
  volume: string
  /** The volume's size when the first region was read. */
  size: number
  /** The name's birth when the first region was read. */
  birth?: number
  regions: RegionInfo[]
}

/**
 * RegionSink receives a fetched region: first its asOf and the volume's
 * size, then its bytes in one or more chunks at absolute volume offsets, in
 * body order: from the offset the fetch asked for (`first`) to the region's
 * end, then from the region's start to `first` (a region shorter than the
 * region size ends at end of file); then `end`.
 */
export interface RegionSink {
  /** `birth` says which volume the name meant at asOf (see VolumeInfo.birth). */
  begin (asOf: number, volumeSize: number, birth?: number): void
  /**
   * One chunk. It is the sender's memory, valid until `data` returns, or
   * until the promise it returns settles (a sink that passes the chunk on,
   * e.g. to a socket): copy what you keep longer.
   */
  data (offset: number, chunk: Uint8Array): void | Promise<void>
  /**
   * Every byte has been sent. `crc32` (IEEE), when the sender computed one,
   * covers the bytes in the order they came: the sink checks it and throws
   * RECORD_CORRUPT if it differs.
   */
  end? (crc32?: number): void
}

/** FetchRegionOptions: where a reader waits (`first`, `firstLength` bytes), and an abort signal. */
export interface FetchRegionOptions { first?: number, firstLength?: number, signal?: AbortSignal }

/** Registration is what a DR tells the primary when it connects. */
export interface Registration {
  nodeId: string
  epoch: number
  regionSize: number
  /** The DR's applied seq when it resumes; undefined for a DR starting from nothing. */
  appliedSeq?: number
  /** The DR's history and the last seq it holds (an old primary holds its own records): checked for failback and split brain. */
  history?: History
  lastSeq?: number
  /** Where the DR will serve if it is promoted (for a planned switchover, and split-brain checks). */
  listenUrl?: string
  /** The DR gives up whatever it holds that the primary does not (resolving a split brain). */
  discardLocal?: boolean
  /** 'archive': the journal archive (lib/archive/archiver.ts), not a DR: never waited for by sync mode, listed apart. */
  kind?: 'dr' | 'archive'
}

/** RegisterReply tells a DR where to start. */
export interface RegisterReply {
  primaryId: string
  epoch: number
  regionSize: number
  /** Records after this seq will be kept for the DR until it acknowledges them. */
  startSeq: number
  /**
   * True when the DR cannot resume from its applied seq (it is new, or the
   * records it lacks are gone): it must compare every region (initial sync)
   * and follow from `startSeq`.
   */
  fullSync: boolean
  /** The primary's history, which the DR adopts. */
  history?: History
  /**
   * Set when the DR holds records the primary never had (from this seq on):
   * they are discarded by the full sync; the DR reports them first.
   */
  forkSeq?: number
}

/** GroupBatch is a piece of the journal for a DR: records in (after, ...], and the group they belong to. */
export interface GroupBatch {
  after: number
  /** Contiguous records after `after`; may stop before `groupEnd` (size limit). */
  records: DecodedRecord[]
  /** The group boundary these records lead to: apply only once everything up to it is stored. */
  groupEnd: number
  /** The primary's last seq and clock when it answered (for lag). */
  lastSeq: number
  time: number
  /** Timestamp of the oldest record the DR does not have yet (0 if none): the RPO is `time - oldestPendingTs`. */
  oldestPendingTs: number
  /**
   * When set, `records` are views into a buffer the service lends: call it
   * once none of them is needed any more (stored and applied), and the
   * buffer is reused for a later batch.
   */
  release?: () => void
  /**
   * Sync mode: fsyncs on the primary wait for this DR. It confirms what it
   * stored (`ack` with `stored`) as soon as the records are durable, before
   * applying them.
   */
  syncWanted?: boolean
}

/** GroupRequest bounds one wait for groups. */
export interface GroupRequest {
  nodeId: string
  /** Everything up to here is durably applied on the DR (an acknowledgement). */
  after: number
  maxBytes?: number
  /** How long to wait for a new group when there is none (long poll). */
  waitMs?: number
  signal?: AbortSignal
}

/** DirtyVolume lists the regions of one volume changed while a DR was away. */
export interface DirtyVolume {
  volume: string
  regions: number[]
}

/**
 * ResyncPlan answers a DR whose records were dropped while it was away
 * (the journal outgrew its limit): the regions those records touched, and
 * the seq after which the journal still has everything for it.
 */
export interface ResyncPlan {
  fromSeq: number
  dirty: DirtyVolume[]
  /** The volumes as they are now (the DR reconciles creates, renames and deletes it missed). */
  volumes: VolumeList
}

/** PrimaryService is the primary as its DRs see it. */
export interface PrimaryService {
  info (): Promise<NodeInfo>
  volumes (): Promise<VolumeList>
  /** readRange reads any byte range as of one seq (`asOf`); short at end of file. */
  readRange (volume: string, offset: number, length: number): Promise<{ asOf: number, size: number, data: Buffer, birth?: number }>
  /**
   * fetchRegion streams one region; `first` asks for the bytes from that
   * offset first (a reader waiting for them), `firstLength` how many the
   * reader needs: they are read and sent before the rest of the region.
   */
  fetchRegion (volume: string, region: number, sink: RegionSink, opts?: FetchRegionOptions): Promise<void>
  regions (volume: string, from: number, count: number, checksums: boolean): Promise<RegionInfoList>
  register (r: Registration): Promise<RegisterReply>
  groups (req: GroupRequest): Promise<GroupBatch>
  /**
   * ack says the DR applied everything up to `seq` (the primary may trim
   * it) and, with `stored`, that it holds everything up to there durably
   * (sync mode releases fsyncs on it).
   */
  ack (nodeId: string, seq: number, stored?: number): Promise<void>
  /** resync tells a DR that got RESYNC_REQUIRED what changed while it was away. */
  resync (nodeId: string): Promise<ResyncPlan>
  /** warm opens (or keeps open) the connections fetches use, where there are any. */
  warm? (): Promise<void>
}

/** Limits on what one request may ask for (the server enforces them). */
export const LIMITS = {
  maxRangeBytes: 16 * 1024 * 1024,
  maxRegionsPerCall: 4096,
  maxGroupBytes: 64 * 1024 * 1024,
  maxWaitMs: 60_000,
  maxBodyBytes: 64 * 1024,
} as const
