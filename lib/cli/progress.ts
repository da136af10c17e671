/**
 * progress: long work shown to people, with rate and ETA.
 *
 * In a terminal (the stream is a TTY) a ProgressView draws one cli-progress
 * bar per item and one line per status text, redrawn in place. Anywhere
 * else (a pipe, a file, CI) it writes plain lines instead: every
 * `plainIntervalMs` one line per unfinished item and per status text, and
 * one line when an item finishes, so logs stay readable and greppable.
 *
 * Rates and ETAs come from a RateMeter over the values the caller reports
 * (a sliding window), the same in both forms. The caller only says how far
 * along each item is; the view decides how to show it.
 */
import cliProgress from 'cli-progress'
import { formatBytes } from './parse.js'

/** RateMeter estimates a rate (units per second) from recent samples of a growing value. */
export class RateMeter {
  private readonly samples: Array<{ t: number, v: number }> = []

  constructor (private readonly windowMs = 10_000) {}

  /** add records the value at time `t` (ms). A value that went down (work was added) starts over. */
  add (v: number, t: number): void {
    const last = this.samples[this.samples.length - 1]
    if (last && v < last.v) this.samples.length = 0
    this.samples.push({ t, v })
    while (this.samples.length > 2 && t - this.samples[0]!.t > this.windowMs) this.samples.shift()
  }

  /** rate is units per second over the window, undefined until the samples span 1 s. */
  rate (): number | undefined {
    const first = this.samples[0]
    const last = this.samples[this.samples.length - 1]
    if (!first || !last || last.t - first.t < 1000) return undefined
    return (last.v - first.v) * 1000 / (last.t - first.t)
  }

  /** eta is the seconds left to reach `total` at the current rate (undefined when unknown or stalled). */
  eta (total: number): number | undefined {
    const r = this.rate()
    const last = this.samples[this.samples.length - 1]
    if (!last) return undefined
    if (last.v >= total) return 0
    if (r === undefined || r <= 0) return undefined
    return (total - last.v) / r
  }
}

/** formatEta shows seconds for people: `42s`, `3m05s`, `2h10m`; `-` when unknown. */
export function formatEta (seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '-'
  const s = Math.ceil(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`
}

/** Unit says how an item's numbers read: bytes (`12 MiB`), or a count of some named thing. */
export type Unit = 'bytes' | { name: string }

/** ItemUpdate is how far along one item is. */
export interface ItemUpdate {
  /** What is shown before the bar (`disk.img`, `verify`). */
  label: string
  done: number
  total: number
  unit?: Unit
  /** A short word after the label in plain lines and bars (`hydrate`, `resync`). */
  kind?: string
}

/** ItemView is what a view shows for one item (also used by tests). */
export interface ItemText {
  label: string
  percent: string
  amount: string
  rate: string
  eta: string
}

function tookText (item: { startedAt: number, doneAt?: number }): string {
  const secs = ((item.doneAt ?? Date.now()) - item.startedAt) / 1000
  return `${secs < 10 ? secs.toFixed(1) : Math.round(secs)} s`
}

function amount (n: number, unit: Unit): string {
  return unit === 'bytes' ? formatBytes(n) : `${Math.round(n)} ${unit.name}`
}

function rateText (r: number | undefined, unit: Unit): string {
  if (r === undefined) return '-'
  return unit === 'bytes' ? `${formatBytes(Math.max(0, r))}/s` : `${Math.max(0, r).toFixed(1)} ${unit.name}/s`
}

const BAR_SIZE = 30

/** fit cuts `text` to `n` characters, marking the cut. */
function fit (text: string, n: number): string {
  if (text.length <= n) return text
  return n <= 1 ? '' : text.slice(0, n - 1) + '\u2026'
}

/** ProgressOptions choose where and how progress is shown. */
export interface ProgressOptions {
  /** Where to write (default process.stderr). */
  stream?: NodeJS.WriteStream | NodeJS.WritableStream
  /** Force the form; default: bars when the stream is a TTY. */
  tty?: boolean
  /** How often plain lines are written (default 5 s; 0: only when the caller calls `flush`). */
  plainIntervalMs?: number
  /** Prefix plain lines with the local time (default true). */
  timestamps?: boolean
}

interface Item {
  update: ItemUpdate
  meter: RateMeter
  finished: boolean
  /** Whether it was ever seen unfinished (a finished line then says how long it took). */
  worked: boolean
  startedAt: number
  doneAt?: number
}

/** Row is one line of the terminal view: a bar, or a text. */
interface Row { total: number, value: number, payload: { text?: string, label?: string, pct?: string, amount?: string, tail?: string } }

/** renderRow draws one row; the bar itself is cli-progress's. */
const renderRow: cliProgress.GenericFormatter = (options, params, payload: Row['payload']) =>
  payload.text !== undefined
    ? payload.text
    : `${payload.label ?? ''} ${cliProgress.Format.BarFormat(params.progress, options)} ${payload.pct ?? ''} ${payload.amount ?? ''}  ${payload.tail ?? ''}`

/**
 * ProgressView shows items (with bars) and status texts (lines) until
 * stopped. `update` and `text` may be called as often as wanted; what is
 * drawn is throttled.
 */
export class ProgressView {
  readonly tty: boolean
  private readonly stream: NodeJS.WritableStream
  private readonly items = new Map<string, Item>()
  private readonly texts = new Map<string, string>()
  private multi: cliProgress.MultiBar | undefined
  /** Terminal rows in display order: the items' bars, then the texts. */
  private readonly rows: cliProgress.SingleBar[] = []
  private timer: NodeJS.Timeout | undefined
  private readonly plainIntervalMs: number
  private readonly timestamps: boolean
  private stopped = false

  constructor (opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr
    this.tty = opts.tty ?? ((this.stream as NodeJS.WriteStream).isTTY === true)
    this.plainIntervalMs = opts.plainIntervalMs ?? 5000
    this.timestamps = opts.timestamps ?? true
    if (!this.tty && this.plainIntervalMs > 0) {
      this.timer = setInterval(() => this.plainTick(), this.plainIntervalMs)
      this.timer.unref()
    }
  }

  /** update reports how far along the item `key` is; an item whose done reaches total is finished (and said so once). */
  update (key: string, u: ItemUpdate): void {
    if (this.stopped) return
    const now = Date.now()
    let item = this.items.get(key)
    if (!item) {
      item = { update: u, meter: new RateMeter(), finished: false, worked: false, startedAt: now }
      this.items.set(key, item)
    }
    if (u.done < item.update.done && item.finished) {
      // More work arrived for a finished item (e.g. a resync): show it again.
      item.finished = false
      item.startedAt = now
    }
    item.update = u
    item.meter.add(u.done, now)
    const done = u.total > 0 ? u.done >= u.total : true
    if (done && !item.finished) {
      item.finished = true
      item.doneAt = now
      if (!this.tty) this.writeLine(this.plainItem(item, true))
    } else if (!done) {
      item.finished = false
      item.worked = true
      item.doneAt = undefined
    }
    if (this.tty) this.layout()
  }

  /** text sets a status line (`lag 0.1 s ...`) shown under the bars, or written with each round of plain lines. */
  text (key: string, text: string): void {
    if (this.stopped) return
    this.texts.set(key, text)
    if (this.tty) this.layout()
  }

  /** remove drops an item or text. */
  remove (key: string): void {
    const had = this.items.delete(key) || this.texts.delete(key)
    if (had && this.tty && !this.stopped) this.layout()
  }

  /** print writes a message: above the bars in a terminal, as a line otherwise. */
  print (message: string): void {
    const text = message.endsWith('\n') ? message : message + '\n'
    // Over the bars, each line clears what a bar left on it (ESC [K).
    if (this.tty && this.multi && !this.stopped) this.multi.log(text.replace(/\n/g, '\x1b[K\n'))
    else this.stream.write(text)
  }

  /** flush writes the plain lines now (no-op in a terminal). */
  flush (): void {
    if (!this.tty) this.plainTick()
  }

  /** stop draws a last frame and stops; what was drawn stays on the screen. Safe to call twice. */
  stop (): void {
    if (this.stopped) return
    this.stopped = true
    clearInterval(this.timer)
    // A last frame first: cli-progress's stop() drops messages not drawn yet.
    this.multi?.update()
    this.multi?.stop()
  }

  /** itemText is one item's numbers as shown (for tests and callers that format themselves). */
  itemText (key: string): ItemText | undefined {
    const item = this.items.get(key)
    return item ? this.describe(item) : undefined
  }

  private describe (item: Item): ItemText {
    const u = item.update
    const unit = u.unit ?? 'bytes'
    // Rounded down to a tenth, as `status` rounds hydratedPercent: both say
    // the same figure, and 100 % only when it is done.
    const pct = u.total > 0 ? Math.min(100, Math.floor(1000 * u.done / u.total) / 10) : 100
    return {
      label: u.kind ? `${u.kind} ${u.label}` : u.label,
      percent: `${pct.toFixed(1)}%`,
      amount: `${amount(u.done, unit)} of ${amount(u.total, unit)}`,
      rate: rateText(item.meter.rate(), unit),
      eta: formatEta(item.meter.eta(u.total)),
    }
  }

  /** layout puts the items' bars, then the texts, into the terminal rows (rows are reused, never reordered). */
  private layout (): void {
    const want: Row[] = []
    const described = [...this.items.values()].map(item => ({ item, d: this.describe(item) }))
    // Every row fits the terminal (a wrapped row breaks the redraw): what
    // goes first is kept, the end is cut (rows put the state first).
    const cols = Math.max(40, (this.stream as NodeJS.WriteStream).columns ?? 80) - 1
    const width = Math.min(Math.max(12, ...described.map(x => x.d.label.length)), Math.max(12, cols - BAR_SIZE - 30))
    for (const { item, d } of described) {
      const tail = !item.finished ? `${d.rate}  eta ${d.eta}` : item.worked ? `done in ${tookText(item)}` : 'complete'
      const total = Math.max(1, item.update.total)
      const label = fit(d.label, width).padEnd(width)
      const pct = d.percent.padStart(6)
      const room = cols - (label.length + 1 + BAR_SIZE + 1 + pct.length + 1 + d.amount.length + 2)
      want.push({
        total,
        value: item.update.total > 0 ? Math.min(item.update.done, total) : total,
        // cli-progress merges payloads: `text` must be cleared for a row that shows a bar.
        payload: { text: undefined, label, pct, amount: room >= 0 ? d.amount : fit(d.amount, d.amount.length + room), tail: fit(tail, Math.max(0, room)) },
      })
    }
    for (const text of this.texts.values()) want.push({ total: 1, value: 0, payload: { text: fit(text, cols) } })
    this.multi ??= new cliProgress.MultiBar({
      stream: this.stream,
      hideCursor: true,
      clearOnComplete: false,
      linewrap: false,
      fps: 5,
      // Rows that did not change are drawn again too: a message printed over them (print) erased them.
      forceRedraw: true,
      barsize: BAR_SIZE,
      barCompleteChar: '\u2588',
      barIncompleteChar: '\u2591',
      format: renderRow,
      // The caller decided this is a terminal (tests may force it).
      noTTYOutput: true,
      notTTYSchedule: 1000,
      gracefulExit: false,
    })
    while (this.rows.length < want.length) this.rows.push(this.multi.create(1, 0, { text: '' }))
    while (this.rows.length > want.length) this.multi.remove(this.rows.pop()!)
    want.forEach((r, i) => {
      const bar = this.rows[i]!
      bar.setTotal(r.total)
      bar.update(r.value, r.payload)
    })
  }

  private plainItem (item: Item, finished: boolean): string {
    const d = this.describe(item)
    if (finished && !item.worked) return `${d.label}  complete  ${d.amount.replace(/^.* of /, '')}`
    if (finished) return `${d.label}  done  ${d.amount.replace(/^.* of /, '')}  in ${tookText(item)}`
    return `${d.label}  ${d.percent}  ${d.amount}  ${d.rate}  eta ${d.eta}`
  }

  private plainTick (): void {
    if (this.stopped) return
    for (const item of this.items.values()) if (!item.finished) this.writeLine(this.plainItem(item, false))
    for (const t of this.texts.values()) this.writeLine(t)
  }

  private writeLine (line: string): void {
    const ts = this.timestamps ? new Date().toTimeString().slice(0, 8) + '  ' : ''
    this.stream.write(ts + line + '\n')
  }
}
