/**
 * dr-metrics: a DR's metrics. State (seqs, lag, regions per volume,
 * counters the DR keeps) is read from its status at scrape time; the
 * latency of each fetch from the primary is observed as it finishes
 * (Fetcher.onFetch) into a histogram.
 *
 * Fetch causes are labelled as an operator says them: `on_demand` (a read
 * of the mount, with its read-ahead) and `hydration` (the background copy).
 */
import { Histogram } from 'prom-client'
import type { FetchCause, FetchEvent } from '../dr/fetcher.js'
import type { Logger } from '../log.js'
import type { DrStatus } from '../node/status.js'
import { flag, PREFIX, type Labels } from './metric-kit.js'
import { NodeMetrics } from './node-metrics.js'

/** DrMetricsFetcher is what the metrics need of the fetcher. */
export interface DrMetricsFetcher {
  onFetch (fn: (e: FetchEvent) => void): () => void
  inFlight (cause?: FetchCause): number
}

const CAUSE: Record<FetchCause, string> = { read: 'on_demand', hydrate: 'hydration' }

/** FETCH_BUCKETS are the latency buckets (seconds): a region over a LAN takes milliseconds, retries take seconds. */
export const FETCH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** drMetrics builds the registry of a DR whose status is `status()`. */
export function drMetrics (status: () => Promise<DrStatus>, fetcher: DrMetricsFetcher, log: Logger): NodeMetrics<DrStatus> {
  const m = new NodeMetrics(status, log)
  const k = m.kit
  const s = (): Promise<DrStatus> => m.status.get()

  k.gauge('seq_applied', 'Last seq applied on this DR (its images are crash-consistent as of this group boundary).', [], async () => (await s()).seq.applied)
  k.gauge('seq_stored', 'Last seq stored in this DR\'s journal (received, maybe not applied yet).', [], async () => (await s()).seq.stored)
  k.gauge('seq_durable_in_images', 'Last seq known durable in the images (checkpoint).', [], async () => (await s()).seq.durableInImages)
  k.gauge('primary_seq_last', 'The primary\'s last seq, as last heard (NaN before the DR heard from it).', [], async () => (await s()).seq.primaryLast ?? NaN)
  k.gauge('primary_journal_bytes', 'The primary\'s journal bytes, as last heard.', [], async () => (await s()).primary.journalBytes ?? 0)
  k.gauge('lag_seq', 'Seqs the primary has that this DR has not applied (replication lag).', [], async () => (await s()).lag.seq)
  k.gauge('lag_seconds', 'What a failover now could lose at most (the RPO): the age of the oldest write this DR has not applied, or the time since the primary last told it its position, whichever is more. NaN before the DR heard from its primary.', [], async () => (await s()).lag.seconds ?? NaN)
  k.gauge('lag_pending_seconds', 'Age of the oldest write this DR knows it has not applied.', [], async () => (await s()).lag.pendingSeconds)
  k.gauge('primary_connected', '1 while the link to the primary is up.', [], async () => flag((await s()).lag.connected))
  k.gauge('apply_stalled', '1 while applying is stalled by this DR\'s own disk (groups are kept and applied when it is fixed).', [], async () => flag((await s()).stalled !== undefined))
  k.gauge('split_brain', '1 while the primary refuses this DR for a split brain.', [], async () => flag((await s()).splitBrain !== undefined))
  k.gauge('consistent', '1 when every volume is consistent (a failover target as of a group boundary).', [], async () => flag((await s()).consistent))
  k.gauge('recovery_points', 'Recovery points kept (--history): group boundaries the DR was consistent at, each one mountable (mount-at) or promotable (promote --at).', [], async () => (await s()).recovery?.points ?? 0)
  k.gauge('recovery_bytes', 'Bytes of undo entries kept for the recovery points (bounded by --history-size).', [], async () => (await s()).recovery?.bytes ?? 0)
  k.gauge('recovery_oldest_age_seconds', 'Age of the oldest recovery point kept (bounded by --history).', [], async () => { const f = (await s()).recovery?.first; return f ? Math.max(0, (Date.now() - f.ts) / 1000) : 0 })
  k.gauge('promotion_point_age_seconds', 'Age of the state a promotion would land on now (the applied seq, or while resyncing the last recovery point: then promotion_rolls_back is 1).', [], async () => (await s()).promotionPoint?.ageSeconds ?? 0)
  k.gauge('promotion_rolls_back', '1 when a promotion now would first roll back to the last recovery point (the DR is resyncing).', [], async () => flag((await s()).promotionPoint?.rollback === true))

  const vol = (v: DrStatus['volumes'][number]): Labels => ({ volume: v.name })
  k.gauge('volume_consistent', '1 for a consistent volume: no region absent, none fetched ahead of the applied seq.', ['volume'],
    async () => (await s()).volumes.map(v => [vol(v), flag(v.state === 'consistent')]))
  k.gauge('volume_size_bytes', 'Size of each volume.', ['volume'], async () => (await s()).volumes.map(v => [vol(v), v.size]))
  k.gauge('regions', 'Regions per volume by state: present (held), absent (to fetch), ahead_of_applied (fetched with an asOf above the applied seq; present too).', ['volume', 'state'],
    async () => (await s()).volumes.flatMap(v => [
      [{ ...vol(v), state: 'present' }, v.regions.present],
      [{ ...vol(v), state: 'absent' }, v.regions.absent],
      [{ ...vol(v), state: 'ahead_of_applied' }, v.regions.aheadOfApplied],
    ] as Array<[Labels, number]>))
  k.gauge('volume_hydrated_ratio', 'Share of each volume\'s regions present (0..1).', ['volume'],
    async () => (await s()).volumes.map(v => [vol(v), v.regions.total === 0 ? 1 : v.regions.present / v.regions.total]))

  k.total('fetched_bytes_total', 'Bytes fetched from the primary, by cause (on_demand: reads of the mount; hydration: the background copy).', ['cause'], async () => {
    const f = (await s()).fetched
    return [[{ cause: CAUSE.read }, f.onDemandBytes], [{ cause: CAUSE.hydrate }, f.hydrationBytes]]
  })
  k.total('sync_fetched_bytes_total', 'Bytes fetched while catching up after an event, by reason (initial_sync, resync, failback, compare): what each cost.', ['reason'], async () => {
    const m = (await s()).moved
    return [[{ reason: 'initial_sync' }, m.initialSyncBytes], [{ reason: 'resync' }, m.resyncBytes], [{ reason: 'failback' }, m.failbackBytes], [{ reason: 'compare' }, m.compareBytes]]
  })
  k.total('fetches_total', 'Region fetches completed.', [], async () => (await s()).fetched.fetches)
  k.total('fetch_retries_total', 'Fetch attempts retried (the primary was unreachable or sent a corrupt region).', [], async () => (await s()).fetched.retries)
  k.total('fetch_failures_total', 'Fetches given up after their deadline (their readers got EIO).', [], async () => (await s()).fetched.failures)
  k.gauge('fetches_in_flight', 'Fetches under way, by cause.', ['cause'], () => [[{ cause: CAUSE.read }, fetcher.inFlight('read')], [{ cause: CAUSE.hydrate }, fetcher.inFlight('hydrate')]])
  const latency = new Histogram({
    name: PREFIX + 'fetch_duration_seconds',
    help: 'Time to fetch one region from the primary (all its attempts), by cause; failed fetches count in fetch_failures_total instead.',
    labelNames: ['cause'],
    buckets: FETCH_BUCKETS,
    registers: [m.registry],
  })
  m.onClose(fetcher.onFetch(e => { if (e.ok) latency.observe({ cause: CAUSE[e.cause] }, e.seconds) }))

  k.total('hydration_regions_total', 'Regions hydration decided on, by decision (kept: equal checksums; released: a hole on the primary; copied).', ['decision'], async () => {
    const h = (await s()).hydration
    return [[{ decision: 'kept' }, h.kept], [{ decision: 'released' }, h.released], [{ decision: 'copied' }, h.copied]]
  })
  k.total('hydration_compared_bytes_total', 'Bytes hydration compared by checksum instead of copying.', [], async () => (await s()).hydration.comparedBytes)

  k.total('groups_applied_total', 'Groups received and applied since the node started.', [], async () => (await s()).replication.groups)
  k.total('records_received_total', 'Journal records received since the node started.', [], async () => (await s()).replication.records)
  k.total('bytes_received_total', 'Bytes of journal records received since the node started.', [], async () => (await s()).replication.bytes)
  k.total('reconnects_total', 'Times the link to the primary was lost and tried again.', [], async () => (await s()).replication.reconnects)
  k.total('resyncs_total', 'Resyncs of dirty regions after an outage (the primary dropped records past its journal limit).', [], async () => (await s()).replication.resyncs)
  return m
}
