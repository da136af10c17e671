/**
 * types: the contract between bench/run.ts and one benchmark.
 *
 * A benchmark measures volmirror and one or more other setups doing the same
 * work in the same run, and hands back figures; run.ts computes the ratios
 * (always oriented so that > 1 means volmirror is better), checks targets,
 * prints the table and writes the JSON. To add a benchmark: write
 * bench/NAME.ts exporting a `Benchmark`, and list it in bench/registry.ts.
 */
import type { Cleanup } from './cleanup.js'

/** Figure is one setup's result for one metric: every run and their median. */
export interface Figure {
  /** Median of `runs` (NaN when every run failed). */
  median: number
  runs: number[]
  /** Why a run is missing or suspect (a setup that failed, caches not dropped). */
  notes?: string[]
}

/**
 * Comparison is volmirror against one other setup on one metric.
 * `role: 'peer'` is the peer PEERS.md names (targets apply to it);
 * `'reference'` rows are context (native disk, a bare FUSE passthrough).
 */
export interface Comparison {
  name: string
  role: 'peer' | 'reference'
  figure: Figure
  /** Least acceptable ratio (oriented as in `ratio`), from the issue. */
  target?: number
}

/** MetricResult is one metric of one benchmark. */
export interface MetricResult {
  metric: string
  unit: string
  /** 'lower' for latencies and times: the ratio is then other/volmirror. */
  better: 'higher' | 'lower'
  volmirror: Figure
  comparisons: Comparison[]
  note?: string
  /** The command each setup ran (MNT standing for its directory), for the JSON. */
  command?: string
  /**
   * An absolute target on volmirror's own median, for metrics the issue
   * bounds by a figure rather than a ratio ("p99 under 0.5 s"), with or
   * without a peer: 'lower' metrics must stay below it, 'higher' ones reach
   * it. It gets a row of its own (role 'target').
   */
  limit?: number
}

/** BenchContext is what run.ts gives every benchmark. */
export interface BenchContext {
  /** Short smoke run: small sizes, short runtimes, one run. */
  quick: boolean
  /** Runs per setup and metric (the median is reported). */
  runs: number
  /** A fresh directory on the bench disk for this benchmark; removed afterwards. */
  scratch: string
  /** Root of the program snapshot to run volmirror and helpers from (lib/app.ts), never the checkout. */
  app: string
  /** Teardown registry: whatever a benchmark starts, it registers here. */
  cleanup: Cleanup
  /** Progress line on stderr. */
  progress: (msg: string) => void
  /** When set (--cpu-prof DIR), volmirror processes run with `node --cpu-prof` and write their profiles here. */
  cpuProfDir?: string
}

/** Benchmark is one entry of `npm run bench`. */
export interface Benchmark {
  /** Name on the command line and in the table (kebab-case). */
  name: string
  /** One line for `--list`. */
  description: string
  run: (ctx: BenchContext) => Promise<MetricResult[]>
}
