/**
 * cli: the `volmirror` command. Parses arguments and wires library modules;
 * all behaviour lives in lib/.
 *
 * Exit status: 0 success, 1 failure, 2 usage error. Expected errors are one
 * line `volmirror: <message> [CODE]`, never a stack trace.
 */
import { Command, CommanderError, Option } from 'commander'
import { callControl } from '../lib/control/control-socket.js'
import { configPath, readConfig, type FlagSpec } from '../lib/cli/config.js'
import { demoteWithProgress, verifyWithProgress, waitForRole } from '../lib/cli/command-progress.js'
import { formatStatus } from '../lib/cli/format-status.js'
import { parseListen, parseRate, parseSize } from '../lib/cli/parse.js'
import { watchStatus } from '../lib/cli/status-watch.js'
import { Demo } from '../lib/demo/demo.js'
import { VolmirrorError } from '../lib/errors.js'
import type { Logger } from '../lib/log.js'
import { NodeRunner, type PromoteReply } from '../lib/node/node-runner.js'
import { readToken } from '../lib/http/auth.js'
import { hostname } from 'node:os'
import { forceUnmount } from '../lib/fuse/mount.js'
import { type DataPath } from '../lib/fuse/native-path.js'
import { checkUnknownOptions, commandFor, urlOption, common, compressOption, dataPathOption, durationOption, logger, regionSizeOption, tlsOption, usage, type CommonOpts } from '../lib/cli/options.js'
import type { CompressMode } from '../lib/http/compression.js'
import { addHistoryCommands, formatPoint, pointArgs } from '../lib/cli/history-commands.js'
import { completionScript } from '../lib/cli/completion.js'
import { addArchiveCommands, archiveSettings, primaryArchiveOptions, type ArchiveFlags } from '../lib/cli/archive-commands.js'

const program = new Command()
  .name('volmirror')
  .description('Disaster-recovery mirror for disk images: a FUSE primary that journals every write, and a DR copy you can use before it is complete.')
  .version('0.1.0')
  .exitOverride()
  // Usage errors from the parser follow the same one-line form as ours.
  .configureOutput({
    outputError: (str, write) => write(`volmirror: ${str.replace(/^error: /, '').trim()} (see --help) [USAGE]\n`),
  })
  .addHelpText('after', `
Try it on this machine first (a primary and a DR with sample images, live progress):
  volmirror demo

Every command takes --config FILE: a JSON object of its long flags without
dashes, e.g. {"state": "./state", "hydrate-rate": "200M"}; flags on the
command line win over the file. \`volmirror <command> --help\` shows each
command's flags and an example.

Exit status:
  0  success
  1  failure (the message says what failed, with a code in brackets)
  2  usage error (a bad command, flag, flag value or config file)`)

/** syncOptions adds --sync and its fallback (primary, and a DR for when it is promoted). */
function syncOptions (cmd: Command, when = ''): Command {
  return cmd
    .option('--sync', `synchronous mode (RPO 0)${when}: an fsync returns only once every DR holds its writes durably`, false)
    .addOption(new Option('--sync-fallback <what>', 'with --sync, when a DR does not confirm within --sync-timeout: go on without it (async, said loudly) or make writers wait (block)').choices(['async', 'block']).default('async'))
    .option('--sync-timeout <duration>', 'with --sync, how long an fsync waits for a DR before --sync-fallback applies', '5s')
}

/** syncConfig reads the --sync flags. */
function syncConfig (o: { sync: boolean, syncFallback: 'async' | 'block', syncTimeout: string }): { sync?: { fallback: 'async' | 'block', timeoutMs: number } } {
  const timeoutMs = durationOption('--sync-timeout', o.syncTimeout)
  return o.sync ? { sync: { fallback: o.syncFallback, timeoutMs } } : {}
}

const primaryCommand = syncOptions(common(program.command('primary')))
  .description('serve an image directory through a FUSE mount and journal every write')
  .requiredOption('--images <dir>', 'directory of volume images (raw, qcow2, any file)')
  .requiredOption('--state <dir>', 'state directory (journal, settings); created on first start')
  .requiredOption('--mount <dir>', 'empty directory to mount the volumes on')
  .option('--region-size <size>', 'region size, fixed at first start (64K..16M, power of two; default 1M)')
  .option('--retain-journal', 'keep journal records even when no DR needs them (audit, debugging)', false)
  .option('--checkpoint-interval <duration>', 'longest time between checkpoints (images made durable, journal trimmed)', '30s')
  .option('--listen <host:port>', 'serve DR nodes here (HTTP; port only = 127.0.0.1)')
  .option('--token-file <file>', 'peer token file, created (mode 0600) at first start', 'STATE/token')
  .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
  .option('--tls-key <file>', 'the certificate\'s private key (PEM)')
  .option('--group-interval <duration>', 'how often a consistency group is closed and offered to DRs', '100ms')
  .option('--journal-limit <size>', 'journal kept for a lagging DR; past it, the oldest records become dirty regions it resyncs', '1G')
  .option('--dr-expire <duration>', 'forget a DR not seen for this long (it stops holding the journal back); default never')
  .option('--async-reads', 'with --data-path js: read images on the thread pool instead of the main thread (many parallel readers on slow disks)', false)
  .addOption(compressOption())
  .addOption(dataPathOption())
primaryArchiveOptions(primaryCommand)
  .addHelpText('after', `
Example:
  volmirror primary --images ./images --state ./state --mount ./mnt --listen 0.0.0.0:7070
  volmirror primary ... --sync --sync-fallback block    # RPO 0, writers wait for the DR
  volmirror primary ... --archive s3://backups/volmirror/site-a --archive-retention 30d
  qemu-img create -f raw ./mnt/new.img 4G
  volmirror status --state ./state
  scp ./state/token dr-host:/etc/volmirror/token     # what a DR needs to connect`)
  .action(async (o: CommonOpts & { images: string, state: string, mount: string, regionSize?: string, retainJournal: boolean, checkpointInterval: string, listen?: string, tokenFile: string, tlsCert?: string, tlsKey?: string, groupInterval: string, journalLimit: string, drExpire?: string, asyncReads: boolean, compress: CompressMode, dataPath: DataPath, sync: boolean, syncFallback: 'async' | 'block', syncTimeout: string } & ArchiveFlags) => {
    const archive = archiveSettings(o)
    const drExpireMs = o.drExpire !== undefined ? durationOption('--dr-expire', o.drExpire) : undefined
    const regionSize = regionSizeOption(o.regionSize)
    const sync = syncConfig(o)
    const journalLimit = usage('--journal-limit', () => parseSize(o.journalLimit, '--journal-limit'))
    const checkpointMs = durationOption('--checkpoint-interval', o.checkpointInterval)
    const groupMs = durationOption('--group-interval', o.groupInterval)
    const listen = o.listen !== undefined ? parseListen(o.listen) : undefined
    const tls = tlsOption(o)
    const log = logger(o, 'primary')
    const runner = await NodeRunner.startPrimary({
      images: o.images, state: o.state, mount: o.mount, log, checkpointMs, dataPath: o.dataPath,
      ...(regionSize !== undefined ? { regionSize } : {}),
      ...(listen ? { listen } : {}),
      ...(o.tokenFile !== 'STATE/token' ? { tokenFile: o.tokenFile } : {}),
      primary: {
        retainJournal: o.retainJournal, groupMs, journalLimit, asyncReads: o.asyncReads, compress: o.compress, ...(tls ? { tls } : {}),
        ...sync, ...(drExpireMs !== undefined ? { drExpireMs } : {}), ...(archive ? { archive } : {}),
      },
    })
    await runUntilSignal(log, () => runner.close(), runner.mountPoint, runner.failed)
  })

syncOptions(common(program.command('dr')), ' once promoted')
  .description('follow a primary: a DR copy you can read at once, completed in the background')
  .requiredOption('--images <dir>', 'directory for the DR\'s copies of the volumes (created if missing)')
  .requiredOption('--state <dir>', 'state directory (created on first start)')
  .requiredOption('--mount <dir>', 'empty directory to mount the copies on (read-only until promoted)')
  .requiredOption('--primary <url>', 'the primary\'s endpoint, e.g. http://primary:7070')
  .requiredOption('--token-file <file>', 'the primary\'s peer token (its STATE/token)')
  .option('--ca <file>', 'CA certificate to trust for an https primary (PEM)')
  .option('--hydrate-rate <rate>', 'background copy rate, e.g. 200M (per second); 0 = only on demand; unlimited', 'unlimited')
  .option('--fetch-timeout <duration>', 'how long a read of a region not copied yet waits for an unreachable primary before EIO', '30s')
  .option('--read-ahead <regions>', 'regions fetched ahead of a sequential reader (the window grows to this many while it keeps reading)', '16')
  .option('--region-size <size>', 'region size (default: the primary\'s)')
  .option('--checkpoint-interval <duration>', 'longest time between checkpoints', '30s')
  .option('--listen <host:port>', 'serve the status page and metrics here now, and DRs once promoted')
  .option('--advertise <url>', 'the URL other nodes reach --listen at (default: from --listen)')
  .option('--tls-cert <file>', 'serve --listen over HTTPS with this certificate (PEM)')
  .option('--tls-key <file>', 'the certificate\'s private key (PEM)')
  .option('--async-reads', 'with --data-path js: read the copies on the thread pool instead of the main thread (many parallel readers on slow disks)', false)
  .addOption(compressOption())
  .addOption(dataPathOption())
  .option('--keep-discarded <dir>', 'when this node gives up writes the primary never had (failback), keep their bytes here')
  .option('--discard-local', 'resolve a split brain by overwriting this side with the primary\'s', false)
  .option('--history <duration>', 'keep recovery points this far back (point-in-time views, test failover, promote --at); 0 = none', '0')
  .option('--history-size <size>', 'with --history, keep at most this much of what changes overwrote (the oldest points go first)', '10G')
  .addHelpText('after', `
Example:
  volmirror dr --images ./replica --state ./drstate --mount ./drmnt \\
               --primary http://primary:7070 --token-file ./token
  qemu-img info ./drmnt/vm1.raw          # works at once: copy-on-read
  volmirror status --state ./drstate     # consistent/inconsistent, hydrated %, lag
  volmirror dr forget 1a2b3c4d --state ./primary-state   # on the primary: drop a DR gone for good`)
  .action(async (o: CommonOpts & { images: string, state: string, mount: string, primary: string, tokenFile: string, ca?: string, hydrateRate: string, fetchTimeout: string, readAhead: string, regionSize?: string, checkpointInterval: string, listen?: string, advertise?: string, tlsCert?: string, tlsKey?: string, asyncReads: boolean, compress: CompressMode, keepDiscarded?: string, discardLocal: boolean, dataPath: DataPath, history: string, historySize: string, sync: boolean, syncFallback: 'async' | 'block', syncTimeout: string }) => {
    const sync = syncConfig(o)
    const historyMs = o.history === '0' ? 0 : durationOption('--history', o.history)
    const historySize = usage('--history-size', () => parseSize(o.historySize, '--history-size'))
    const hydrateRate = usage('--hydrate-rate', () => parseRate(o.hydrateRate, '--hydrate-rate'))
    const fetchTimeoutMs = durationOption('--fetch-timeout', o.fetchTimeout)
    const checkpointMs = durationOption('--checkpoint-interval', o.checkpointInterval)
    const readAhead = Number(o.readAhead)
    if (!Number.isInteger(readAhead) || readAhead < 0 || readAhead > 256) throw new VolmirrorError('USAGE', '--read-ahead: a number of regions, 0..256')
    const regionSize = regionSizeOption(o.regionSize)
    urlOption('--primary', o.primary, 'http://primary:7070')
    const listen = o.listen !== undefined ? parseListen(o.listen) : undefined
    const tls = tlsOption(o)
    const listenUrl = o.advertise ?? (listen ? `${tls ? 'https' : 'http'}://${listen.host === '0.0.0.0' || listen.host === '::' ? hostname() : listen.host}:${listen.port}` : undefined)
    const log = logger(o, 'dr')
    const token = await readToken(o.tokenFile)
    const runner = await NodeRunner.startDr({
      images: o.images, state: o.state, mount: o.mount, log, checkpointMs, dataPath: o.dataPath,
      ...(regionSize !== undefined ? { regionSize } : {}),
      ...(listen ? { listen } : {}),
      tokenFile: o.tokenFile,
      primary: { asyncReads: o.asyncReads, compress: o.compress, ...(tls ? { tls } : {}), ...sync },
      dr: {
        url: o.primary, token, ...(o.ca ? { ca: o.ca } : {}),
        primaryLabel: o.primary, hydrateRate, fetchTimeoutMs, readAhead,
        ...(listenUrl ? { listenUrl } : {}),
        ...(o.keepDiscarded ? { keepDiscarded: o.keepDiscarded } : {}),
        ...(o.discardLocal ? { discardLocal: true } : {}),
        ...(historyMs > 0 ? { recovery: { windowMs: historyMs, maxBytes: historySize } } : {}),
      },
    })
    await runUntilSignal(log, () => runner.close(), runner.mountPoint, runner.failed)
  })

common(program.command('promote'))
  .description('make a running DR the primary: finish applying, begin a new epoch, make its mount writable, serve DRs')
  .requiredOption('--state <dir>', 'state directory of the DR')
  .option('--force', 'promote even though some volumes are not consistent yet (their absent regions keep what the DR holds)', false)
  .option('--at <time>', 'first go back to the last recovery point at or before this time (ISO 8601, or now-10m; needs --history)')
  .option('--seq <n>', 'first go back to the last recovery point at or before this seq')
  .option('--timeout <duration>', 'how long to wait for the node to come up as a primary', '60s')
  .option('--json', 'print the result as JSON', false)
  .addHelpText('after', `
Example:
  volmirror promote --state ./drstate             # refuses while volumes are inconsistent
  volmirror promote --state ./drstate --force     # and says which ones, how far from consistent
  volmirror promote --state ./drstate --at 2026-12-04T10:42:00Z   # back to before the ransomware, then promote

A DR that keeps history (--history) and is resyncing is promoted at its last
recovery point without --force: the resync's partial updates are rolled back.`)
  .action(async (o: CommonOpts & { state: string, force: boolean, at?: string, seq?: string, timeout: string, json: boolean }) => {
    const timeoutMs = durationOption('--timeout', o.timeout)
    const r = await callControl<PromoteReply>(o.state, 'promote', { force: o.force, ...pointArgs(o) })
    const s = await waitForRole(o.state, 'primary', timeoutMs) // shows the wait on stderr
    const out = { ...r, role: s.role, epoch: s.epoch, mount: s.mount, listen: s.listen }
    if (o.json) process.stdout.write(JSON.stringify(out, null, 2) + '\n')
    else {
      if (r.rolledBack) process.stdout.write(`rolled back to ${formatPoint(r.rolledBack.point)}: ${r.rolledBack.entries} undo entries, ${r.rolledBack.volumes.length} volume(s)${r.rolledBack.setAside.length ? `; created since, set aside: ${r.rolledBack.setAside.join(', ')}` : ''}\n`)
      process.stdout.write(`promoted: epoch ${s.epoch} begins after seq ${r.appliedSeq}; ${s.mount} is writable${s.listen ? `; serving DRs at ${s.listen}` : ''}\n`)
      for (const v of r.inconsistent) process.stdout.write(`  warning: ${v.volume} was inconsistent (${v.absentRegions} regions absent, ${v.hydratedPercent}% hydrated)\n`)
    }
  })

common(program.command('demote'))
  .description('planned switchover: stop taking writes, wait until the DR has everything, then follow it once it is promoted')
  .requiredOption('--state <dir>', 'state directory of the primary')
  .option('--timeout <duration>', 'how long to wait for the DR to acknowledge everything', '60s')
  .option('--json', 'print the result as JSON', false)
  .addHelpText('after', `
Example (switchover from A to B, nothing lost):
  volmirror demote  --state ./stateA     # A: read-only, waits for B, then follows B
  volmirror promote --state ./stateB     # B: the new primary; A catches up and follows`)
  .action(async (o: CommonOpts & { state: string, timeout: string, json: boolean }) => {
    const timeoutMs = durationOption('--timeout', o.timeout)
    const r = await demoteWithProgress(o.state, timeoutMs) // the DRs catching up, on stderr
    const s = await waitForRole(o.state, 'dr', 30_000)
    if (o.json) process.stdout.write(JSON.stringify({ ...r, role: s.role }, null, 2) + '\n')
    else process.stdout.write(`demoted at seq ${r.lastSeq}: every DR has it all; this node now follows ${r.follow} (promote that node next)\n`)
  })

common(program.command('verify'))
  .description('compare a running DR with its primary region by region, without stopping replication')
  .requiredOption('--state <dir>', 'state directory of the DR')
  .option('--repair', 'fetch again the regions that differ', false)
  .option('--json', 'print the report as JSON', false)
  .addHelpText('after', `
Example:
  volmirror verify --state ./drstate            # lists regions whose bytes differ from the primary's
  volmirror verify --state ./drstate --repair   # and fetches them again
Exit status: 0 when everything compared equal (or was repaired), 1 when differences remain.`)
  .action(async (o: CommonOpts & { state: string, repair: boolean, json: boolean }) => {
    const r = await verifyWithProgress(o.state, o.repair) // progress on stderr
    if (o.json) {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n')
    } else {
      process.stdout.write(`verified ${r.regionsChecked} regions of ${r.volumes} volume(s) in ${(r.durationMs / 1000).toFixed(1)} s: ` +
        `${r.mismatched.length} differ${o.repair ? `, ${r.repaired} repaired` : ''}; ${r.rechecked} checked again (changed meanwhile), ` +
        `${r.skippedAbsent} not hydrated yet${r.unsettled ? `, ${r.unsettled} kept changing` : ''}\n`)
      for (const m of r.mismatched) process.stdout.write(`  ${m.volume}  region ${m.region} (offset ${m.offset})\n`)
    }
    if (r.mismatched.length > r.repaired) process.exitCode = 1
  })

common(program.command('status'))
  .description('show what a running node is doing: volumes, journal, replication')
  .requiredOption('--state <dir>', 'state directory of the node')
  .option('--json', 'print the status as JSON (with --watch: one object per line)', false)
  .option('--watch', 'keep showing it until Ctrl-C: progress bars in a terminal, plain lines otherwise', false)
  .option('--interval <duration>', 'with --watch: how often (default 1s in a terminal, 5s otherwise)')
  .addHelpText('after', `
Example:
  volmirror status --state ./state
  volmirror status --state ./state --json | jq .journal
  volmirror status --state ./drstate --watch     # hydration bars per volume, lag; Ctrl-C ends it (exit 0)`)
  .action(async (o: CommonOpts & { state: string, json: boolean, watch: boolean, interval?: string }) => {
    if (o.interval !== undefined && !o.watch) throw new VolmirrorError('USAGE', '--interval goes with --watch')
    if (o.watch) {
      const intervalMs = o.interval !== undefined ? durationOption('--interval', o.interval) : (process.stdout.isTTY ? 1000 : 5000)
      const until = new Promise<string>(resolve => {
        process.once('SIGINT', () => resolve('SIGINT'))
        process.once('SIGTERM', () => resolve('SIGTERM'))
      })
      await watchStatus({ state: o.state, intervalMs, json: o.json, until })
      return
    }
    const s = await callControl<{ role: string } & Record<string, unknown>>(o.state, 'status')
    process.stdout.write((o.json ? JSON.stringify(s, null, 2) : formatStatus(s)) + '\n')
  })

addHistoryCommands(program)
addArchiveCommands(program)

program.command('completion')
  .description('print a shell completion script (bash or zsh)')
  .argument('<shell>', 'bash or zsh')
  .addHelpText('after', `
Example:
  volmirror completion bash > /etc/bash_completion.d/volmirror
  volmirror completion zsh > "\${fpath[1]}/_volmirror"`)
  .action((shell: string) => { process.stdout.write(completionScript(program, shell)) })

// `volmirror dr forget ID` (the `dr` command itself runs a DR node and requires its flags).
common(program.command('dr-forget', { hidden: true }))
  .configureHelp({ commandUsage: () => 'volmirror dr forget [options] <id>' })
  .description('forget a DR that is gone for good: it stops holding the primary\'s journal back (if it comes back, it syncs as a new DR)')
  .argument('<id>', 'the DR\'s node id, or its first characters (volmirror status --state PRIMARY lists them)')
  .requiredOption('--state <dir>', 'state directory of the primary')
  .option('--json', 'print what was forgotten as JSON', false)
  .action(async (id: string, o: CommonOpts & { state: string, json: boolean }) => {
    const r = await callControl<{ nodeId: string, ackedSeq: number, lastSeenAt: string }>(o.state, 'dr.forget', { id })
    if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n')
    else process.stdout.write(`forgot DR ${r.nodeId} (acknowledged seq ${r.ackedSeq}, last seen ${r.lastSeenAt}): it no longer holds the journal back\n`)
  })

common(program.command('demo'))
  .description('try volmirror on this machine: sample images, a primary and a DR as separate processes, live progress until the DR is consistent')
  .option('--dir <dir>', 'work directory (new or empty; default a new one under /var/tmp), removed at the end unless --keep')
  .option('--size <size>', 'size of the sample ext4 image (sparse)', '1G')
  .option('--hydrate-rate <rate>', 'the DR\'s background copy rate, per second (slow enough to watch)', '8M')
  .option('--duration <duration>', 'stop by itself after this long (for CI); then exit 0 only if the DR became consistent')
  .option('--keep', 'keep the work directory (images, state, node logs) after stopping', false)
  .addHelpText('after', `
Example:
  volmirror demo                                 # runs until Ctrl-C, then cleans up
  volmirror demo --dir ./demo --keep --size 4G   # keep everything for a look afterwards
  volmirror demo --duration 40s --size 256M      # bounded, for CI: exit 0 once consistent

Needs FUSE (/dev/fuse, fusermount) and mkfs.ext4 (e2fsprogs; without it the
sample image holds a pattern instead of a file system). Node logs go to
files in the work directory; the demo says where.`)
  .action(async (o: CommonOpts & { dir?: string, size: string, hydrateRate: string, duration?: string, keep: boolean }) => {
    const size = usage('--size', () => parseSize(o.size, '--size'))
    if (size < 32 * 1024 * 1024) throw new VolmirrorError('USAGE', '--size: at least 32M (the ext4 file system and its sample files)')
    usage('--hydrate-rate', () => parseRate(o.hydrateRate, '--hydrate-rate'))
    const durationMs = o.duration !== undefined ? durationOption('--duration', o.duration) : undefined
    const demo = new Demo({
      size, hydrateRate: o.hydrateRate, keep: o.keep, logLevel: o.logLevel, logFormat: o.logFormat,
      ...(o.dir !== undefined ? { dir: o.dir } : {}),
      ...(durationMs !== undefined ? { durationMs } : {}),
    })
    let signals = 0
    const onSignal = (signal: string): void => {
      if (++signals === 1) { demo.stop(signal); return }
      // A second Ctrl-C: do not wait for clean stops any more.
      void demo.kill().finally(() => process.exit(1))
    }
    process.on('SIGINT', () => onSignal('SIGINT'))
    process.on('SIGTERM', () => onSignal('SIGTERM'))
    // Output closed (`volmirror demo | head`): stop as on Ctrl-C.
    process.stdout.on('error', () => demo.stop('stdout closed'))
    process.exitCode = await demo.run()
  })

/**
 * applyConfigFile puts the values of `--config FILE` into the command
 * about to run, before the parser sees the command line (whose flags then
 * win, and which checks required flags with the file's values in place).
 */
async function applyConfigFile (args: string[]): Promise<void> {
  const { cmd, next } = commandFor(program, args)
  if (cmd === program) return
  const file = configPath(args.slice(next))
  if (file === undefined) return
  const flags = (c: Command): FlagSpec[] => c.options.filter(o => o.long).map(o => ({
    key: o.long!.slice(2), boolean: o.isBoolean(), ...(o.argChoices ? { choices: o.argChoices } : {}), ...(/<(dir|file)>/.test(o.flags) ? { path: true } : {}),
  }))
  const all = (c: Command): Command[] => c.commands.flatMap(x => [x, ...all(x)])
  const others = all(program).filter(c => c !== cmd).flatMap(c => flags(c).map(f => f.key))
  for (const [key, value] of await readConfig(file, flags(cmd), others)) {
    const opt = cmd.options.find(o => o.long === `--${key}`)!
    cmd.setOptionValueWithSource(opt.attributeName(), value, 'config')
  }
}

/** runUntilSignal keeps a node up until SIGINT/SIGTERM (or a failed role change), then closes it; a second signal forces the unmount. */
async function runUntilSignal (log: Logger, close: () => Promise<void>, mountPoint: string, failed?: Promise<never>): Promise<void> {
  await new Promise<void>((resolve) => {
    failed?.catch((err: unknown) => {
      log.error('node.failed', { err })
      process.exitCode = 1
      void forceUnmount(mountPoint).finally(resolve)
    })
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
  const args = process.argv.slice(2)
  if (args[0] === 'dr' && args[1] === 'forget') process.argv.splice(2, 2, 'dr-forget')
  checkUnknownOptions(program, process.argv.slice(2))
  await applyConfigFile(process.argv.slice(2))
  await program.parseAsync(process.argv)
  // process.exit drops what a pipe has not taken yet (a status --json of
  // 1,000 volumes is larger than a pipe holds): let stdout and stderr drain.
  await Promise.all([process.stdout, process.stderr].map(s => new Promise<void>(resolve => s.write('', () => resolve()))))
  process.exit(process.exitCode ?? 0)
} catch (err) {
  fail(err)
}
