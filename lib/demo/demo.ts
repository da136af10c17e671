/**
 * demo: `volmirror demo`, the whole tool on one machine in one command.
 *
 * In a work directory it makes sample images (lib/demo/sample.ts), starts
 * a primary and a DR as separate processes talking HTTP on loopback
 * (lib/demo/child-node.ts), keeps writing to the primary's mount
 * (lib/demo/writer.ts), and shows the DR filling in (a hydration bar per
 * volume, lag, applied seq) until it is consistent. Then it says where
 * everything is and what to try, and goes on (still writing, showing lag)
 * until stopped: `stop()` (Ctrl-C) or the duration. Stopping ends the
 * writer, stops both nodes (SIGTERM, wait, unmount) and removes what the
 * demo created unless asked to keep it.
 */
import { lagText } from '../cli/format-status.js'
import { constants, statSync } from 'node:fs'
import { access, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import path from 'node:path'
import { formatBytes } from '../cli/parse.js'
import { ProgressView } from '../cli/progress.js'
import { VolmirrorError } from '../errors.js'
import { isMounted } from '../fuse/mount.js'
import type { DrStatus } from '../node/status.js'
import type { PrimaryStatus } from '../node/status.js'
import { ChildNode, LAUNCHER } from './child-node.js'
import { DATA_IMAGE, DATA_IMAGE_SIZE, makeSample } from './sample.js'
import { Writer } from './writer.js'

/** DemoOptions are the flags of `volmirror demo`. */
export interface DemoOptions {
  /** Work directory (must not exist, or be empty); default a new one under /var/tmp. */
  dir?: string
  /** Keep the work directory (images, state, logs) after stopping. */
  keep?: boolean
  /** Size of the sample ext4 image (sparse). */
  size: number
  /** Stop by itself after this long (ms); exit status then says whether the DR became consistent. */
  durationMs?: number
  /** The DR's --hydrate-rate, as typed (`8M`). */
  hydrateRate: string
  /** Log level and format of the two nodes (their logs go to files). */
  logLevel?: string
  logFormat?: string
  /** Where the demo writes (default stdout); bars when it is a terminal. */
  out?: NodeJS.WriteStream | NodeJS.WritableStream
  /** How often plain progress lines are written when not in a terminal (default 3 s). */
  plainIntervalMs?: number
}

class Stopped extends Error {}

/** Demo runs one demo; `run` resolves with the exit status. */
export class Demo {
  private readonly out: NodeJS.WritableStream
  private view: ProgressView | undefined
  private readonly nodes: ChildNode[] = []
  private writer: Writer | undefined
  private stopReason: string | undefined
  private wakeStop: (() => void) | undefined
  private readonly stopped: Promise<void>
  private work: string | undefined
  private createdWork = false
  private consistentAt: number | undefined
  private readonly startedAt = Date.now()

  constructor (private readonly opts: DemoOptions) {
    this.out = opts.out ?? process.stdout
    this.stopped = new Promise(resolve => { this.wakeStop = resolve })
  }

  /** stop asks the demo to end (Ctrl-C); `run` then cleans up and resolves. */
  stop (reason: string): void {
    this.stopReason ??= reason
    this.wakeStop?.()
  }

  /** kill ends the nodes at once (a second Ctrl-C) and removes their mounts; the work directory is kept. */
  async kill (): Promise<void> {
    this.view?.stop()
    await Promise.all(this.nodes.map(n => n.kill().catch(() => {})))
  }

  private say (text: string): void {
    if (this.view) this.view.print(text)
    else this.out.write(text + '\n')
  }

  private checkStop (): void {
    if (this.stopReason !== undefined) throw new Stopped(this.stopReason)
  }

  /**
   * run does the whole demo and cleans up; resolves with 0 (ok, or stopped)
   * or 1 (not consistent by the end of --duration, or something was left
   * behind). A failure is thrown after the cleanup (bad flags as USAGE),
   * once the end of each node's log has been shown on stderr.
   */
  async run (): Promise<number> {
    let code = 0
    let failure: unknown
    let tails = ''
    try {
      await this.start()
      code = await this.watch()
    } catch (err) {
      if (!(err instanceof Stopped)) {
        failure = err
        // Read before the cleanup removes the logs.
        for (const n of this.nodes) {
          const tail = await logTail(n.logFile, 5)
          if (tail) tails += `last lines of the ${n.name}'s log:\n${tail.replace(/^/gm, '  ')}\n`
        }
      }
    } finally {
      this.endView()
      if (!(await this.cleanup())) code = 1
    }
    if (failure !== undefined) {
      process.stderr.write(tails)
      throw failure
    }
    return code
  }

  private async start (): Promise<void> {
    const work = await this.prepareDir()
    const d = dirs(work)
    this.say(`volmirror demo: working in ${work}`)
    for (const p of [d.primaryImages, d.primaryMnt, d.drImages, d.drMnt]) await mkdir(p, { recursive: true })
    const sample = await makeSample(d.primaryImages, work, this.opts.size)
    this.ext4 = sample.ext4
    for (const i of sample.images) this.say(`  ${i.name.padEnd(9)} ${formatBytes(i.size).padStart(9)}  ${i.what}`)
    this.checkStop()
    const level = ['--log-level', this.opts.logLevel ?? 'info', '--log-format', this.opts.logFormat ?? 'text']
    const primary = await ChildNode.start('primary', ['primary', '--images', d.primaryImages, '--state', d.primaryState, '--mount', d.primaryMnt,
      '--listen', '127.0.0.1:0', ...level], { state: d.primaryState, mount: d.primaryMnt, logFile: d.primaryLog })
    this.nodes.push(primary)
    const url = (await primary.status<PrimaryStatus>()).listen
    if (!url) throw new VolmirrorError('IO_ERROR', `the primary does not say where it listens; see ${d.primaryLog}`)
    this.url = url
    this.say(`primary  pid ${primary.pid}, serving DRs at ${url}, mount ${d.primaryMnt}, log ${d.primaryLog}`)
    this.checkStop()
    const dr = await ChildNode.start('DR', ['dr', '--images', d.drImages, '--state', d.drState, '--mount', d.drMnt,
      '--primary', url, '--token-file', path.join(d.primaryState, 'token'), '--hydrate-rate', this.opts.hydrateRate, ...level],
    { state: d.drState, mount: d.drMnt, logFile: d.drLog })
    this.nodes.push(dr)
    const rate = /^(unlimited|max|inf)$/i.test(this.opts.hydrateRate) ? 'as fast as it can' : `at ${this.opts.hydrateRate.replace(/\/s$/i, '')}/s`
    this.say(`DR       pid ${dr.pid}, following it, hydrating ${rate}, mount ${d.drMnt}, log ${d.drLog}`)
    this.writer = new Writer(path.join(d.primaryMnt, DATA_IMAGE), DATA_IMAGE_SIZE)
    this.writer.start()
    this.say(`writer   writing 64 KiB blocks to ${path.join(d.primaryMnt, DATA_IMAGE)} (10 a second, fdatasync every 10)`)
    this.say('')
    this.checkStop()
  }

  private url = ''
  private ext4 = true

  /** watch shows progress until stopped, the duration ends, or something fails; returns the exit status. */
  private async watch (): Promise<number> {
    const [primary, dr] = this.nodes as [ChildNode, ChildNode]
    const d = dirs(this.work!)
    this.view = new ProgressView({ stream: this.out as NodeJS.WriteStream, plainIntervalMs: this.opts.plainIntervalMs ?? 3000 })
    const deadline = this.opts.durationMs !== undefined ? this.startedAt + this.opts.durationMs : undefined
    for (;;) {
      for (const n of this.nodes) {
        if (n.exit) throw new VolmirrorError('IO_ERROR', `the ${n.name} stopped unexpectedly (${n.exit.code ?? n.exit.signal}); see ${n.logFile}`)
      }
      if (this.writer?.error) throw new VolmirrorError('IO_ERROR', `writing through the primary's mount failed: ${this.writer.error.message}`)
      const [p, s] = await Promise.all([primary.status<PrimaryStatus>(), dr.status<DrStatus>()]).catch(() => [undefined, undefined])
      if (p && s) this.show(p, s, d)
      if (this.stopReason !== undefined) {
        this.endView()
        this.say(`\nstopping (${this.stopReason})`)
        return 0
      }
      if (deadline !== undefined && Date.now() >= deadline) {
        this.endView()
        const ok = this.consistentAt !== undefined
        this.say(`\n--duration ended after ${((Date.now() - this.startedAt) / 1000).toFixed(1)} s: ` +
          (ok ? 'the DR became consistent' : 'the DR did NOT become consistent'))
        return ok ? 0 : 1
      }
      await Promise.race([this.stopped, new Promise(resolve => setTimeout(resolve, 500))])
    }
  }

  /** endView writes the last progress (plain lines now, or the last frame) and leaves the terminal to plain writes. */
  private endView (): void {
    this.view?.flush()
    this.view?.stop()
    this.view = undefined
  }

  private show (p: PrimaryStatus, s: DrStatus, d: Dirs): void {
    const view = this.view!
    const rs = s.regionSize
    const names = (vs: Array<{ name: string }>): string => vs.map(v => v.name).sort().join('\n')
    const registered = s.primary.id !== undefined && s.volumes.length > 0 && names(s.volumes) === names(p.volumes)
    const resyncing = s.resync !== undefined && !s.consistent
    for (const v of s.volumes) {
      view.update(`vol:${v.name}`, {
        label: v.name, kind: resyncing ? 'resync ' : 'hydrate',
        done: Math.min(v.size, v.regions.present * rs), total: v.size,
      })
    }
    const w = this.writer!.counters
    view.text('lag', registered
      ? `DR ${s.consistent ? 'CONSISTENT' : 'inconsistent'}  lag ${lagText(s.lag)}  applied seq ${s.seq.applied} of ${s.lag.primaryLastSeq ?? '?'}  ` +
        `writer ${formatBytes(w.bytes)} in ${w.writes} writes${s.lag.connected ? '' : '  (link down)'}`
      : 'waiting for the DR to register with the primary')
    if (this.consistentAt === undefined && registered && s.consistent) {
      this.consistentAt = Date.now()
      view.flush()
      this.say(`\nDR is consistent after ${((this.consistentAt - this.startedAt) / 1000).toFixed(1)} s: every region copied or compared, ` +
        `a failover target as of seq ${s.seq.applied} (lag ${lagText(s.lag)})\n`)
      this.say(this.nextSteps(d))
    }
  }

  private nextSteps (d: Dirs): string {
    const vm = commandName()
    const sudo = process.getuid?.() === 0 ? '' : 'sudo '
    const token = `$(cat ${path.join(d.primaryState, 'token')})`
    const lines = [
      'Both sides are up. Try, in another terminal:',
      `  ls -ls ${d.primaryMnt} ${d.drMnt}`,
      `  cmp ${path.join(d.primaryMnt, 'disk.img')} ${path.join(d.drMnt, 'disk.img')} && echo same`,
      ...!this.ext4 ? [] : [`  ${sudo}mkdir -p /mnt/vmdemo && ${sudo}mount -o ro,loop ${path.join(d.drMnt, 'disk.img')} /mnt/vmdemo && (cd /mnt/vmdemo && sha256sum -c SHA256SUMS); ${sudo}umount /mnt/vmdemo`],
      `  ${vm} status --state ${d.drState} --watch`,
      `  ${vm} status --state ${d.primaryState}`,
      `  ${vm} verify --state ${d.drState}`,
      `  curl -H "Authorization: Bearer ${token}" ${this.url}/metrics`,
      `  curl -H "Authorization: Bearer ${token}" ${this.url}/      (the status page)`,
      `Node logs: ${d.primaryLog}, ${d.drLog}`,
      this.opts.durationMs !== undefined
        ? `The demo stops by itself ${Math.round(this.opts.durationMs / 1000)} s after it started (or at Ctrl-C), then unmounts everything${this.opts.keep ? '' : ` and removes ${this.work}`}.`
        : `Ctrl-C stops the writer and both nodes, unmounts them${this.opts.keep ? ` and keeps ${this.work}` : ` and removes ${this.work} (--keep keeps it)`}.`,
      '',
    ]
    return lines.join('\n')
  }

  /** prepareDir makes the work directory (a new temp one, or --dir, which must not exist or be empty). */
  private async prepareDir (): Promise<string> {
    if (this.opts.dir === undefined) {
      const base = await access('/var/tmp', constants.W_OK).then(() => '/var/tmp', () => (process.env.TMPDIR ?? '/tmp'))
      this.work = await mkdtemp(path.join(base, 'volmirror-demo-'))
      this.createdWork = true
      return this.work
    }
    const dir = path.resolve(this.opts.dir)
    const entries = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw new VolmirrorError('USAGE', `--dir: cannot use ${dir}: ${err.code ?? err.message}`)
    })
    if (entries && entries.length > 0) throw new VolmirrorError('USAGE', `--dir: ${dir} is not empty; give a new or empty directory`)
    if (!entries) {
      await mkdir(dir, { recursive: true })
      this.createdWork = true
    }
    this.work = dir
    return dir
  }

  /** cleanup stops the writer and the nodes and removes the work directory (unless kept); false if something is left behind. */
  private async cleanup (): Promise<boolean> {
    let ok = true
    await this.writer?.stop()
    // The DR first: it would only retry against a primary that went away.
    for (const n of [...this.nodes].reverse()) {
      await n.stop()
      const exit = n.exit
      this.say(`${n.name} stopped${exit && exit.code !== 0 ? ` (exit ${exit.code ?? exit.signal})` : ''}`)
    }
    if (!this.work) return ok
    const d = dirs(this.work)
    const stillMounted: string[] = []
    for (const m of [d.primaryMnt, d.drMnt]) if (await isMounted(m)) stillMounted.push(m)
    if (stillMounted.length > 0) {
      // Never remove a directory tree through a live mount: it would delete the images behind it.
      this.say(`volmirror demo: still mounted: ${stillMounted.join(', ')}; kept ${this.work} (unmount with fusermount -u, then remove it)`)
      return false
    }
    if (this.opts.keep) {
      this.say(`kept ${this.work} (images, state directories, logs)`)
      return ok
    }
    try {
      if (this.createdWork) await rm(this.work, { recursive: true, force: true })
      else for (const e of await readdir(this.work)) await rm(path.join(this.work, e), { recursive: true, force: true })
      this.say(`removed ${this.work}`)
    } catch (err) {
      ok = false
      this.say(`volmirror demo: could not remove ${this.work}: ${(err as Error).message}`)
    }
    return ok
  }
}

interface Dirs {
  primaryImages: string
  primaryState: string
  primaryMnt: string
  primaryLog: string
  drImages: string
  drState: string
  drMnt: string
  drLog: string
}

function dirs (work: string): Dirs {
  return {
    primaryImages: path.join(work, 'primary', 'images'),
    primaryState: path.join(work, 'primary', 'state'),
    primaryMnt: path.join(work, 'primary', 'mnt'),
    primaryLog: path.join(work, 'primary.log'),
    drImages: path.join(work, 'dr', 'images'),
    drState: path.join(work, 'dr', 'state'),
    drMnt: path.join(work, 'dr', 'mnt'),
    drLog: path.join(work, 'dr.log'),
  }
}

/** commandName is how the user runs volmirror: `volmirror` when that is on PATH, else node and the launcher. */
function commandName (): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && pathExistsSync(path.join(dir, 'volmirror'))) return 'volmirror'
  }
  return `node ${LAUNCHER}`
}

function pathExistsSync (p: string): boolean {
  try {
    // A cheap synchronous check; the demo hosts no mount.
    return statSync(p).isFile()
  } catch {
    return false
  }
}

async function logTail (file: string, lines: number): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}
