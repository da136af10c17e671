/**
 * pread-probe: the child process that times first reads on a mount
 * (PEERS.md's first-read latency): open the file once, then one
 * `pread(fd, 4096, off)` per given offset, in the order given, each timed
 * alone. Synchronous calls on purpose, and in a process of its own: the
 * benchmark process must not block, and a sync call is what a VM's disk
 * read looks like to the FUSE daemon (one request, then wait).
 *
 * Usage: node dist/bench/lib/pread-probe.js FILE OFF[,OFF...]   (a script: importing it runs it; import its types only)
 * Prints JSON: { openMs, ms: [per read], sha256: [per read, hex], short: [offsets of short reads] }.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'

/** ProbeResult is what the probe prints. */
export interface ProbeResult { openMs: number, ms: number[], sha256: string[], short: number[] }

/** probe runs the reads. */
function probe (file: string, offsets: number[]): ProbeResult {
  const buf = Buffer.alloc(4096)
  const t0 = process.hrtime.bigint()
  const fd = fs.openSync(file, 'r')
  const openMs = Number(process.hrtime.bigint() - t0) / 1e6
  const out: ProbeResult = { openMs, ms: [], sha256: [], short: [] }
  try {
    for (const off of offsets) {
      const t = process.hrtime.bigint()
      const n = fs.readSync(fd, buf, 0, 4096, off)
      out.ms.push(Number(process.hrtime.bigint() - t) / 1e6)
      if (n !== 4096) out.short.push(off)
      out.sha256.push(createHash('sha256').update(buf.subarray(0, n)).digest('hex'))
    }
  } finally {
    fs.closeSync(fd)
  }
  return out
}

const [file, list] = process.argv.slice(2)
if (!file || !list) {
  process.stderr.write('usage: node pread-probe.js FILE OFF[,OFF...]\n')
  process.exit(2)
}
process.stdout.write(JSON.stringify(probe(file, list.split(',').map(Number))) + '\n')
