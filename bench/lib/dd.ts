/**
 * dd: sequential writes with dd, as PEERS.md runs them.
 */
import { runOk } from './exec.js'

/** DdWrite is one `dd if=INPUT of=OUTPUT bs=1M count=N conv=notrunc,fsync`. */
export interface DdWrite {
  input: string
  output: string
  countMiB: number
}

/** ddCommand is the command line for `job`. */
export function ddCommand (job: DdWrite): string[] {
  return ['dd', `if=${job.input}`, `of=${job.output}`, 'bs=1M', `count=${job.countMiB}`, 'conv=notrunc,fsync']
}

/** ddWrite runs the copy and returns MB/s (decimal megabytes, as dd prints them), fsync included. */
export async function ddWrite (job: DdWrite): Promise<number> {
  const [cmd, ...args] = ddCommand(job)
  const r = await runOk(cmd!, args, { timeoutMs: 600_000 })
  return parseDd(r.stderr)
}

/** parseDd turns dd's summary line ("N bytes (...) copied, S s, ...") into MB/s. */
export function parseDd (stderr: string): number {
  const m = /(\d+) bytes .*copied, ([\d.]+(?:e[-+]?\d+)?) s/.exec(stderr)
  if (!m) throw new Error(`cannot read dd's output: ${stderr.slice(-300)}`)
  const bytes = Number(m[1])
  const seconds = Number(m[2])
  if (!(seconds > 0)) throw new Error(`dd reported ${seconds} s`)
  return bytes / seconds / 1e6
}

/** ddReadCommand is `dd if=FILE of=/dev/null bs=1M`, PEERS.md's cold sequential read. */
export function ddReadCommand (file: string): string[] {
  return ['dd', `if=${file}`, 'of=/dev/null', 'bs=1M']
}

/** ddRead reads `file` sequentially to the end: MB/s (decimal, as dd prints them) and how many bytes it got. */
export async function ddRead (file: string): Promise<{ mbPerS: number, bytes: number }> {
  const [cmd, ...args] = ddReadCommand(file)
  const r = await runOk(cmd!, args, { timeoutMs: 600_000 })
  return { mbPerS: parseDd(r.stderr), bytes: Number(/(\d+) bytes/.exec(r.stderr)?.[1] ?? NaN) }
}
