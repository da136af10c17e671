/**
 * samples: every run's figure per metric and setup, for benchmarks whose
 * setups take turns run after run (an order rotated every run, so drift
 * over the run and other people's load hit all setups alike).
 */
import { median } from './stats.js'
import type { Figure } from './types.js'

/** Samples collects figures: add() one per run, figure() at the end. */
export class Samples {
  private readonly by = new Map<string, { runs: number[], notes: string[] }>()

  private slot (metric: string, setup: string): { runs: number[], notes: string[] } {
    const k = `${metric}\0${setup}`
    let s = this.by.get(k)
    if (!s) this.by.set(k, s = { runs: [], notes: [] })
    return s
  }

  /** add records one run's `value` (NaN for a failed run, with a note saying why). */
  add (metric: string, setup: string, value: number, note?: string): void {
    const s = this.slot(metric, setup)
    s.runs.push(value)
    if (note) s.notes.push(`run ${s.runs.length}: ${note}`)
  }

  /** note attaches a remark to the latest run without a figure of its own. */
  note (metric: string, setup: string, note: string): void {
    const s = this.slot(metric, setup)
    s.notes.push(`run ${Math.max(1, s.runs.length)}: ${note}`)
  }

  /** figure is the median of the runs recorded for (`metric`, `setup`), with their notes. */
  figure (metric: string, setup: string): Figure {
    const s = this.slot(metric, setup)
    return { median: median(s.runs), runs: [...s.runs], ...(s.notes.length ? { notes: [...s.notes] } : {}) }
  }
}

/** rotate returns `xs` starting at index `k` (mod its length). */
export function rotate<T> (xs: T[], k: number): T[] {
  const i = k % xs.length
  return [...xs.slice(i), ...xs.slice(0, i)]
}

/** firstLine is an error's first line, for notes and progress lines. */
export function firstLine (err: unknown): string {
  return ((err as Error)?.message ?? String(err)).split('\n')[0]!
}

/** fmt prints a figure for a progress line. */
export function fmt (v: number): string {
  if (!Number.isFinite(v)) return 'n/a'
  return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toPrecision(2)
}
