/**
 * exec: run commands asynchronously and collect their output.
 *
 * Never spawnSync: a process that waits on a mount must not block its own
 * event loop. Every child started here is remembered until it exits, so an
 * interrupted run can kill exactly the processes it started (by PID).
 */
import { spawn } from 'node:child_process'

const live = new Set<number>()

/** RunResult is what a finished command did; `ms` is its wall-clock time. */
export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

/** RunOptions: `timeoutMs` kills the command (SIGKILL) when it runs longer. */
export interface RunOptions {
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
  cwd?: string
}

/** run runs `cmd args` to completion, with LC_ALL=C so tools print parsable numbers. */
export function run (cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn(cmd, args, {
      env: { ...process.env, LC_ALL: 'C', ...opts.env },
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    if (child.pid) live.add(child.pid)
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => err.push(c))
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined
    child.on('error', (e) => { clearTimeout(timer); if (child.pid) live.delete(child.pid); reject(e) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (child.pid) live.delete(child.pid)
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - started })
    })
  })
}

/** runOk runs a command and throws (with its output) unless it exits 0. */
export async function runOk (cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) {
    const how = r.signal ? `was killed by ${r.signal}` : `exited ${r.code}`
    throw new Error(`${cmd} ${args.join(' ')} ${how}\n${tail(r.stderr || r.stdout, 2000)}`)
  }
  return r
}

/** killStarted SIGKILLs every command started by `run` that is still running. */
export function killStarted (): void {
  for (const pid of live) {
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
  live.clear()
}

/** tail returns the last `n` characters of `s`. */
export function tail (s: string, n: number): string {
  return s.length <= n ? s : '…' + s.slice(-n)
}
