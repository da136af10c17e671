/**
 * log: one line per event, to stderr.
 *
 * An event has a dotted name (`journal.trimmed`) and flat fields. Text lines
 * read `2026-11-22T10:00:00.123Z info journal.trimmed upto=42 bytes=1048576`;
 * `format: 'json'` writes one JSON object per line instead. Expected errors
 * are logged by code and message, never with a stack trace.
 */
import { VolmirrorError } from './errors.js'

/** LogLevel orders the levels; a logger prints its level and everything more severe. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug'
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }

/** LogFields are the values of one event; errors are shown by code and message. */
export type LogFields = Record<string, unknown>

/** LogSink receives finished lines; tests swap it to capture events. */
export type LogSink = (line: string, level: LogLevel, event: string, fields: LogFields) => void

/**
 * LogObserver sees every event, whatever the logger's level (metrics count
 * errors by code even when warnings are not printed). It must not throw or
 * log; a throwing observer is ignored.
 */
export type LogObserver = (level: LogLevel, event: string, fields: LogFields) => void

/** Logger writes events at or above its level. */
export class Logger {
  level: LogLevel
  readonly format: 'text' | 'json'
  private readonly sink: LogSink
  private readonly base: LogFields
  // Shared by a logger and its children: an observer sees the events of the whole family.
  private observers: Set<LogObserver>

  constructor (opts: { level?: LogLevel, format?: 'text' | 'json', sink?: LogSink, base?: LogFields } = {}) {
    this.level = opts.level ?? 'info'
    this.format = opts.format ?? 'text'
    this.sink = opts.sink ?? ((line) => { process.stderr.write(line + '\n') })
    this.base = opts.base ?? {}
    this.observers = new Set()
  }

  /** child returns a logger that adds `fields` to every event. */
  child (fields: LogFields): Logger {
    const c = new Logger({ level: this.level, format: this.format, sink: this.sink, base: { ...this.base, ...fields } })
    c.observers = this.observers
    return c
  }

  /** observe calls `fn` for every event of this logger's family (it, its parent, its children); returns a function that stops it. */
  observe (fn: LogObserver): () => void {
    const entry: LogObserver = (...args) => { fn(...args) } // a distinct entry per call: observing twice counts twice
    this.observers.add(entry)
    return () => { this.observers.delete(entry) }
  }

  enabled (level: LogLevel): boolean { return RANK[level] <= RANK[this.level] }
  error (event: string, fields?: LogFields): void { this.log('error', event, fields) }
  warn (event: string, fields?: LogFields): void { this.log('warn', event, fields) }
  info (event: string, fields?: LogFields): void { this.log('info', event, fields) }
  debug (event: string, fields?: LogFields): void { this.log('debug', event, fields) }

  log (level: LogLevel, event: string, fields: LogFields = {}): void {
    if (this.observers.size > 0) {
      for (const fn of this.observers) {
        try { fn(level, event, fields) } catch {}
      }
    }
    if (!this.enabled(level)) return
    const all = { ...this.base, ...fields }
    const ts = new Date().toISOString()
    const line = this.format === 'json'
      ? JSON.stringify({ ts, level, event, ...mapValues(all, jsonValue) })
      : `${ts} ${level} ${event}${textFields(all)}`
    this.sink(line, level, event, all)
  }
}

function mapValues (o: LogFields, f: (v: unknown) => unknown): LogFields {
  const out: LogFields = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = f(v)
  return out
}

function jsonValue (v: unknown): unknown {
  if (v instanceof VolmirrorError) return v.toJSON()
  if (v instanceof Error) return { message: v.message, code: (v as NodeJS.ErrnoException).code }
  if (typeof v === 'bigint') return v.toString()
  return v
}

function textFields (o: LogFields): string {
  let s = ''
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue
    s += ` ${k}=${textValue(v)}`
  }
  return s
}

function textValue (v: unknown): string {
  if (v instanceof VolmirrorError) return quote(`${v.code}: ${v.message}`)
  if (v instanceof Error) return quote(((v as NodeJS.ErrnoException).code ? (v as NodeJS.ErrnoException).code + ': ' : '') + v.message)
  if (typeof v === 'string') return quote(v)
  if (typeof v === 'object' && v !== null) return quote(JSON.stringify(v))
  return String(v)
}

function quote (s: string): string {
  return /^[^\s"=]*$/.test(s) && s !== '' ? s : JSON.stringify(s)
}

/** silentLogger drops everything; for unit tests and library callers that want quiet. */
export const silentLogger = new Logger({ level: 'error', sink: () => {} })
