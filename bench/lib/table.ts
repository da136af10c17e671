/**
 * table: the one table `npm run bench` prints.
 */
import type { Row } from './report.js'
import type { MachineInfo } from './system.js'

/** formatValue prints a figure for a person: 3 significant digits, k for thousands of IOPS. */
export function formatValue (v: number, unit: string): string {
  if (!Number.isFinite(v)) return 'n/a'
  if (unit === 'IOPS' && v >= 10_000) return `${(v / 1000).toFixed(1)}k`
  if (Math.abs(v) >= 100) return v.toFixed(0)
  if (Math.abs(v) >= 10) return v.toFixed(1)
  if (Math.abs(v) >= 1 || v === 0) return v.toFixed(2)
  return v.toPrecision(2)
}

/** formatMachine is the header above the table. */
export function formatMachine (m: MachineInfo): string {
  return [
    `machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.kernel}`,
    `bench dir: ${m.benchDir} (${m.benchFs}); node ${m.node}; load average at start ${m.loadAvg.join(' ')}`,
    ...Object.values(m.tools).map(t => `tool: ${t}`),
  ].join('\n')
}

/** formatTable lays out `rows` as a plain-text table with a legend. */
export function formatTable (rows: Row[]): string {
  const header = ['benchmark', 'metric', 'unit', 'compared with', 'theirs', 'volmirror', 'ratio (>1 = volmirror better)', 'target', 'noise']
  const body: string[][] = []
  let lastBench = ''
  let lastMetric = ''
  for (const r of rows) {
    const newMetric = r.benchmark !== lastBench || r.metric !== lastMetric
    const status = r.status === 'met' ? 'met' : 'MISSED'
    let target = ''
    if (r.limit !== undefined) target = `${r.better === 'lower' ? '<' : '>='} ${formatValue(r.limit, r.unit)} ${r.unit} ${status}`
    else if (r.target !== undefined) target = `>= ${r.target.toFixed(r.target < 1 ? 2 : 1)}x ${status}`
    body.push([
      r.benchmark === lastBench ? '' : r.benchmark,
      newMetric ? r.metric : '',
      newMetric ? r.unit : '',
      r.role === 'peer' ? `${r.against} [peer]` : r.against,
      r.role === 'target' ? '-' : formatValue(r.theirs, r.unit),
      formatValue(r.volmirror, r.unit),
      r.role === 'target' ? '-' : Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}x` : 'n/a',
      target,
      r.noise > 0 ? `${(r.noise * 100).toFixed(0)}%` : '',
    ])
    lastBench = r.benchmark
    lastMetric = r.metric
  }
  const widths = header.map((h, i) => Math.max(h.length, ...body.map(b => b[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => i >= 4 && i <= 6 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join('  ').trimEnd()
  const out = [line(header), widths.map(w => '-'.repeat(w)).join('  ')]
  for (const b of body) out.push(line(b))
  out.push('',
    'ratio: volmirror/other for throughput and IOPS, other/volmirror for latencies and times: > 1 always means volmirror is better.',
    'target: from the issue, checked against the [peer] row only, or (absolute target rows) on volmirror\'s own figure.',
    'noise: largest (max-min)/median over the runs of the two setups.')
  const notes = rows.flatMap(r => (r.notes ?? []).map(n => `${r.metric}: ${n}`))
  if (notes.length) out.push('notes:', ...[...new Set(notes)].map(n => `  - ${n}`))
  return out.join('\n')
}
