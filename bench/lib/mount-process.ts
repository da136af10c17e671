/**
 * mount-process: a child process that hosts a FUSE mount (bindfs, a
 * volmirror primary, the bare passthrough), started, awaited and stopped
 * the same way for all of them; also a plain server with no mount (nginx,
 * qemu-nbd, an rsync daemon: leave out `mountPoint` and give `ready`).
 *
 * The child's output goes to a log file (a pipe nobody drains would stall
 * it); on failure its tail is in the error. `stop` sends SIGTERM (each of
 * these daemons unmounts on it), waits, SIGKILLs after a grace period, and
 * removes a mount left behind. Only the child's own PID is ever signalled.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { open, readFile } from 'node:fs/promises'
import type { Cleanup } from './cleanup.js'
import { tail } from './exec.js'
import { forceUnmount, isMountpoint } from './mounts.js'

/** MountProcessOptions describe the daemon; it must stay in the foreground. */
export interface MountProcessOptions {
  /** Short name for messages. */
  name: string
  cmd: string
  args: string[]
  env?: NodeJS.ProcessEnv
  /** The mount it hosts; absent for a plain server (then `ready` alone says when it is up). */
  mountPoint?: string
  logFile: string
  cleanup: Cleanup
  /** Extra readiness check after the mount shows up (e.g. the control socket answers). */
  ready?: () => Promise<boolean>
  startTimeoutMs?: number
  /** How long `stop` waits after SIGTERM before SIGKILL. */
  stopTimeoutMs?: number
}

/** MountProcess is a running mount daemon. */
export class MountProcess {
  private exitInfo: { code: number | null, signal: NodeJS.Signals | null } | undefined
  private readonly exited: Promise<void>
  private unregister: () => void = () => {}

  private constructor (readonly opts: MountProcessOptions, readonly child: ChildProcess) {
    this.exited = new Promise(resolve => child.once('exit', (code, signal) => { this.exitInfo = { code, signal }; resolve() }))
  }

  /** start spawns the daemon and resolves once its mount is up (and `ready` says yes). */
  static async start (opts: MountProcessOptions): Promise<MountProcess> {
    const log = await open(opts.logFile, 'a')
    let child: ChildProcess
    try {
      child = spawn(opts.cmd, opts.args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', log.fd, log.fd] })
    } finally {
      await log.close()
    }
    const mp = new MountProcess(opts, child)
    child.once('error', () => {})
    mp.unregister = opts.cleanup.add(`stop ${opts.name}`, () => mp.stop())
    try {
      await mp.waitReady()
    } catch (err) {
      await mp.stop()
      throw err
    }
    return mp
  }

  /** pid is the daemon's process id. */
  get pid (): number | undefined { return this.child.pid }

  private async waitReady (): Promise<void> {
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 30_000)
    for (;;) {
      if (this.exitInfo) throw new Error(`${this.opts.name} exited (${this.exitInfo.code ?? this.exitInfo.signal}) before it was up:\n${await this.logTail()}`)
      if ((this.opts.mountPoint === undefined || await isMountpoint(this.opts.mountPoint)) && (!this.opts.ready || await this.opts.ready().catch(() => false))) return
      if (Date.now() > deadline) throw new Error(`${this.opts.name} was not up in time${this.opts.mountPoint ? ` (mount ${this.opts.mountPoint})` : ''}:\n${await this.logTail()}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }

  /** logTail is the end of the daemon's output, for error messages. */
  async logTail (n = 3000): Promise<string> {
    return tail(await readFile(this.opts.logFile, 'utf8').catch(() => ''), n)
  }

  /** stop ends the daemon (SIGTERM, then SIGKILL) and removes its mount if it is still there; safe to call twice. */
  async stop (): Promise<void> {
    this.unregister()
    if (!this.exitInfo && this.child.pid) {
      this.child.kill('SIGTERM')
      const timer = setTimeout(() => this.child.kill('SIGKILL'), this.opts.stopTimeoutMs ?? 60_000)
      await this.exited
      clearTimeout(timer)
    }
    if (this.opts.mountPoint !== undefined && !(await forceUnmount(this.opts.mountPoint))) {
      process.stderr.write(`bench: ${this.opts.mountPoint} is still mounted; run: umount -l ${this.opts.mountPoint}\n`)
    }
  }

  /** exit is how the daemon ended (undefined while it runs). */
  get exit (): { code: number | null, signal: NodeJS.Signals | null } | undefined { return this.exitInfo }
}
