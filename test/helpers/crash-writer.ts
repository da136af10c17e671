/**
 * crash-writer: drives a mount from a child process while a test kills the
 * node under it, and logs what was acknowledged.
 *
 * Usage: `node crash-writer.js PLAN.json LOG` with a {@link CrashPlan}. Every
 * line appended to LOG (a file on a normal disk, not on the mount) is JSON:
 *
 *   {"begin": i}          operation i is about to start (namespace plans)
 *   {"ack": i, ...}       operation i returned, and for data its fsync returned
 *   {"stop": "ENOTCONN"}  an operation failed (the node died): the writer stops
 *
 * An ack is written only AFTER the fsync (or the namespace call) returned,
 * so every acked operation is one the node acknowledged as durable. Data
 * plans write groups of non-overlapping writes, then fsync, then ack each
 * write of the group. Synchronous calls are fine here: this process hosts
 * nothing.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { pattern } from './pattern.js'

/** DataWrite is one write of a data plan: `pattern(seed, length)` at `offset`. */
export interface DataWrite { offset: number, length: number, seed: number }

/** NsOp is one operation of a namespace plan (paths relative to `dir`). */
export type NsOp =
  | { op: 'create', name: string, seed: number, length: number }
  | { op: 'write', name: string, seed: number, length: number }
  | { op: 'rename', from: string, to: string }
  | { op: 'unlink', name: string }

/** CrashPlan is what the writer does, in order, until something fails. */
export type CrashPlan =
  | { kind: 'data', file: string, groups: DataWrite[][] }
  | { kind: 'namespace', dir: string, ops: NsOp[] }

/** CRASH_WRITER is the compiled path of this script, for spawning it. */
export const CRASH_WRITER = fileURLToPath(import.meta.url)

function writeAll (fd: number, data: Buffer, position: number): void {
  let done = 0
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, position + done)
}

function runData (plan: Extract<CrashPlan, { kind: 'data' }>, log: (o: object) => void): void {
  const fd = fs.openSync(plan.file, 'r+')
  let i = 0
  for (const group of plan.groups) {
    for (const w of group) writeAll(fd, pattern(w.seed, w.length), w.offset)
    fs.fsyncSync(fd)
    for (const w of group) log({ ack: i++, ...w })
  }
}

function runNamespace (plan: Extract<CrashPlan, { kind: 'namespace' }>, log: (o: object) => void): void {
  const p = (name: string): string => path.join(plan.dir, name)
  plan.ops.forEach((o, i) => {
    log({ begin: i })
    switch (o.op) {
      case 'create':
      case 'write': {
        const fd = fs.openSync(p(o.name), o.op === 'create' ? 'wx' : 'r+')
        try {
          writeAll(fd, pattern(o.seed, o.length), 0)
          fs.fsyncSync(fd)
        } finally {
          fs.closeSync(fd)
        }
        break
      }
      case 'rename': fs.renameSync(p(o.from), p(o.to)); break
      case 'unlink': fs.unlinkSync(p(o.name)); break
    }
    log({ ack: i })
  })
}

function main (planFile: string, logFile: string): void {
  const logFd = fs.openSync(logFile, 'a')
  const log = (o: object): void => { fs.writeSync(logFd, JSON.stringify(o) + '\n') }
  const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')) as CrashPlan
  try {
    if (plan.kind === 'data') runData(plan, log)
    else runNamespace(plan, log)
    log({ done: true })
  } catch (err) {
    log({ stop: (err as NodeJS.ErrnoException).code ?? String(err) })
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === CRASH_WRITER) main(process.argv[2]!, process.argv[3]!)
