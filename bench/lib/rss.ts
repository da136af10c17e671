/**
 * rss: a process's resident memory over time, from /proc/PID/status, for
 * the benchmarks' "bounded, not growing with data written" figures.
 */
import { readFile } from 'node:fs/promises'

/** rssMiB reads a process's resident set size (VmRSS) in MiB; NaN once it is gone. */
export async function rssMiB (pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const m = /^VmRSS:\s+(\d+) kB/m.exec(text)
  return m ? Number(m[1]) / 1024 : NaN
}

/** RssSeen is what sampling saw: the peak, and the first and last samples. */
export interface RssSeen { peak: number, first: number, last: number }

/** sampleRss samples a process's RSS every 200 ms until the returned function is called. */
export function sampleRss (pid: number): () => Promise<RssSeen> {
  const seen: number[] = []
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      const v = await rssMiB(pid)
      if (Number.isFinite(v)) seen.push(v)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  })()
  return async () => {
    stopped = true
    await loop
    return { peak: seen.length ? Math.max(...seen) : NaN, first: seen[0] ?? NaN, last: seen[seen.length - 1] ?? NaN }
  }
}
