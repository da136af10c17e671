/**
 * mirror: checks on two nodes that are meant to hold the same bytes,
 * whatever their roles are now (failover tests turn a DR into a primary
 * and back): status by state directory, "in sync", cmp of images, and
 * the acknowledged writes a writer logged.
 *
 * The test process hosts no mount: it reads backing image directories
 * directly, and touches mounts only through child processes.
 */
import assert from 'node:assert/strict'
import { open } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { callControl } from '../../lib/control/control-socket.js'
import type { DrStatus } from '../../lib/node/dr-node.js'
import type { PrimaryStatus } from '../../lib/node/primary-node.js'
import { pattern } from './pattern.js'
import { run } from './proc.js'
import { waitFor } from './wait.js'

export const MiB = 1024 * 1024

/** mb formats bytes as MiB for reports. */
export function mb (bytes: number): string {
  return `${(bytes / MiB).toFixed(2)} MiB`
}

/** statusOf asks the node on a state directory for its status (any role). */
export async function statusOf<T = PrimaryStatus | DrStatus> (state: string): Promise<T> {
  return await callControl<T>(state, 'status', {}, 10_000)
}

/** primaryOf and drOf ask for a status and check the role. */
export async function primaryOf (state: string): Promise<PrimaryStatus> {
  const s = await statusOf<PrimaryStatus | DrStatus>(state)
  assert.equal(s.role, 'primary', `node on ${state} is a ${s.role}`)
  return s as PrimaryStatus
}

export async function drOf (state: string): Promise<DrStatus> {
  const s = await statusOf<PrimaryStatus | DrStatus>(state)
  assert.equal(s.role, 'dr', `node on ${state} is a ${s.role}`)
  return s as DrStatus
}

/**
 * inSync waits until the DR on `drState` follows the primary on
 * `primaryState` (registered with it, same volume names), says every
 * volume is consistent, is not stalled, and has applied everything the
 * primary had when it was asked.
 */
export async function inSync (primaryState: string, drState: string, timeoutMs = 60_000): Promise<{ p: PrimaryStatus, d: DrStatus }> {
  let last = ''
  try {
    return await waitFor(`the DR on ${drState} to be in sync with the primary on ${primaryState}`, async () => {
      const p = await primaryOf(primaryState)
      const d = await drOf(drState)
      const names = (vs: Array<{ name: string }>): string => vs.map(v => v.name).sort().join(',')
      last = `primary ${p.nodeId.slice(0, 8)} last ${p.seq.last}; DR follows ${d.primary.id?.slice(0, 8)} applied ${d.seq.applied} consistent ${d.consistent} ` +
        `volumes [${names(d.volumes)}] vs [${names(p.volumes)}] stalled ${d.stalled ?? '-'} splitBrain ${d.splitBrain ?? '-'} lastError ${d.lag.lastError ?? '-'}`
      const ok = d.primary.id === p.nodeId && names(d.volumes) === names(p.volumes) && d.consistent && d.stalled === undefined && d.seq.applied >= p.seq.last
      return ok ? { p, d } : undefined
    }, timeoutMs, 100)
  } catch (err) {
    throw new Error(`${(err as Error).message}\n  last seen: ${last}`)
  }
}

/** cmpFiles compares two files with cmp(1) (holes read as zeros). */
export async function cmpFiles (a: string, b: string): Promise<void> {
  const r = await run('cmp', [a, b], { timeoutMs: 120_000 })
  assert.equal(r.code, 0, `cmp ${a} ${b} (exit ${r.code ?? r.signal}): ${r.stdout}${r.stderr}`)
}

/**
 * cmpMount compares a backing file with a file read through a mount (dd in
 * 4 MiB reads: a DR mount uses direct I/O, and cmp's small reads would each
 * be a FUSE request).
 */
export async function cmpMount (file: string, inMount: string): Promise<void> {
  const r = await run('sh', ['-c', 'dd if="$1" bs=4M status=none | cmp "$2" -', 'sh', inMount, file], { timeoutMs: 120_000 })
  assert.equal(r.code, 0, `cmp ${file} ${inMount} (exit ${r.code ?? r.signal}): ${r.stdout}${r.stderr}`)
}

/** WrittenSpan is a write whose bytes are `pattern(seed, length)` at `offset`. */
export interface WrittenSpan { offset: number, length: number, seed: number }

/** missingWrites returns the writes whose bytes are not (exactly) in `file`. */
export async function missingWrites (file: string, writes: WrittenSpan[]): Promise<WrittenSpan[]> {
  const fh = await open(file, 'r')
  const out: WrittenSpan[] = []
  try {
    for (const w of writes) {
      const buf = Buffer.alloc(w.length)
      const { bytesRead } = await fh.read(buf, 0, w.length, w.offset)
      if (bytesRead !== w.length || !buf.equals(pattern(w.seed, w.length))) out.push(w)
    }
  } finally {
    await fh.close()
  }
  return out
}

/** assertWritesIn fails unless every write is in `file`, naming the first missing ones. */
export async function assertWritesIn (file: string, writes: WrittenSpan[], what: string): Promise<void> {
  const missing = await missingWrites(file, writes)
  assert.equal(missing.length, 0, `${missing.length} of ${writes.length} acknowledged writes are missing from ${what} (${path.basename(file)}): ` +
    missing.slice(0, 5).map(w => `${w.length}@${w.offset}`).join(', '))
}

/** freePort finds a TCP port on 127.0.0.1 that is free right now. */
export async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>(resolve => server.close(() => resolve()))
  return port
}

/** shuffled returns a seeded shuffle of `items`. */
export function shuffled<T> (items: T[], next: () => number): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

/** pick returns `n` distinct integers from [0, max), seeded. */
export function pick (n: number, max: number, next: () => number): number[] {
  return shuffled([...Array(max).keys()], next).slice(0, n).sort((a, b) => a - b)
}
