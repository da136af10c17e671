/**
 * fsync-writers: child processes that write to a mount and log what the
 * node acknowledged (test/helpers/crash-writer.ts), for tests that kill a
 * node under them; and the plans they run.
 *
 *   const w = await startWriter({ kind: 'data', file, groups: dataPlan(r, slots, 200) }, dir, 'w1')
 *   await waitFor('10 acks', async () => (await ackCount([w])) >= 10)
 *
 * A writer is killed (by PID) in teardown if it still runs.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { defer, trackPid, untrackPid } from './cleanup.js'
import { CRASH_WRITER, type CrashPlan, type DataWrite } from './crash-writer.js'
import { waitFor } from './wait.js'

/** LogLine is one line of a writer's log. */
export type LogLine = { ack: number } & Partial<DataWrite> | { begin: number } | { stop: string } | { done: true }

/** Writer is a running (or finished) writer process. */
export interface Writer { logFile: string, exit: { code: number | null, signal: string | null } | undefined, stderr: string }

/** startWriter runs crash-writer.ts on `plan`; teardown kills it (by PID) if it is still running. */
export async function startWriter (plan: CrashPlan, dir: string, name: string): Promise<Writer> {
  const planFile = path.join(dir, `${name}.plan.json`)
  const logFile = path.join(dir, `${name}.log`)
  await writeFile(planFile, JSON.stringify(plan))
  await writeFile(logFile, '')
  const child = spawn(process.execPath, [CRASH_WRITER, planFile, logFile], { stdio: ['ignore', 'ignore', 'pipe'] })
  trackPid(child.pid)
  const w: Writer = { logFile, exit: undefined, stderr: '' }
  child.stderr.on('data', (c: Buffer) => { w.stderr += c.toString() })
  const exited = new Promise<void>(resolve => child.on('exit', (code, signal) => {
    w.exit = { code, signal }
    untrackPid(child.pid)
    resolve()
  }))
  defer(async () => {
    if (w.exit) return
    child.kill('SIGKILL')
    await exited
  })
  return w
}

/** readLog parses the complete lines of a writer's log. */
export async function readLog (file: string): Promise<LogLine[]> {
  const text = await readFile(file, 'utf8')
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean).map(l => JSON.parse(l) as LogLine)
}

/** ackCount counts the acknowledged operations the writers logged so far. */
export async function ackCount (writers: Writer[]): Promise<number> {
  let n = 0
  for (const w of writers) n += (await readLog(w.logFile)).filter(l => 'ack' in l).length
  return n
}

/** acked lists the data writes a writer logged as acknowledged. */
export async function acked (w: Writer): Promise<DataWrite[]> {
  return (await readLog(w.logFile)).flatMap(l => 'ack' in l ? [{ offset: l.offset!, length: l.length!, seed: l.seed! }] : [])
}

/** stopReason waits for a writer to exit after the node died and returns why it stopped. */
export async function stopReason (w: Writer): Promise<string> {
  await waitFor('the writer to stop after the node died', () => w.exit, 30_000)
  assert.equal(w.exit!.code, 0, `writer failed: ${w.stderr}`)
  const last = (await readLog(w.logFile)).at(-1)
  assert.ok(last && ('stop' in last || 'done' in last), `the writer logged why it stopped: ${JSON.stringify(last)}`)
  return 'stop' in last ? last.stop : 'done'
}

/**
 * dataPlan takes `count` slots (of `slotSize` bytes) from `slots` and makes
 * groups of 1..6 writes, each group followed by an fsync: 4 KiB..128 KiB,
 * page-aligned, one FUSE write each (max_write=131072).
 */
export function dataPlan (r: () => number, slots: number[], count: number, slotSize = 128 * 1024): DataWrite[][] {
  const groups: DataWrite[][] = []
  let n = 0
  while (n < count) {
    const group: DataWrite[] = []
    const size = 1 + Math.floor(r() * 6)
    for (let k = 0; k < size && n < count; k++, n++) {
      const slot = slots.pop()!
      group.push({ offset: slot * slotSize, length: 4096 * (1 + Math.floor(r() * Math.min(32, slotSize / 4096))), seed: Math.floor(r() * 0x7fffffff) })
    }
    groups.push(group)
  }
  return groups
}
