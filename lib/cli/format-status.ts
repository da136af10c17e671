/**
 * format-status: `volmirror status` as text for people (`--json` prints the
 * status object itself).
 */
import type { PrimaryStatus } from '../node/primary-node.js'
import { formatBytes } from './parse.js'

/** formatStatus renders any node's status. */
export function formatStatus (s: { role: string } & Record<string, unknown>): string {
  if (s.role === 'primary') return formatPrimary(s as unknown as PrimaryStatus)
  return JSON.stringify(s, null, 2)
}

function formatPrimary (s: PrimaryStatus): string {
  const lines: string[] = []
  lines.push(`volmirror primary  (node ${s.nodeId.slice(0, 8)}, epoch ${s.epoch}, pid ${s.pid}, up since ${s.startedAt})`)
  lines.push(`  mount    ${s.mount}`)
  lines.push(`  images   ${s.images}`)
  lines.push(`  state    ${s.state}   region size ${formatBytes(s.regionSize)}`)
  lines.push(`  seq      last ${s.seq.last}   applied ${s.seq.applied}   durable in images ${s.seq.durableInImages}`)
  const j = s.journal
  const batching = j.batches > 0 ? (j.batchedRecords / j.batches).toFixed(1) : '-'
  lines.push(`  journal  ${j.records} records (${j.records > 0 ? `seq ${j.firstSeq}..${j.lastSeq}` : 'empty'}), ${formatBytes(j.bytes)}` +
    `${j.retained ? ', retained' : ''}; ${batching} records per LevelDB batch`)
  lines.push('')
  if (s.volumes.length === 0) {
    lines.push('  no volumes yet')
  } else {
    const w = Math.max(6, ...s.volumes.map(v => v.name.length))
    lines.push(`  ${'VOLUME'.padEnd(w)}  ${'SIZE'.padStart(10)}  ${'ALLOCATED'.padStart(10)}  NOTE`)
    for (const v of s.volumes) {
      const note = v.flagged ? `${v.flagged.reason} since ${v.flagged.since}: needs checksum resync` : ''
      lines.push(`  ${v.name.padEnd(w)}  ${formatBytes(v.size).padStart(10)}  ${formatBytes(v.allocated).padStart(10)}  ${note}`)
    }
  }
  for (const r of s.removedOutside) lines.push(`  ${r.name}: removed outside the mount since ${r.since}`)
  return lines.join('\n')
}
