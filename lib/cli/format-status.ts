/**
 * format-status: `volmirror status` as text for people (`--json` prints the
 * status object itself).
 */
import type { DrStatus } from '../node/status.js'
import type { PrimaryStatus } from '../node/status.js'
import { formatBytes } from './parse.js'

/** formatStatus renders any node's status. */
export function formatStatus (s: { role: string } & Record<string, unknown>): string {
  if (s.role === 'primary') return formatPrimary(s as unknown as PrimaryStatus)
  if (s.role === 'dr') return formatDr(s as unknown as DrStatus)
  return JSON.stringify(s, null, 2)
}

function formatDr (s: DrStatus): string {
  const lines: string[] = []
  lines.push(`volmirror DR  (node ${s.nodeId.slice(0, 8)}, epoch ${s.epoch}, pid ${s.pid}, up since ${s.startedAt})`)
  lines.push(`  mount    ${s.mount}   (read-only)`)
  lines.push(`  data     ${dataPathLine(s.dataPath)}`)
  lines.push(`  images   ${s.images}`)
  lines.push(`  state    ${s.state}   region size ${formatBytes(s.regionSize)}`)
  const link = s.lag.connected ? 'connected' : `NOT connected${s.lag.lastError ? ` (${s.lag.lastError})` : ''}`
  lines.push(`  primary  ${s.primary.label || '-'}  ${link}`)
  if (s.stalled) lines.push(`  STALLED  ${s.stalled} (groups are kept and applied again once this is fixed)`)
  if (s.splitBrain) lines.push(`  SPLIT BRAIN  ${s.splitBrain}`)
  lines.push(`  seq      applied ${s.seq.applied}   primary last ${s.seq.primaryLast ?? 'unknown'}   durable in images ${s.seq.durableInImages}`)
  lines.push(`  lag      ${lagText(s.lag)}` +
    (s.primary.journalBytes !== undefined ? `;  primary journal ${formatBytes(s.primary.journalBytes)}` : ''))
  lines.push(`  fetched  ${formatBytes(s.fetched.onDemandBytes)} on demand, ${formatBytes(s.fetched.hydrationBytes)} by hydration` +
    (s.fetched.failures > 0 ? `, ${s.fetched.failures} failed fetches` : ''))
  const m = s.moved
  const phases = ([['initial sync', m.initialSyncBytes], ['resync', m.resyncBytes], ['failback', m.failbackBytes], ['compare', m.compareBytes]] as const)
    .filter(([, b]) => b > 0).map(([what, b]) => `${formatBytes(b)} for ${what}`)
  lines.push(`  moved    ${formatBytes(m.recordBytes)} of records, ${formatBytes(m.fetchedBytes)} of regions${phases.length > 0 ? ` (${phases.join(', ')})` : ''}`)
  const rate = Number.isFinite(s.hydration.bytesPerSecond) ? (s.hydration.bytesPerSecond === 0 ? 'off (on demand only)' : `${formatBytes(s.hydration.bytesPerSecond)}/s`) : 'unlimited'
  lines.push(`  hydrate  ${s.hydration.complete ? 'complete' : 'in progress'}, rate ${rate}; regions kept ${s.hydration.kept}, released ${s.hydration.released}, copied ${s.hydration.copied}`)
  const mode = s.resync && !s.consistent ? `resyncing (${s.resync.dirtyRegions} dirty regions after an outage)` : s.hydration.complete ? 'journaling' : 'hydrating'
  lines.push(`  mode     ${mode}`)
  lines.push(`  overall  ${s.consistent ? 'CONSISTENT (a failover target as of seq ' + s.seq.applied + ')' : 'INCONSISTENT'}`)
  const r = s.recovery
  if (r) {
    lines.push(`  history  ${r.points} recovery points${r.first ? ` from ${new Date(r.first.ts).toISOString()} (seq ${r.first.seq}) to ${new Date(r.last!.ts).toISOString()} (seq ${r.last!.seq})` : ''}, ${formatBytes(r.bytes)}` +
      ` (kept: ${[r.windowSeconds !== null ? `${+(r.windowSeconds / 3600).toFixed(2)} h` : '', r.maxBytes !== null ? formatBytes(r.maxBytes) : ''].filter(Boolean).join(', ')})`)
  }
  const pp = s.promotionPoint
  if (pp && pp.rollback) lines.push(`  promote  would roll back to seq ${pp.seq} (${new Date(pp.ts).toISOString()}, ${pp.ageSeconds.toFixed(1)} s old): the last point this DR was consistent at`)
  lines.push('')
  if (s.volumes.length === 0) {
    lines.push('  no volumes yet')
  } else {
    const w = Math.max(6, ...s.volumes.map(v => v.name.length))
    lines.push(`  ${'VOLUME'.padEnd(w)}  ${'SIZE'.padStart(10)}  ${'HYDRATED'.padStart(8)}  STATE`)
    for (const v of s.volumes) {
      const why = v.state === 'consistent' ? '' : `  (${v.regions.absent} of ${v.regions.total} regions absent${v.regions.aheadOfApplied ? `, ${v.regions.aheadOfApplied} ahead of applied` : ''})`
      lines.push(`  ${v.name.padEnd(w)}  ${formatBytes(v.size).padStart(10)}  ${(v.hydratedPercent.toFixed(1) + '%').padStart(8)}  ${v.state}${why}`)
    }
  }
  return lines.join('\n')
}

function formatPrimary (s: PrimaryStatus): string {
  const lines: string[] = []
  lines.push(`volmirror primary  (node ${s.nodeId.slice(0, 8)}, epoch ${s.epoch}, pid ${s.pid}, up since ${s.startedAt})`)
  lines.push(`  mount    ${s.mount}`)
  lines.push(`  data     ${dataPathLine(s.dataPath)}`)
  lines.push(`  images   ${s.images}`)
  lines.push(`  state    ${s.state}   region size ${formatBytes(s.regionSize)}`)
  if (s.listen) lines.push(`  listen   ${s.listen}`)
  lines.push(`  seq      last ${s.seq.last}   applied ${s.seq.applied}   durable in images ${s.seq.durableInImages}`)
  const j = s.journal
  const batching = j.batches > 0 ? (j.batchedRecords / j.batches).toFixed(1) : '-'
  lines.push(`  journal  ${j.records} records (${j.records > 0 ? `seq ${j.firstSeq}..${j.lastSeq}` : 'empty'}), ${formatBytes(j.bytes)}` +
    `${j.retained ? ', retained' : ''}; ${batching} records per LevelDB batch`)
  if (s.sync) lines.push(`  sync     ${syncLine(s.sync)}`)
  if (s.archive) lines.push(`  archive  ${archiveLine(s.archive)}`)
  if (s.journalDamage) lines.push(`  DAMAGED  journal records up to seq ${s.journalDamage.through} were damaged on disk (found at start; the images have them): DRs that needed them resync those regions. Check the disk.`)
  lines.push('')
  if (s.volumes.length === 0) {
    lines.push('  no volumes yet')
  } else {
    const w = Math.max(6, ...s.volumes.map(v => v.name.length))
    lines.push(`  ${'VOLUME'.padEnd(w)}  ${'SIZE'.padStart(10)}  ${'ALLOCATED'.padStart(10)}  NOTE`)
    for (const v of s.volumes) {
      const note = v.flagged ? flagText(v.flagged) : ''
      lines.push(`  ${v.name.padEnd(w)}  ${formatBytes(v.size).padStart(10)}  ${formatBytes(v.allocated).padStart(10)}  ${note}`)
    }
  }
  for (const r of s.removedOutside) lines.push(`  ${r.name}: removed outside the mount since ${r.since}`)
  if (s.drs.length > 0) {
    lines.push('')
    for (const d of s.drs) {
      const seen = d.lastContactSeconds < 10 ? 'in contact' : `last seen ${d.lastSeenAt} (${formatAge(d.lastContactSeconds)} ago; \`volmirror dr forget ${d.nodeId.slice(0, 8)}\` if it is gone for good)`
      lines.push(`  DR ${d.nodeId.slice(0, 8)}  ${d.mode}${d.mode === 'bitmap' ? ` (${formatBytes(d.dirtyBytes)} dirty, to resync)` : ''}; acknowledged seq ${d.ackedSeq} (${d.lagSeq} behind); ${seen}`)
    }
  }
  return lines.join('\n')
}

/** flagText says why a volume is flagged, the most important first. */
export function flagText (f: NonNullable<PrimaryStatus['volumes'][number]['flagged']>): string {
  if (f.reason === 'apply-failed') {
    const why = f.errno === 'ENOSPC' ? 'DISK FULL' : `WRITE FAILED (${f.errno ?? 'EIO'})`
    return `${why}: ${f.failedWrites ?? 1} write(s) not applied since ${f.since} (their writers got the error; DRs compare this volume)`
  }
  return `${f.reason} since ${f.since}: needs checksum resync`
}

/** archiveLine is the archive's state first, then where it stands. */
function archiveLine (a: NonNullable<PrimaryStatus['archive']>): string {
  const state = a.state === 'retrying' ? `FAILING (${a.failures} tries; ${a.lastError?.message ?? ''})` : a.state === 'ok' ? 'ok' : 'starting'
  const gap = a.gap ? `; GAP: records ${a.gap.afterSeq + 1}..${a.gap.fromSeq} never reached it (a new base closes it)` : ''
  const base = a.lastBase ? `last base ${a.lastBase.at} (seq ${a.lastBase.seq})` : 'no base yet'
  return `${state}  ${a.url}  archived to seq ${a.archivedSeq} (lag ${a.lagSeconds.toFixed(1)} s)${gap}; ${base}; ` +
    `uploaded ${formatBytes(a.uploaded.chunkBytes)} of journal, ${formatBytes(a.uploaded.regionBytes)} of regions (${a.uploaded.regionsReused} reused)`
}

/**
 * lagText is the lag as every view shows it (status, status --watch, the
 * demo): what a failover could lose at most, and the records known behind.
 */
export function lagText (lag: DrStatus['lag']): string {
  if (lag.seconds === null) return 'unknown (no word from the primary since this DR started)'
  return `${lag.seq} records, at most ${lag.seconds.toFixed(2)} s (RPO)${lag.estimated ? ', and growing: the primary is silent' : ''}`
}

/** formatAge shows seconds for people: 42 s, 12 min, 3.5 h, 2.0 days. */
export function formatAge (s: number): string {
  if (s < 120) return `${Math.round(s)} s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`
  return `${(s / 86400).toFixed(1)} days`
}

/** syncLine says whether fsyncs wait for the DRs (sync mode) and, when they do not, why. */
export function syncLine (y: NonNullable<PrimaryStatus['sync']>): string {
  const out = y.drs.filter(d => !d.inSync)
  const mean = y.released > 0 ? `, ${(1000 * y.waitSeconds / y.released).toFixed(2)} ms per fsync on average` : ''
  switch (y.state) {
    case 'in-sync': return `IN SYNC (RPO 0): fsyncs wait for ${y.drs.length} DR(s)${mean}`
    case 'no-dr': return 'NO DR registered: sync mode protects nothing yet'
    case 'degraded': return `DEGRADED since ${y.since}: ${out.map(d => d.nodeId.slice(0, 8)).join(', ')} did not confirm within ${y.timeoutMs / 1000} s; writes go on WITHOUT ${out.length > 1 ? 'them' : 'it'} (RPO 0 lost until caught up)`
    case 'blocked': return `BLOCKED since ${y.since}: ${y.waiting} fsync(s) waiting ${y.oldestWaitSeconds.toFixed(1)} s for a DR (--sync-fallback block)`
  }
}

/** dataPathLine says who serves a mount's reads and writes. */
function dataPathLine (d: { mount: 'native' | 'js' } | undefined): string {
  if (!d) return 'data path unknown'
  return d.mount === 'native' ? 'native data path (reads and writes served on the FUSE threads)' : 'JavaScript data path (--data-path js)'
}
