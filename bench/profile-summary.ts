/**
 * profile-summary: what a `node --cpu-prof` profile of a volmirror node
 * spent its time on, as text: busy vs idle share, the functions with the
 * most self time, and the same rolled up by source file (volmirror's own
 * modules, node internals, dependencies).
 *
 *   node dist/bench/run.js --cpu-prof /var/tmp/prof --runs 1 dr-cold-read
 *   node dist/bench/profile-summary.js /var/tmp/prof/dr-cold-read/dr/*.cpuprofile [--top N]
 *
 * Self time is attributed from the sample counts (each sample is one
 * stack); "(idle)" is the main thread waiting in the event loop, "(program)"
 * native work outside JavaScript (FUSE callbacks into C, libuv), "(garbage
 * collector)" GC.
 */
import { readFile } from 'node:fs/promises'
import path from 'node:path'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

/** Line is one row of the summary: a name and its self time. */
interface Line { name: string, ms: number }

function shortUrl (url: string): string {
  if (!url) return ''
  const u = url.replace(/^file:\/\//, '')
  const nm = u.lastIndexOf('node_modules/')
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length)
  const dist = u.lastIndexOf('/dist/')
  if (dist >= 0) return u.slice(dist + '/dist/'.length)
  return u.startsWith('node:') ? u : path.basename(u)
}

/** summarize reads one profile and returns its report as text. */
export async function summarize (file: string, top: number): Promise<string> {
  const p = JSON.parse(await readFile(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map(n => [n.id, n]))
  const self = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000)
  const total = (p.endTime - p.startTime) / 1000
  const fn = new Map<string, number>()
  const files = new Map<string, number>()
  let idle = 0
  for (const [id, ms] of self) {
    const n = byId.get(id)!
    const cf = n.callFrame
    if (cf.functionName === '(idle)') { idle += ms; continue }
    const where = shortUrl(cf.url)
    const name = `${cf.functionName || '(anonymous)'}${where ? ` ${where}:${cf.lineNumber + 1}` : ''}`
    fn.set(name, (fn.get(name) ?? 0) + ms)
    const group = where || cf.functionName
    files.set(group, (files.get(group) ?? 0) + ms)
  }
  const busy = total - idle
  const sorted = (m: Map<string, number>): Line[] => [...m].map(([name, ms]) => ({ name, ms })).sort((a, b) => b.ms - a.ms).slice(0, top)
  const pct = (ms: number, of: number): string => `${(100 * ms / of).toFixed(1).padStart(5)} %`
  const out = [
    `${file}`,
    `  wall ${(total / 1000).toFixed(1)} s; main thread busy ${(busy / 1000).toFixed(1)} s (${pct(busy, total).trim()}), idle ${(idle / 1000).toFixed(1)} s`,
    `  top self time (share of busy):`,
    ...sorted(fn).map(l => `    ${pct(l.ms, busy)}  ${l.ms.toFixed(0).padStart(7)} ms  ${l.name}`),
    `  by file:`,
    ...sorted(files).map(l => `    ${pct(l.ms, busy)}  ${l.ms.toFixed(0).padStart(7)} ms  ${l.name}`),
  ]
  return out.join('\n')
}

const args = process.argv.slice(2)
const topAt = args.indexOf('--top')
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 15
if (args.length === 0 || !Number.isInteger(top) || top < 1) {
  process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile... [--top N]\n')
  process.exit(2)
}
for (const f of args) process.stdout.write(await summarize(f, top) + '\n\n')
