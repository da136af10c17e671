/**
 * cli: the `volmirror` command. Parses arguments and wires library modules;
 * all behaviour lives in lib/.
 *
 * Exit status: 0 success, 1 failure, 2 usage error. Expected errors are one
 * line `volmirror: <message> [CODE]`, never a stack trace.
 */
import { Command, CommanderError, Option } from 'commander'
import { callControl } from '../lib/control/control-socket.js'
import { formatStatus } from '../lib/cli/format-status.js'
import { parseDuration, parseSize } from '../lib/cli/parse.js'
import { checkRegionSize } from '../lib/store/state-store.js'
import { VolmirrorError } from '../lib/errors.js'
import { Logger, type LogLevel } from '../lib/log.js'
import { PrimaryNode } from '../lib/node/primary-node.js'
import { forceUnmount } from '../lib/fuse/mount.js'

interface CommonOpts { logLevel: LogLevel, logFormat: 'text' | 'json' }

const program = new Command()
  .name('volmirror')
  .description('Disaster-recovery mirror for disk images: a FUSE primary that journals every write, and a DR copy you can use before it is complete.')
  .version('0.1.0')
  .exitOverride()
  // Usage errors from the parser follow the same one-line form as ours.
  .configureOutput({
    outputError: (str, write) => write(`volmirror: ${str.replace(/^error: /, '').trim()} (see --help) [USAGE]\n`),
  })

function common (cmd: Command): Command {
  return cmd
    .addOption(new Option('--log-level <level>', 'least severe events to log').choices(['error', 'warn', 'info', 'debug']).default('info'))
    .addOption(new Option('--log-format <format>', 'log lines as text or JSON').choices(['text', 'json']).default('text'))
}

/** usage turns a bad option value into a usage error (exit 2), naming the option. */
function usage<T> (option: string, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw new VolmirrorError('USAGE', `${option}: ${(err as Error).message.replace(/^[^:]*: /, '')}`)
  }
}

function regionSizeOption (text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  return usage('--region-size', () => checkRegionSize(parseSize(text, '--region-size')))
}

function durationOption (option: string, text: string): number {
  const ms = usage(option, () => parseDuration(text, option))
  if (ms <= 0) throw new VolmirrorError('USAGE', `${option}: must be more than 0`)
  return ms
}

function logger (o: CommonOpts, role: string): Logger {
  return new Logger({ level: o.logLevel, format: o.logFormat, base: { node: role } })
}

common(program.command('primary'))
  .description('serve an image directory through a FUSE mount and journal every write')
  .requiredOption('--images <dir>', 'directory of volume images (raw, qcow2, any file)')
  .requiredOption('--state <dir>', 'state directory (journal, settings); created on first start')
  .requiredOption('--mount <dir>', 'empty directory to mount the volumes on')
  .option('--region-size <size>', 'region size, fixed at first start (64K..16M, power of two; default 1M)')
  .option('--retain-journal', 'keep journal records even when no DR needs them (audit, debugging)', false)
  .option('--checkpoint-interval <duration>', 'longest time between checkpoints (images made durable, journal trimmed)', '30s')
  .addHelpText('after', `
Example:
  volmirror primary --images ./images --state ./state --mount ./mnt
  qemu-img create -f raw ./mnt/new.img 4G
  volmirror status --state ./state`)
  .action(async (o: CommonOpts & { images: string, state: string, mount: string, regionSize?: string, retainJournal: boolean, checkpointInterval: string }) => {
    const regionSize = regionSizeOption(o.regionSize)
    const checkpointMs = durationOption('--checkpoint-interval', o.checkpointInterval)
    const log = logger(o, 'primary')
    const node = await PrimaryNode.start({
      images: o.images,
      state: o.state,
      mount: o.mount,
      ...(regionSize !== undefined ? { regionSize } : {}),
      retainJournal: o.retainJournal,
      checkpointMs,
      log,
    })
    await runUntilSignal(log, () => node.close(), node.mount.mountPoint)
  })

common(program.command('status'))
  .description('show what a running node is doing: volumes, journal, replication')
  .requiredOption('--state <dir>', 'state directory of the node')
  .option('--json', 'print the status as JSON', false)
  .addHelpText('after', `
Example:
  volmirror status --state ./state
  volmirror status --state ./state --json | jq .journal`)
  .action(async (o: CommonOpts & { state: string, json: boolean }) => {
    const s = await callControl<{ role: string } & Record<string, unknown>>(o.state, 'status')
    process.stdout.write((o.json ? JSON.stringify(s, null, 2) : formatStatus(s)) + '\n')
  })

/** runUntilSignal keeps a node up until SIGINT/SIGTERM, then closes it; a second signal forces the unmount. */
async function runUntilSignal (log: Logger, close: () => Promise<void>, mountPoint: string): Promise<void> {
  await new Promise<void>((resolve) => {
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn('node.forced_stop', { signal })
        void forceUnmount(mountPoint).finally(() => process.exit(1))
        return
      }
      stopping = true
      log.info('node.stopping', { signal })
      close().then(resolve, (err: unknown) => {
        log.error('node.stop_failed', { err })
        process.exitCode = 1
        resolve()
      })
    }
    process.on('SIGINT', () => stop('SIGINT'))
    process.on('SIGTERM', () => stop('SIGTERM'))
  })
}

function fail (err: unknown): never {
  if (err instanceof CommanderError) {
    // --help and --version succeed; help shown because a command is missing does not.
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || (err.code === 'commander.help' && err.exitCode === 0)
    process.exit(ok ? 0 : 2)
  }
  if (err instanceof VolmirrorError) {
    process.stderr.write(`volmirror: ${err.message} [${err.code}]\n`)
    process.exit(err.code === 'USAGE' ? 2 : 1)
  }
  process.stderr.write(`volmirror: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exit(1)
}

try {
  await program.parseAsync(process.argv)
  process.exit(process.exitCode ?? 0)
} catch (err) {
  fail(err)
}
