/**
 * report: turns benchmark results into rows (one per volmirror-vs-other
 * comparison) and writes them as JSON.
 *
 * Ratios are oriented here, once for every benchmark, so that > 1 always
 * means volmirror did better: volmirror/other for throughput and IOPS,
 * other/volmirror for latencies and times.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { spread } from './stats.js'
import type { MachineInfo } from './system.js'
import type { MetricResult } from './types.js'

/** Row is one line of the table. */
export interface Row {
  benchmark: string
  metric: string
  unit: string
  better: 'higher' | 'lower'
  /** The setup volmirror is compared with ('target' rows: the absolute target itself). */
  against: string
  /** 'target': volmirror's figure alone, against an absolute `limit` if any (theirs and ratio NaN). */
  role: 'peer' | 'reference' | 'target'
  theirs: number
  volmirror: number
  /** > 1: volmirror better; see `ratioDefinition`. */
  ratio: number
  ratioDefinition: 'volmirror/other' | 'other/volmirror'
  target?: number
  /** Absolute target on volmirror's figure (role 'target'): below it for 'lower' metrics, at least it for 'higher'. */
  limit?: number
  status?: 'met' | 'missed'
  /** Largest (max - min) / median of the two setups' runs. */
  noise: number
  notes?: string[]
}

/** limitMet tells whether `value` meets an absolute target: strictly below it for 'lower' metrics, at least it for 'higher'. */
export function limitMet (value: number, limit: number, better: 'higher' | 'lower'): boolean {
  return Number.isFinite(value) && (better === 'lower' ? value < limit : value >= limit)
}

/**
 * toRows flattens one benchmark's metrics into table rows: volmirror's own
 * figure first when the metric has an absolute target or nothing to compare
 * with (role 'target'), then one row per comparison.
 */
export function toRows (benchmark: string, metrics: MetricResult[]): Row[] {
  const rows: Row[] = []
  for (const m of metrics) {
    if (m.limit !== undefined || m.comparisons.length === 0) {
      const notes = [...(m.note ? [m.note] : []), ...(m.volmirror.notes ?? []).map(n => `volmirror ${n}`)]
      rows.push({
        benchmark,
        metric: m.metric,
        unit: m.unit,
        better: m.better,
        against: m.limit === undefined ? '(no peer)' : m.comparisons.length ? 'absolute target' : 'absolute target (no peer)',
        role: 'target',
        theirs: NaN,
        volmirror: m.volmirror.median,
        ratio: NaN,
        ratioDefinition: m.better === 'higher' ? 'volmirror/other' : 'other/volmirror',
        ...(m.limit !== undefined ? { limit: m.limit, status: limitMet(m.volmirror.median, m.limit, m.better) ? 'met' as const : 'missed' as const } : {}),
        noise: spread(m.volmirror.runs),
        ...(notes.length ? { notes } : {}),
      })
    }
    for (const c of m.comparisons) {
      const vm = m.volmirror.median
      const theirs = c.figure.median
      const ratio = m.better === 'higher' ? vm / theirs : theirs / vm
      const notes = [...(m.note && c.role === 'peer' ? [m.note] : []), ...(m.volmirror.notes ?? []).map(n => `volmirror ${n}`), ...(c.figure.notes ?? []).map(n => `${c.name} ${n}`)]
      rows.push({
        benchmark,
        metric: m.metric,
        unit: m.unit,
        better: m.better,
        against: c.name,
        role: c.role,
        theirs,
        volmirror: vm,
        ratio,
        ratioDefinition: m.better === 'higher' ? 'volmirror/other' : 'other/volmirror',
        ...(c.target !== undefined ? { target: c.target, status: Number.isFinite(ratio) && ratio >= c.target ? 'met' : 'missed' } : {}),
        noise: Math.max(spread(m.volmirror.runs), spread(c.figure.runs)),
        ...(notes.length ? { notes } : {}),
      })
    }
  }
  return rows
}

/** Report is the JSON file's content. */
export interface Report {
  schema: 1
  startedAt: string
  finishedAt: string
  durationS: number
  quick: boolean
  runs: number
  /** Set when volmirror ran under `node --cpu-prof` (profiles in this directory): slower figures. */
  cpuProf?: string
  benchmarks: string[]
  machine: MachineInfo
  /** The code measured: commit, and whether the checkout had uncommitted changes. */
  volmirror: { commit: string, dirty: boolean }
  /** Load average (1, 5, 15 min) when the run ended. */
  loadAvgAtEnd: number[]
  rows: Row[]
  results: Record<string, MetricResult[]>
  errors: Array<{ benchmark: string, error: string }>
}

/** stamp formats a date as YYYYMMDD-HHMMSS (UTC). */
export function stamp (d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0')
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`
}

/** writeReport writes `dir/latest.json` and `dir/STAMP.json`; returns both paths. */
export async function writeReport (dir: string, report: Report, prefix = ''): Promise<string[]> {
  await mkdir(dir, { recursive: true })
  const text = JSON.stringify(report, (_k, v: unknown) => typeof v === 'number' && !Number.isFinite(v) ? null : v, 2) + '\n'
  const files = [path.join(dir, `${prefix}${stamp(new Date(report.startedAt))}.json`), path.join(dir, `${prefix}latest.json`)]
  for (const f of files) {
    await writeFile(f + '.tmp', text)
    await rename(f + '.tmp', f)
  }
  return files
}
