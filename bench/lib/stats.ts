/**
 * stats: the few statistics the report needs.
 */

/** median of the finite values in `xs`; NaN when there are none. */
export function median (xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const mid = v.length >> 1
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2
}

/** spread is (max - min) / median of the finite values: 0.1 means the runs lie within 10 % of the median. */
export function spread (xs: number[]): number {
  const v = xs.filter(Number.isFinite)
  if (v.length < 2) return 0
  const m = median(v)
  return m === 0 ? 0 : (Math.max(...v) - Math.min(...v)) / m
}

/** percentile is the `p`-th percentile (0..100) of the finite values in `xs`, nearest rank; NaN when there are none. */
export function percentile (xs: number[], p: number): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const rank = Math.ceil(p / 100 * v.length)
  return v[Math.min(v.length - 1, Math.max(0, rank - 1))]!
}
