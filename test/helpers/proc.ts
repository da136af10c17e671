/**
 * proc: run commands and volmirror nodes as child processes.
 *
 * Everything here is asynchronous: a test process that hosts a FUSE mount
 * must never block its main thread on a call into that mount (the handlers
 * run there). `run` never uses spawnSync.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { callControl } from '../../lib/control/control-socket.js'
import { defer, trackMount, trackPid, unmountHard, untrackPid } from './cleanup.js'

/** ROOT is the repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
/** CLI is the volmirror launcher. */
export const CLI = path.join(ROOT, 'bin', 'volmirror.js')

/** RunResult is what a finished command did. */
export interface RunResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/** run runs a command to completion (asynchronously) and collects its output. */
export function run (cmd: string, args: string[], opts: { input?: string | Buffer, env?: NodeJS.ProcessEnv, cwd?: string, timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] })
    trackPid(child.pid)
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => err.push(c))
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      untrackPid(child.pid)
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() })
    })
    child.stdin.end(opts.input)
  })
}

/** runOk runs a command and fails the test (with its output) unless it exits 0. */
export async function runOk (cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? r.signal}\n${r.stdout}\n${r.stderr}`)
  return r
}

/** cli runs `volmirror ARGS` to completion. */
export function cli (args: string[], opts: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], opts)
}

/** NodeProcess is a volmirror node running as a child process. */
export class NodeProcess {
  private readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  exit: { code: number | null, signal: NodeJS.Signals | null } | undefined
  stderr = ''

  constructor (readonly child: ChildProcess, readonly state: string, readonly mount: string) {
    child.stderr!.on('data', (c: Buffer) => { this.stderr += c.toString() })
    this.exited = new Promise(resolve => child.on('exit', (code, signal) => { this.exit = { code, signal }; untrackPid(child.pid); resolve({ code, signal }) }))
  }

  get pid (): number { return this.child.pid! }

  /** status asks the node for its status over the control socket. */
  status<T = any> (): Promise<T> {
    return callControl<T>(this.state, 'status')
  }

  /** stop sends SIGTERM and waits for the exit (SIGKILL after `ms`). */
  async stop (ms = 15_000): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    if (this.exit) return this.exit
    this.child.kill('SIGTERM')
    const t = setTimeout(() => this.child.kill('SIGKILL'), ms)
    const r = await this.exited
    clearTimeout(t)
    return r
  }

  /** kill9 kills the node at once, leaving its mount stale, as a crash would. */
  async kill9 (): Promise<void> {
    if (this.exit) return
    this.child.kill('SIGKILL')
    await this.exited
  }

  waitExit (): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    return this.exited
  }
}

/**
 * startNode starts `volmirror ARGS` and waits until its control socket
 * answers. Teardown stops it and unmounts `mount` even if the test fails.
 */
export async function startNode (args: string[], opts: { state: string, mount: string, env?: NodeJS.ProcessEnv, timeoutMs?: number }): Promise<NodeProcess> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  trackPid(child.pid)
  trackMount(opts.mount)
  const node = new NodeProcess(child, opts.state, opts.mount)
  defer(async () => {
    await node.stop()
    await unmountHard(opts.mount)
  })
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000)
  for (;;) {
    if (node.exit) throw new Error(`node exited (${node.exit.code ?? node.exit.signal}) before it was ready:\n${node.stderr}`)
    if (await node.status().then(() => true, () => false)) return node
    if (Date.now() > deadline) throw new Error(`node on ${opts.state} did not answer status in time:\n${node.stderr}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
