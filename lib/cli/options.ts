/**
 * options: flag handling the commands share (bin/cli.ts and the command
 * modules it wires): the common flags, usage errors that name their flag,
 * durations, sizes and TLS pairs.
 */
import { Command, Option } from 'commander'
import { VolmirrorError } from '../errors.js'
import { Logger, type LogLevel } from '../log.js'
import { checkRegionSize } from '../store/state-store.js'
import { DATA_PATHS, defaultDataPath } from '../fuse/native-path.js'
import { COMPRESS_MODES, parseCompressMode } from '../http/compression.js'
import { parseDuration, parseSize } from './parse.js'

/** CommonOpts are the flags every command has. */
export interface CommonOpts { logLevel: LogLevel, logFormat: 'text' | 'json', config?: string }

/** common adds the flags every command has. */
export function common (cmd: Command): Command {
  return cmd
    .option('--config <file>', 'read flags from a JSON file ({"flag-name": "value"}); flags given here win')
    .addOption(new Option('--log-level <level>', 'least severe events to log').choices(['error', 'warn', 'info', 'debug']).default('info'))
    .addOption(new Option('--log-format <format>', 'log lines as text or JSON').choices(['text', 'json']).default('text'))
}

/** usage turns a bad option value into a usage error (exit 2), naming the option. */
export function usage<T> (option: string, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw new VolmirrorError('USAGE', `${option}: ${(err as Error).message.replace(/^[^:]*: /, '')}`)
  }
}

/** regionSizeOption reads --region-size. */
export function regionSizeOption (text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  return usage('--region-size', () => checkRegionSize(parseSize(text, '--region-size')))
}

/** durationOption reads a positive duration flag. */
export function durationOption (option: string, text: string): number {
  const ms = usage(option, () => parseDuration(text, option))
  if (ms <= 0) throw new VolmirrorError('USAGE', `${option}: must be more than 0`)
  return ms
}

/** tlsOption is the --tls-cert/--tls-key pair, or undefined when neither is given. */
export function tlsOption (o: { tlsCert?: string, tlsKey?: string }): { cert: string, key: string } | undefined {
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new VolmirrorError('USAGE', '--tls-cert and --tls-key go together')
  return o.tlsCert !== undefined && o.tlsKey !== undefined ? { cert: o.tlsCert, key: o.tlsKey } : undefined
}

/** dataPathOption: who serves a node's mount (native hooks on FUSE threads, or JavaScript). */
export function dataPathOption (): Option {
  return new Option('--data-path <path>', 'who serves reads and writes of the mount: native code on the FUSE threads, or JavaScript (the fallback)')
    .choices([...DATA_PATHS]).default(defaultDataPath())
}

/** compressOption: zstd on the wire (lib/http/compression.ts). */
export function compressOption (): Option {
  const o = new Option('--compress <mode>', 'zstd on the wire: auto (when the link, not the CPU, limits: a DR 5 ms or more from its primary asks), zstd (always), none')
    .default('auto').argParser(v => usage('--compress', () => parseCompressMode(v)))
  // Listed for help and shell completion; the parser above says why lz4 is not one.
  o.argChoices = [...COMPRESS_MODES]
  return o
}

/** logger makes the command's logger. */
export function logger (o: CommonOpts, role: string): Logger {
  return new Logger({ level: o.logLevel, format: o.logFormat, base: { node: role } })
}


/**
 * commandFor finds the (sub)command the leading words of `argv` name
 * (`primary`, `archive ls`), and where its own arguments start; the
 * program itself when they name none.
 */
export function commandFor (program: Command, argv: string[]): { cmd: Command, next: number } {
  let cmd = program
  let next = 0
  while (next < argv.length && !argv[next]!.startsWith('-')) {
    const sub = cmd.commands.find(c => c.name() === argv[next] || c.aliases().includes(argv[next]!))
    if (!sub) break
    cmd = sub
    next++
  }
  return { cmd, next }
}

/**
 * checkUnknownOptions reports the first flag the command does not know,
 * before anything else is checked: commander checks required options
 * first, so `primary --bogus` would otherwise say that --images is missing.
 */
export function checkUnknownOptions (program: Command, argv: string[]): void {
  const { cmd, next } = commandFor(program, argv)
  if (cmd === program) return
  let i = next
  const known = new Map<string, boolean>() // flag -> takes a value
  for (const o of [...cmd.options, ...program.options]) {
    for (const f of [o.long, o.short]) if (f) known.set(f, o.required || o.optional)
  }
  known.set('--help', false).set('-h', false)
  for (; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--') return
    if (!a.startsWith('-') || a === '-') continue
    const flag = a.includes('=') ? a.slice(0, a.indexOf('=')) : a
    const takes = known.get(flag)
    if (takes === undefined) {
      const name = cmd.parent && cmd.parent !== program ? `${cmd.parent.name()} ${cmd.name()}` : cmd.name()
      throw new VolmirrorError('USAGE', `unknown option '${flag}' for \`volmirror ${name}\` (see volmirror ${name} --help)`)
    }
    if (takes && !a.includes('=')) i++
  }
}

/** urlOption checks a URL flag, echoing the value and an example when it is none. */
export function urlOption (option: string, value: string, example: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new VolmirrorError('USAGE', `${option}: not a URL: ${JSON.stringify(value)} (e.g. ${example})`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new VolmirrorError('USAGE', `${option}: must be http:// or https://, not ${JSON.stringify(value)} (e.g. ${example})`)
  return url
}
