/**
 * system: what machine the figures come from, and the page-cache controls
 * the benchmarks need.
 */
import { readFile, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { run, runOk } from './exec.js'

/** MachineInfo is printed above the table and stored in the JSON. */
export interface MachineInfo {
  cpu: string
  cores: number
  ramGiB: number
  kernel: string
  /** File system type and device of the bench directory. */
  benchFs: string
  benchDir: string
  node: string
  tools: Record<string, string>
  /** Load average (1, 5, 15 min) when the run started: other work on the machine skews figures. */
  loadAvg: number[]
}

/** machineInfo describes this machine; `dir` is where the benchmarks do their I/O. */
export async function machineInfo (dir: string): Promise<MachineInfo> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '')
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown'
  const fm = await run('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', dir]).catch(() => undefined)
  let benchFs = fm?.code === 0 ? fm.stdout.trim().replace(/\s+/g, ' on ') : ''
  if (!benchFs) benchFs = (await run('stat', ['-f', '-c', '%T', dir]).catch(() => undefined))?.stdout.trim() ?? 'unknown'
  return {
    cpu,
    cores: os.cpus().length,
    ramGiB: Math.round(os.totalmem() / 2 ** 30 * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    benchFs,
    benchDir: dir,
    node: process.version,
    tools: await toolVersions(),
    loadAvg: os.loadavg().map(l => Math.round(l * 100) / 100),
  }
}

async function toolVersions (): Promise<Record<string, string>> {
  const probes: Array<[string, string[]]> = [['fio', ['--version']], ['bindfs', ['--version']], ['dd', ['--version']]]
  const out: Record<string, string> = {}
  for (const [cmd, args] of probes) {
    const r = await run(cmd, args).catch(() => undefined)
    const line = (r?.stdout || r?.stderr || '').split('\n')[0]?.trim()
    if (line) out[cmd] = line
  }
  return out
}

/** syncAll flushes every dirty page to disk (`sync`), so one measurement does not pay for the last one's writeback. */
export async function syncAll (): Promise<void> {
  await runOk('sync', [], { timeoutMs: 300_000 })
}

/** dropCaches syncs and drops the page cache, dentries and inodes; false when not allowed (not root, read-only /proc). */
export async function dropCaches (): Promise<boolean> {
  await syncAll()
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3')
    return true
  } catch {
    return false
  }
}
