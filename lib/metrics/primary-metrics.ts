/**
 * primary-metrics: a primary's metrics, read from its status at scrape
 * time: seqs, the journal, each registered DR (acknowledged seq, lag,
 * journaling or bitmap mode, dirty bytes to resync) and the volumes.
 */
import type { Logger } from '../log.js'
import type { PrimaryStatus } from '../node/status.js'
import { flag, type Labels } from './metric-kit.js'
import { NodeMetrics } from './node-metrics.js'

/** primaryMetrics builds the registry of a primary whose status is `status()`. */
export function primaryMetrics (status: () => Promise<PrimaryStatus>, log: Logger): NodeMetrics<PrimaryStatus> {
  const m = new NodeMetrics(status, log)
  const k = m.kit
  const s = (): Promise<PrimaryStatus> => m.status.get()

  k.gauge('seq_last', 'Last seq assigned (journaled) by this primary.', [], async () => (await s()).seq.last)
  k.gauge('seq_applied', 'Last seq applied to the images.', [], async () => (await s()).seq.applied)
  k.gauge('seq_durable_in_images', 'Last seq known durable in the images (checkpoint).', [], async () => (await s()).seq.durableInImages)

  k.gauge('journal_bytes', 'Bytes of journal records kept (for DRs that have not acknowledged them, or not yet in the images).', [], async () => (await s()).journal.bytes)
  k.gauge('journal_records', 'Journal records kept.', [], async () => (await s()).journal.records)
  k.gauge('journal_segments', 'Journal segment files.', [], async () => (await s()).journal.segments)
  k.total('journal_indexed_records_total', 'Journal records indexed since the node started (every write, zero, truncate and namespace change).', [], async () => (await s()).journal.batchedRecords)
  k.total('journal_batches_total', 'Journal index batches written since the node started (records / batches is the group commit factor).', [], async () => (await s()).journal.batches)

  const nw = async (): Promise<NonNullable<PrimaryStatus['dataPath']['native']> | undefined> => (await s()).dataPath.native
  k.total('native_writes_total', 'Writes the native data path journaled and applied on FUSE threads.', [], async () => (await nw())?.writes ?? 0)
  k.total('native_write_bytes_total', 'Bytes written through the native data path.', [], async () => (await nw())?.writeBytes ?? 0)
  k.total('native_lock_hold_seconds_total', 'Time native writers spent inside the write critical section (seq, journal append, image write).', [], async () => (await nw())?.holdSeconds ?? 0)
  k.total('native_lock_wait_seconds_total', 'Time native writers waited to enter the write critical section.', [], async () => (await nw())?.waitSeconds ?? 0)
  k.total('native_waits_total', 'Times native writers waited for JavaScript, by reason (ring full, no spare segment, paused for a barrier).', ['reason'], async () => {
    const n = await nw()
    return [[{ reason: 'ring_full' }, n?.waitsFull ?? 0], [{ reason: 'spare' }, n?.waitsSpare ?? 0], [{ reason: 'paused' }, n?.waitsPaused ?? 0]]
  })
  k.gauge('native_pending_records', 'Records native writers journaled that JavaScript has not brought in yet.', [], async () => (await nw())?.pending ?? 0)

  k.gauge('region_codes_valid', 'Region checksums currently valid (failback and hydration compare with them instead of reading).', [], async () => (await s()).codes.valid)
  k.gauge('split_brain', '1 while a split brain with a peer is detected (replication stops until an operator resolves it).', [], async () => flag((await s()).splitBrain !== undefined))

  k.gauge('sync_state', 'Sync mode (--sync): 1 for the state it is in (in-sync: fsyncs wait for every DR; degraded: a DR dropped out, RPO 0 lost; blocked: writers wait for a DR; no-dr). Absent without --sync.', ['state'],
    async () => { const y = (await s()).sync; return y ? (['in-sync', 'degraded', 'blocked', 'no-dr'] as const).map(state => [{ state }, flag(y.state === state)] as [Labels, number]) : [] })
  k.gauge('sync_waiting_fsyncs', 'fsyncs waiting for DRs now (sync mode).', [], async () => (await s()).sync?.waiting ?? 0)
  k.total('sync_released_fsyncs_total', 'fsyncs released once the DRs held their writes (sync mode).', [], async () => (await s()).sync?.released ?? 0)
  k.total('sync_wait_seconds_total', 'Time fsyncs waited for DRs, in all (sync mode; / released = the mean cost).', [], async () => (await s()).sync?.waitSeconds ?? 0)
  k.total('sync_degradations_total', 'Times a DR dropped out of sync (--sync-fallback async: writes went on without it).', [], async () => (await s()).sync?.degradations ?? 0)

  const ar = async (): Promise<PrimaryStatus['archive']> => (await s()).archive
  const arOn = async (fn: (a: NonNullable<PrimaryStatus['archive']>) => number): Promise<Array<[Labels, number]>> => { const a = await ar(); return a ? [[{}, fn(a)]] : [] }
  k.gauge('archive_up', 'The journal archive (--archive): 1 while the store takes uploads, 0 while they fail and are retried. Absent without --archive.', [], async () => await arOn(a => flag(a.state === 'ok')))
  k.gauge('archive_archived_seq', 'Every record up to this seq is in the archive.', [], async () => await arOn(a => a.archivedSeq))
  k.gauge('archive_lag_seconds', 'Age of the oldest record not in the archive yet (the archive\'s RPO now).', [], async () => await arOn(a => a.lagSeconds))
  k.total('archive_uploaded_bytes_total', 'Bytes uploaded to the archive, by kind (journal chunks, base regions).', ['kind'], async () => {
    const a = await ar()
    return a ? [[{ kind: 'journal' }, a.uploaded.chunkBytes], [{ kind: 'regions' }, a.uploaded.regionBytes]] : []
  })
  k.gauge('archive_failures', 'Store calls that failed in a row (0 once one succeeds).', [], async () => await arOn(a => a.failures))
  k.gauge('archive_gap', '1 while records were dropped before they reached the archive (closed by the next base).', [], async () => await arOn(a => flag(a.gap !== undefined)))

  const dr = (d: PrimaryStatus['drs'][number]): Labels => ({ dr: d.nodeId })
  k.gauge('drs', 'DRs registered with this primary.', [], async () => (await s()).drs.length)
  k.gauge('dr_acked_seq', 'Last seq a DR acknowledged (durably applied).', ['dr'], async () => (await s()).drs.map(d => [dr(d), d.ackedSeq]))
  k.gauge('dr_lag_seq', 'Seqs a DR has not acknowledged yet.', ['dr'], async () => (await s()).drs.map(d => [dr(d), d.lagSeq]))
  k.gauge('dr_mode', 'Replication mode per DR: 1 for the mode it is in (journaling: every record kept; bitmap: records dropped past the journal limit, dirty regions to resync).', ['dr', 'mode'],
    async () => (await s()).drs.flatMap(d => (['journaling', 'bitmap'] as const).map(mode => [{ ...dr(d), mode }, flag(d.mode === mode)] as [Labels, number])))
  k.gauge('dr_dirty_bytes', 'Bytes of regions a DR must resync after an outage (bitmap mode).', ['dr'], async () => (await s()).drs.map(d => [dr(d), d.dirtyBytes]))
  k.gauge('dr_last_seen_seconds', 'Seconds since a DR last asked for groups or acknowledged.', ['dr'],
    async () => (await s()).drs.map(d => [dr(d), Math.max(0, (Date.now() - Date.parse(d.lastSeenAt)) / 1000)]))

  k.gauge('volumes', 'Volumes in the image directory.', [], async () => (await s()).volumes.length)
  k.gauge('volume_size_bytes', 'Size of each volume.', ['volume'], async () => (await s()).volumes.map(v => [{ volume: v.name }, v.size]))
  k.gauge('volume_allocated_bytes', 'Bytes each volume allocates on disk (sparse images allocate less than their size).', ['volume'],
    async () => (await s()).volumes.map(v => [{ volume: v.name }, v.allocated]))
  k.gauge('volume_failed_writes', 'Writes journaled but not applied to a volume\'s image since the node started (their writers got the error; a full disk says errno ENOSPC).', ['volume', 'errno'],
    async () => (await s()).volumes.filter(v => v.flagged?.reason === 'apply-failed').map(v => [{ volume: v.name, errno: v.flagged!.errno ?? 'EIO' }, v.flagged!.failedWrites ?? 1]))
  k.gauge('volume_flagged', '1 for a volume changed outside volmirror\'s mount (its DRs compare it by checksum), by reason.', ['volume', 'reason'],
    async () => (await s()).volumes.filter(v => v.flagged).map(v => [{ volume: v.name, reason: v.flagged!.reason }, 1]))
  return m
}
