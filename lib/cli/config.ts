/**
 * config: `--config volmirror.json`, the command line in a file.
 *
 * The file is one JSON object whose keys are the long flags without their
 * dashes, as typed on the command line (`"hydrate-rate": "200M"`,
 * `"listen": "0.0.0.0:7070"`, `"retain-journal": true`). Values mean what
 * they mean as flags (relative paths are relative to the current
 * directory); a flag given on the command line wins over the file.
 *
 * One file may serve several commands (a node's file also tells `status`
 * its `state`): a key that is a flag of another volmirror command is
 * ignored by this one; a key that is no flag of any command is a usage
 * error naming it, as is a value of the wrong type.
 */
import { readFile } from 'node:fs/promises'
import { VolmirrorError } from '../errors.js'

/** ConfigValue is what a key may hold: a flag's text (numbers are taken as text) or a switch. */
export type ConfigValue = string | boolean

/** FlagSpec describes one flag of the command being run. */
export interface FlagSpec {
  /** Kebab-case name without dashes (`hydrate-rate`). */
  key: string
  /** Whether it is a switch (no value). */
  boolean: boolean
  /** Allowed values, if the flag has a fixed set. */
  choices?: readonly string[]
  /** A file or directory: only text will do (a number is no path). */
  path?: boolean
}

/** Keys that never come from a file. */
const NOT_IN_FILE = new Set(['config', 'help', 'version'])

/**
 * readConfig reads and checks a config file for a command whose flags are
 * `flags`; `otherKeys` are the flags of the other commands (ignored here).
 * Returns the values for this command's flags, by key.
 */
export async function readConfig (file: string, flags: FlagSpec[], otherKeys: Iterable<string>): Promise<Map<string, ConfigValue>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new VolmirrorError('USAGE', `--config: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new VolmirrorError('USAGE', `--config: ${file} is not JSON (${(err as Error).message})`, { cause: err })
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new VolmirrorError('USAGE', `--config: ${file} must hold one JSON object of flags, e.g. {"state": "./state", "hydrate-rate": "200M"}`)
  }
  const mine = new Map(flags.map(f => [f.key, f]))
  const others = new Set(otherKeys)
  const unknown: string[] = []
  const out = new Map<string, ConfigValue>()
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const spec = NOT_IN_FILE.has(key) ? undefined : mine.get(key)
    if (!spec) {
      if (!others.has(key) || NOT_IN_FILE.has(key)) unknown.push(key)
      continue
    }
    out.set(key, checkValue(file, spec, value))
  }
  if (unknown.length > 0) {
    throw new VolmirrorError('USAGE', `--config: ${file}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map(k => JSON.stringify(k)).join(', ')} ` +
      '(keys are the long flags without dashes, e.g. "state", "hydrate-rate")', { details: { unknown } })
  }
  return out
}

function checkValue (file: string, spec: FlagSpec, value: unknown): ConfigValue {
  const where = `--config: ${file}: "${spec.key}"`
  if (spec.boolean) {
    if (typeof value !== 'boolean') throw new VolmirrorError('USAGE', `${where} is a switch: true or false, not ${JSON.stringify(value)}`)
    return value
  }
  if (spec.path && typeof value !== 'string') throw new VolmirrorError('USAGE', `${where} is a path: give it as text, e.g. "./${spec.key}", not ${JSON.stringify(value)}`)
  if (typeof value === 'number' && Number.isFinite(value)) value = String(value)
  if (typeof value !== 'string') throw new VolmirrorError('USAGE', `${where} takes a value as text (as on the command line), not ${JSON.stringify(value)}`)
  if (spec.choices && !spec.choices.includes(value)) {
    throw new VolmirrorError('USAGE', `${where}: "${value}" is not one of ${spec.choices.join(', ')}`)
  }
  return value
}

/**
 * configPath finds `--config FILE` (or `--config=FILE`) in the arguments
 * of a subcommand, before the option parser runs (the file's values must
 * be in place before it checks required flags). Stops at `--`.
 */
export function configPath (args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === '--') return undefined
    if (a === '--config') {
      const v = args[i + 1]
      if (v === undefined || v.startsWith('-')) throw new VolmirrorError('USAGE', '--config: a file name is needed, e.g. --config volmirror.json')
      return v
    }
    if (a.startsWith('--config=')) return a.slice('--config='.length)
  }
  return undefined
}
