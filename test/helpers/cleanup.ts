/**
 * cleanup: teardown that runs even when a test fails.
 *
 * `defer(fn)` inside a test (or a hook) registers a teardown step; the root
 * afterEach hook runs them in reverse order. Processes and mounts are also
 * recorded globally, and the root afterAll hook kills (by PID) and unmounts
 * whatever is still there, so one broken test cannot leave a mount behind.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'

type Step = () => unknown
const steps: Step[] = []
const pids = new Set<number>()
const mounts = new Set<string>()

/** defer registers a teardown step for the current test. */
export function defer (fn: Step): void {
  steps.push(fn)
}

/** trackPid records a child process to kill if it outlives the tests. */
export function trackPid (pid: number | undefined): void {
  if (pid) pids.add(pid)
}

export function untrackPid (pid: number | undefined): void {
  if (pid) pids.delete(pid)
}

/** trackMount records a mount point to unmount if it outlives the tests. */
export function trackMount (dir: string): void {
  mounts.add(dir)
}

/** runDeferred runs and clears the registered steps, newest first, never throwing. */
export async function runDeferred (): Promise<void> {
  while (steps.length > 0) {
    const fn = steps.pop()!
    try { await fn() } catch (err) { console.error('teardown step failed:', err) }
  }
}

async function mountedAt (dir: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  return text.split('\n').some(l => l.split(' ')[4] === dir)
}

function run (cmd: string, args: string[]): Promise<void> {
  return new Promise(resolve => execFile(cmd, args, () => resolve()))
}

/** unmountHard removes a mount (even a stale one) at `dir`. */
export async function unmountHard (dir: string): Promise<void> {
  if (!(await mountedAt(dir))) return
  await run('fusermount', ['-uz', dir])
  if (await mountedAt(dir)) await run('umount', ['-l', dir])
}

/** sweep kills tracked processes and unmounts tracked mounts that are still there. */
export async function sweep (): Promise<void> {
  for (const pid of pids) {
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
  pids.clear()
  for (const dir of mounts) await unmountHard(dir)
  mounts.clear()
}
