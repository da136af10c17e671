/**
 * metric-kit: the few shapes every volmirror metric takes, over prom-client.
 *
 * Most of what an operator watches is state the node already keeps (seqs,
 * region maps, its own counters), so it is read when Prometheus scrapes,
 * not copied on every change: `gauge` and `total` register a collector that
 * reads a value (or labelled values) at scrape time. A scrape reads the
 * node's status once (`Snapshot`), however many metrics come from it.
 * Events that happen between scrapes (a fetch's latency, an error) are
 * recorded where they happen with prom-client's own Histogram and Counter.
 *
 * Every name gets the `volmirror_` prefix and a help text; prom-client
 * writes the exposition format.
 */
import { Counter, Gauge, Registry } from 'prom-client'

/** PREFIX starts every metric name. */
export const PREFIX = 'volmirror_'

/** Labels of one sample. */
export type Labels = Record<string, string>

/** Samples are a bare value, or values by their labels. */
export type Samples = number | Array<[Labels, number]>

/** MetricKit registers metrics on one registry (one per node). */
export class MetricKit {
  constructor (readonly registry: Registry) {}

  /** gauge is a value read at scrape time; labelled series that are no longer read disappear. */
  gauge (name: string, help: string, labelNames: string[], read: () => Samples | Promise<Samples>): void {
    new Gauge({
      name: PREFIX + name,
      help,
      labelNames,
      registers: [this.registry],
      async collect () {
        const v = await read()
        this.reset()
        if (typeof v === 'number') this.set(v)
        else for (const [labels, n] of v) this.set(labels, n)
      },
    })
  }

  /**
   * total is a counter the node keeps itself (its `counters` objects),
   * read at scrape time: monotonic while the node runs, reset with it.
   */
  total (name: string, help: string, labelNames: string[], read: () => Samples | Promise<Samples>): void {
    new Counter({
      name: PREFIX + name,
      help,
      labelNames,
      registers: [this.registry],
      async collect () {
        const v = await read()
        this.reset()
        if (typeof v === 'number') this.inc(Math.max(0, v))
        else for (const [labels, n] of v) this.inc(labels, Math.max(0, n))
      },
    })
  }
}

/**
 * Snapshot reads a node's status once per scrape: `refresh()` at the start
 * of a scrape, `get()` from each collector. Without a refresh (someone
 * reading the registry directly) a value is at most `maxAgeMs` old.
 */
export class Snapshot<T> {
  private value: Promise<T> | undefined
  private at = 0

  constructor (private readonly read: () => Promise<T>, private readonly maxAgeMs = 1000) {}

  refresh (): void {
    this.value = undefined
  }

  get (): Promise<T> {
    if (!this.value || Date.now() - this.at > this.maxAgeMs) {
      const v = this.read()
      this.at = Date.now()
      this.value = v
      // A failed read fails this scrape only.
      v.catch(() => { if (this.value === v) this.value = undefined })
    }
    return this.value
  }
}

/** flag is 1 for true, 0 for false. */
export function flag (b: boolean): number {
  return b ? 1 : 0
}
