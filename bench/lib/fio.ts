/**
 * fio: build fio command lines and read their JSON output.
 */
import { runOk } from './exec.js'

/** FioJob describes one fio run on one file; the job is always time based. */
export interface FioJob {
  filename: string
  /** Bytes of the file fio works on (`--size`). */
  size: number
  rw: 'randwrite' | 'randread' | 'write' | 'read'
  bs: string
  ioengine: 'psync' | 'libaio'
  iodepth?: number
  direct?: boolean
  runtimeS: number
  /** Bandwidth cap (`--rate`, e.g. '100m'). */
  rate?: string
  /** Never write (`--readonly`): for read-only mounts. */
  readonly?: boolean
  /** fsync after every this many writes (`--fsync`). */
  fsync?: number
}

/** FioResult is the part of fio's report the benchmarks use. */
export interface FioResult {
  iops: number
  bytesPerSec: number
  /** Mean completion latency in microseconds. */
  meanLatUs: number
}

/** fioArgs is the command line for `job`, in the form PEERS.md quotes. */
export function fioArgs (job: FioJob): string[] {
  const a = [
    '--name=t', `--filename=${job.filename}`, `--size=${job.size}`, `--rw=${job.rw}`, `--bs=${job.bs}`,
    `--ioengine=${job.ioengine}`, `--runtime=${job.runtimeS}`, '--time_based', '--output-format=json',
  ]
  if (job.iodepth) a.push(`--iodepth=${job.iodepth}`)
  if (job.direct) a.push('--direct=1')
  if (job.rate) a.push(`--rate=${job.rate}`)
  if (job.readonly) a.push('--readonly')
  if (job.fsync) a.push(`--fsync=${job.fsync}`)
  return a
}

/** runFio runs one job and returns its figures; a hung run is killed well after its runtime. */
export async function runFio (job: FioJob): Promise<FioResult> {
  const r = await runOk('fio', fioArgs(job), { timeoutMs: (job.runtimeS + 120) * 1000 })
  return parseFio(r.stdout, job.rw.includes('write') ? 'write' : 'read')
}

interface FioJson {
  jobs?: Array<{ error?: number } & Record<string, { iops?: number, bw_bytes?: number, clat_ns?: { mean?: number } } | number | string | undefined>>
}

/** parseFio reads fio's `--output-format=json` (fio may print warnings before the JSON). */
export function parseFio (stdout: string, dir: 'read' | 'write'): FioResult {
  const start = stdout.indexOf('{')
  if (start < 0) throw new Error(`fio printed no JSON: ${stdout.slice(0, 500)}`)
  const json = JSON.parse(stdout.slice(start)) as FioJson
  const job = json.jobs?.[0]
  if (!job) throw new Error('fio JSON has no job')
  if (job.error) throw new Error(`fio job failed with error ${job.error}`)
  const side = job[dir]
  if (!side || typeof side !== 'object' || typeof side.iops !== 'number') throw new Error(`fio JSON has no ${dir} figures`)
  return { iops: side.iops, bytesPerSec: side.bw_bytes ?? NaN, meanLatUs: (side.clat_ns?.mean ?? NaN) / 1000 }
}
