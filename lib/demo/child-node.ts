/**
 * child-node: a volmirror node run by the demo as a separate process.
 *
 * The node runs `bin/volmirror.js` with its log in a file. It is started
 * in its own process group, so a Ctrl-C in the terminal reaches only the
 * demo, which then stops the nodes in order (SIGTERM, wait, unmount) and
 * never twice (a second signal would make a node force its unmount).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { open } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { callControl } from '../control/control-socket.js'
import { VolmirrorError } from '../errors.js'
import { forceUnmount, isMounted } from '../fuse/mount.js'

/** LAUNCHER is bin/volmirror.js of this installation. */
export const LAUNCHER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'volmirror.js')

/** ChildNode is a running node process. */
export class ChildNode {
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  exit: { code: number | null, signal: NodeJS.Signals | null } | undefined
  private stopping: Promise<void> | undefined

  private constructor (readonly name: string, readonly child: ChildProcess, readonly state: string, readonly mount: string, readonly logFile: string) {
    this.exited = new Promise(resolve => child.once('exit', (code, signal) => { this.exit = { code, signal }; resolve({ code, signal }) }))
  }

  get pid (): number { return this.child.pid ?? 0 }

  /**
   * start runs `volmirror ARGS` with its log in `logFile` and waits until
   * it answers `status` on its control socket (or fails, with the end of
   * its log in the message).
   */
  static async start (name: string, args: string[], o: { state: string, mount: string, logFile: string, timeoutMs?: number }): Promise<ChildNode> {
    const log = await open(o.logFile, 'a')
    let child: ChildProcess
    try {
      child = spawn(process.execPath, [LAUNCHER, ...args], { stdio: ['ignore', log.fd, log.fd], detached: true })
    } finally {
      await log.close()
    }
    const node = new ChildNode(name, child, o.state, o.mount, o.logFile)
    child.on('error', () => {})
    // Should the demo die without stopping its nodes (a crash, a closed
    // stdout), they are in their own process groups and would live on:
    // ask them to stop (they unmount on SIGTERM).
    const orphan = (): void => { if (!node.exit) child.kill('SIGTERM') }
    process.once('exit', orphan)
    void node.exited.then(() => process.off('exit', orphan))
    const deadline = Date.now() + (o.timeoutMs ?? 30_000)
    for (;;) {
      if (node.exit) throw new VolmirrorError('IO_ERROR', `the ${name} exited (${node.exit.code ?? node.exit.signal}) before it was ready; see ${o.logFile}`)
      if (await node.status().then(() => true, () => false)) return node
      if (Date.now() > deadline) {
        await node.stop()
        throw new VolmirrorError('TIMEOUT', `the ${name} did not come up within ${Math.round((o.timeoutMs ?? 30_000) / 1000)} s; see ${o.logFile}`)
      }
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }

  /** status asks the node over its control socket. */
  status<T> (): Promise<T> {
    return callControl<T>(this.state, 'status', {}, 5000)
  }

  /** stop sends SIGTERM once, waits (SIGKILL after `timeoutMs`), then makes sure nothing is left mounted. */
  stop (timeoutMs = 30_000): Promise<void> {
    this.stopping ??= (async () => {
      if (!this.exit) {
        this.child.kill('SIGTERM')
        const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs)
        await this.exited
        clearTimeout(t)
      }
      if (await isMounted(this.mount)) await forceUnmount(this.mount)
    })()
    return this.stopping
  }

  /** kill ends the process at once (a second Ctrl-C) and removes its mount. */
  async kill (): Promise<void> {
    if (!this.exit) this.child.kill('SIGKILL')
    await this.exited
    await forceUnmount(this.mount)
  }
}
