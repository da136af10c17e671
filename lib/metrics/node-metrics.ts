/**
 * node-metrics: what every node exports, whatever its role: its role and
 * epoch, when it started, and the errors it logged by code.
 *
 * Errors are counted from the log (Logger.observe): every event at level
 * error or warn whose `err` carries a `code` (a VolmirrorError's code, or
 * a system errno such as ECONNREFUSED) counts once. That is the same
 * stream an operator reads, so the counter and the log never disagree.
 */
import { Counter, Registry } from 'prom-client'
import type { Logger } from '../log.js'
import type { WireStatus } from '../http/compression.js'
import { MetricKit, PREFIX, Snapshot } from './metric-kit.js'

/** NodeStatusBase is the part of both roles' status these metrics read. */
export interface NodeStatusBase {
  role: 'primary' | 'dr'
  epoch: number
  startedAt: string
  dataPath: { mount: 'native' | 'js', native?: { reads: number, readBytes: number, passedReads: number, passedWrites?: number } }
  wire?: WireStatus
}

/** NodeMetrics is one node's registry; the role's metrics are added by primaryMetrics or drMetrics. */
export class NodeMetrics<S extends NodeStatusBase> {
  readonly registry = new Registry()
  readonly kit = new MetricKit(this.registry)
  /** status, read once per scrape. */
  readonly status: Snapshot<S>
  private readonly stops: Array<() => void> = []

  constructor (status: () => Promise<S>, log: Logger) {
    this.status = new Snapshot(status)
    const k = this.kit
    k.gauge('role', 'The node\'s role: 1 for the role it has now.', ['role'], async () => {
      const role = (await this.status.get()).role
      return [[{ role: 'primary' }, role === 'primary' ? 1 : 0], [{ role: 'dr' }, role === 'dr' ? 1 : 0]]
    })
    k.gauge('epoch', 'Epoch of the node (bumped at every promotion).', [], async () => (await this.status.get()).epoch)
    k.gauge('data_path', 'Who serves the mount\'s reads and writes: 1 for the data path in use (native: C on the FUSE threads; js: JavaScript).', ['path'], async () => {
      const p = (await this.status.get()).dataPath.mount
      return [[{ path: 'native' }, p === 'native' ? 1 : 0], [{ path: 'js' }, p === 'js' ? 1 : 0]]
    })
    const native = async (): Promise<NonNullable<S['dataPath']['native']> | undefined> => (await this.status.get()).dataPath.native
    k.total('native_reads_total', 'Reads the native data path served on FUSE threads.', [], async () => (await native())?.reads ?? 0)
    k.total('native_read_bytes_total', 'Bytes the native data path read on FUSE threads.', [], async () => (await native())?.readBytes ?? 0)
    k.total('native_passed_total', 'Operations the native data path passed to JavaScript (a DR\'s reads of regions to fetch; writes to volumes it does not journal).', ['op'], async () => {
      const n = await native()
      return [[{ op: 'read' }, n?.passedReads ?? 0], [{ op: 'write' }, n?.passedWrites ?? 0]]
    })
    k.total('wire_bytes_total', 'Replication traffic (group frames, region bodies) a primary sent or a DR received, as data (form="raw") and as it crossed the link (form="wire", zstd when --compress chose it).', ['direction', 'kind', 'form'], async () => {
      const w = (await this.status.get()).wire
      if (!w) return []
      return (['groups', 'regions'] as const).flatMap(kind => (['raw', 'wire'] as const).map(form => [{ direction: w.direction, kind, form }, w[kind][form]] as [Record<string, string>, number]))
    })
    k.gauge('start_time_seconds', 'When this node started (Unix time, seconds).', [], async () => Date.parse((await this.status.get()).startedAt) / 1000)
    const errors = new Counter({
      name: PREFIX + 'errors_total',
      help: 'Errors and warnings logged with an error code, by code and level.',
      labelNames: ['code', 'level'],
      registers: [this.registry],
    })
    this.stops.push(log.observe((level, _event, fields) => {
      if (level !== 'error' && level !== 'warn') return
      const code = (fields.err as { code?: unknown } | undefined)?.code
      if (typeof code === 'string' && code.length > 0 && code.length <= 64) errors.inc({ code, level })
    }))
  }

  /** onClose registers what `close` undoes (event subscriptions). */
  onClose (fn: () => void): void {
    this.stops.push(fn)
  }

  /** contentType is the Content-Type of `text()`. */
  get contentType (): string {
    return this.registry.contentType
  }

  /** text is a scrape: every metric in the Prometheus text format, from a fresh status. */
  async text (): Promise<string> {
    this.status.refresh()
    return await this.registry.metrics()
  }

  /** close stops counting events (the node is closing; its registry is dropped). */
  close (): void {
    for (const stop of this.stops.splice(0)) stop()
  }
}
