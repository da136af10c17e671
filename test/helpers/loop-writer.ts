/**
 * loop-writer: writes through a mount from a child process until told to
 * stop, and logs every write only after its fsync returned.
 *
 * Write i is `pattern(seed + i, length)` at `offset + (i % slots) * length`:
 * with `slots` >= the number of writes no two writes overlap, so every
 * acknowledged write must be found exactly; with fewer slots later writes
 * overwrite earlier ones (the last of each slot is what must be there).
 * Groups of `group` writes are followed by one fsync, then acknowledged;
 * `pauseMs` between groups paces the load (this is load shaping, not a
 * synchronisation: the test waits for acknowledgements, never for time).
 *
 * The test side (`startLoopWriter`) spawns the child, counts its acks,
 * stops it (a stop file it checks between groups) and reads its log. Log
 * lines (a file on a normal disk, never on the mount) are JSON:
 *
 *   {"ack": i, "offset": ..., "length": ..., "seed": ...}
 *   {"stop": "ENOTCONN"}   a write or fsync failed (the node died)
 *   {"done": true}         the stop file appeared, or `count` writes were made
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { defer, trackPid, untrackPid } from './cleanup.js'
import { pattern } from './pattern.js'
import { waitFor } from './wait.js'

/** LoopPlan is what the child writes. */
export interface LoopPlan {
  file: string
  offset: number
  length: number
  slots: number
  seed: number
  /** Writes per fsync (default 1). */
  group?: number
  /** Stop after this many writes (default: until the stop file appears). */
  count?: number
  pauseMs?: number
  stopFile: string
}

/** LoopAck is one acknowledged write. */
export interface LoopAck { ack: number, offset: number, length: number, seed: number }

const SCRIPT = fileURLToPath(import.meta.url)

function child (planFile: string, logFile: string): void {
  const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')) as LoopPlan
  const logFd = fs.openSync(logFile, 'a')
  const log = (o: object): void => { fs.writeSync(logFd, JSON.stringify(o) + '\n') }
  const group = plan.group ?? 1
  const count = plan.count ?? Infinity
  const sleeper = new Int32Array(new SharedArrayBuffer(4))
  try {
    const fd = fs.openSync(plan.file, 'r+')
    let i = 0
    while (i < count && !fs.existsSync(plan.stopFile)) {
      const done: LoopAck[] = []
      for (let k = 0; k < group && i < count; k++, i++) {
        const w = { ack: i, offset: plan.offset + (i % plan.slots) * plan.length, length: plan.length, seed: plan.seed + i }
        const data = pattern(w.seed, w.length)
        let n = 0
        while (n < data.length) n += fs.writeSync(fd, data, n, data.length - n, w.offset + n)
        done.push(w)
      }
      fs.fsyncSync(fd)
      for (const w of done) log(w)
      if (plan.pauseMs) Atomics.wait(sleeper, 0, 0, plan.pauseMs)
    }
    fs.closeSync(fd)
    log({ done: true })
  } catch (err) {
    log({ stop: (err as NodeJS.ErrnoException).code ?? String(err) })
  }
}

/** LoopWriter is a running writer child. */
export interface LoopWriter {
  /** acks reads the writes acknowledged so far. */
  acks: () => Promise<LoopAck[]>
  /** waitAcks waits until at least `n` writes were acknowledged. */
  waitAcks: (n: number, timeoutMs?: number) => Promise<void>
  /** stop asks the writer to stop after its current group and waits for it; returns how it ended. */
  stop: () => Promise<string>
  /** ended waits for the writer to exit by itself (its node died, or `count` was reached); returns how it ended. */
  ended: (timeoutMs?: number) => Promise<string>
}

/** startLoopWriter runs a writer child on `plan` (minus the stop file, made here); teardown kills it by PID. */
export async function startLoopWriter (dir: string, name: string, plan: Omit<LoopPlan, 'stopFile'>): Promise<LoopWriter> {
  const planFile = path.join(dir, `${name}.plan.json`)
  const logFile = path.join(dir, `${name}.log`)
  const stopFile = path.join(dir, `${name}.stop`)
  await writeFile(planFile, JSON.stringify({ ...plan, stopFile }))
  await writeFile(logFile, '')
  const proc = spawn(process.execPath, [SCRIPT, planFile, logFile], { stdio: ['ignore', 'ignore', 'pipe'] })
  trackPid(proc.pid)
  let exit: { code: number | null, signal: string | null } | undefined
  let stderr = ''
  proc.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const exited = new Promise<void>(resolve => proc.on('exit', (code, signal) => { exit = { code, signal }; untrackPid(proc.pid); resolve() }))
  defer(async () => {
    if (exit) return
    proc.kill('SIGKILL')
    await exited
  })
  const lines = async (): Promise<Array<Record<string, unknown>>> => {
    const text = await readFile(logFile, 'utf8')
    return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean).map(l => JSON.parse(l) as Record<string, unknown>)
  }
  const acks = async (): Promise<LoopAck[]> => (await lines()).filter(l => 'ack' in l) as unknown as LoopAck[]
  const how = async (): Promise<string> => {
    if (exit!.code !== 0) throw new Error(`writer ${name} failed (${exit!.code ?? exit!.signal}): ${stderr}`)
    const last = (await lines()).at(-1)
    if (!last || !('stop' in last || 'done' in last)) throw new Error(`writer ${name} did not say why it ended: ${JSON.stringify(last)}`)
    return 'stop' in last ? String(last.stop) : 'done'
  }
  return {
    acks,
    waitAcks: async (n, timeoutMs = 60_000) => {
      const r = await waitFor(`${n} acknowledged writes from ${name}`, async () => {
        if ((await acks()).length >= n) return 'acked'
        return exit ? 'ended' : undefined
      }, timeoutMs, 20)
      if (r === 'ended') throw new Error(`writer ${name} ended (${await how()}) after ${(await acks()).length} of the ${n} acknowledged writes waited for`)
    },
    stop: async () => {
      await writeFile(stopFile, '')
      await waitFor(`writer ${name} to stop`, () => exit, 60_000)
      return await how()
    },
    ended: async (timeoutMs = 30_000) => {
      await waitFor(`writer ${name} to end`, () => exit, timeoutMs)
      return await how()
    },
  }
}

/** lastPerSlot keeps, per offset, the last acknowledged write (what must be there). */
export function lastPerSlot (acks: LoopAck[]): LoopAck[] {
  const m = new Map<number, LoopAck>()
  for (const a of acks) m.set(a.offset, a)
  return [...m.values()]
}

if (process.argv[1] && path.resolve(process.argv[1]) === SCRIPT) child(process.argv[2]!, process.argv[3]!)
