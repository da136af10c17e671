/**
 * run: `npm run bench` — runs the selected benchmarks (all by default),
 * prints the machine and one table of volmirror-vs-peer ratios, and writes
 * the same as JSON to bench/results/latest.json and a timestamped copy, and
 * as a chart of the ratios (latest.svg, latest.png and a timestamped PNG).
 * --quick and named (partial) runs write quick-* and partial-* instead,
 * which git ignores: only a full run replaces the committed record.
 *
 *   node dist/bench/run.js [--quick] [--runs N] [--dir DIR] [--keep] [--cpu-prof DIR] [NAME...]
 *   node dist/bench/run.js --list
 *
 * Each benchmark works in its own scratch directory under --dir (default
 * /var/tmp, the disk everyone shares); whatever it starts is stopped and
 * unmounted afterwards, also when it fails or the run is interrupted.
 * Exit status: 0 all benchmarks ran (missed targets included), 1 one failed,
 * 2 usage error.
 */
import { copyFile, mkdir } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Cleanup } from './lib/cleanup.js'
import { killStarted } from './lib/exec.js'
import { chartSvg, writeChart } from './lib/chart.js'
import { stamp, toRows, writeReport, type Report, type Row } from './lib/report.js'
import { ROOT, snapshotApp } from './lib/app.js'
import { makeScratch, removeScratch } from './lib/scratch.js'
import { machineInfo } from './lib/system.js'
import { formatMachine, formatTable } from './lib/table.js'
import type { Benchmark, MetricResult } from './lib/types.js'
import { benchmarks } from './registry.js'

/** Args are the parsed command line. */
interface Args { quick: boolean, runs?: number, dir: string, keep: boolean, list: boolean, cpuProf?: string, names: string[] }

const USAGE = `usage: node dist/bench/run.js [--quick] [--runs N] [--dir DIR] [--keep] [--cpu-prof DIR] [NAME...]
       node dist/bench/run.js --list
  --quick         short smoke run: small sizes and runtimes, one run
  --runs N        runs per setup and metric, median reported (default 3, --quick 1)
  --dir DIR       where scratch files go (default /var/tmp); same disk for every setup
  --keep          keep the scratch directory
  --cpu-prof DIR  run the volmirror nodes of the dr-* benchmarks under node --cpu-prof, profiles in DIR
                  (profiling slows them: figures from such a run are for reading profiles, not for targets)
  NAME            benchmarks to run (default: all)`

function usage (msg: string): never {
  process.stderr.write(`bench: ${msg}\n${USAGE}\n`)
  process.exit(2)
}

function parseArgs (argv: string[]): Args {
  const a: Args = { quick: false, dir: '/var/tmp', keep: false, list: false, names: [] }
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!
    if (x === '--quick') a.quick = true
    else if (x === '--keep') a.keep = true
    else if (x === '--list') a.list = true
    else if (x === '--help' || x === '-h') { process.stdout.write(USAGE + '\n'); process.exit(0) }
    else if (x === '--runs') {
      a.runs = Number(argv[++i])
      if (!Number.isInteger(a.runs) || a.runs < 1) usage('--runs needs a positive integer')
    } else if (x === '--cpu-prof') {
      const d = argv[++i]
      if (!d) usage('--cpu-prof needs a directory')
      a.cpuProf = path.resolve(d)
    } else if (x === '--dir') {
      const d = argv[++i]
      if (!d) usage('--dir needs a directory')
      a.dir = d
    } else if (x.startsWith('-')) usage(`unknown option ${x}`)
    else a.names.push(x)
  }
  return a
}

function select (names: string[]): Benchmark[] {
  if (names.length === 0) return benchmarks
  return names.map(n => benchmarks.find(b => b.name === n) ?? usage(`unknown benchmark ${n} (known: ${benchmarks.map(b => b.name).join(', ')})`))
}

function progress (msg: string): void {
  const t = new Date().toISOString().slice(11, 19)
  process.stderr.write(`[${t}] ${msg}\n`)
}

async function main (): Promise<number> {
  const args = parseArgs(process.argv.slice(2))
  if (args.list) {
    for (const b of benchmarks) process.stdout.write(`${b.name.padEnd(20)} ${b.description}\n`)
    return 0
  }
  const selected = select(args.names)
  const runs = args.runs ?? (args.quick ? 1 : 3)
  const started = new Date()
  const cleanup = new Cleanup()
  await mkdir(args.dir, { recursive: true })
  const scratch = await makeScratch(args.dir)
  if (args.cpuProf) await mkdir(args.cpuProf, { recursive: true })

  let interrupted = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return
    interrupted = true
    progress(`${signal}: stopping what this run started`)
    void (async () => {
      await cleanup.runAll()
      killStarted()
      if (!args.keep) await removeScratch(scratch)
      process.exit(130)
    })()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const machine = await machineInfo(scratch)
  const app = await snapshotApp(ROOT, scratch)
  process.stdout.write(formatMachine(machine) + `\nvolmirror: ${app.commit}${app.dirty ? ' + uncommitted changes' : ''}\n\n`)
  if (machine.loadAvg[0]! > 0.5) progress(`warning: load average ${machine.loadAvg[0]} at start: something else is running, figures will be noisy`)
  progress(`scratch directory ${scratch}; ${runs} run(s)${args.quick ? ', quick' : ''}`)

  const results: Record<string, MetricResult[]> = {}
  const rows: Row[] = []
  const errors: Report['errors'] = []
  try {
    for (const b of selected) {
      const dir = path.join(scratch, b.name)
      await mkdir(dir, { recursive: true })
      const t0 = Date.now()
      try {
        const r = await b.run({ quick: args.quick, runs, scratch: dir, app: app.root, cleanup, progress, ...(args.cpuProf ? { cpuProfDir: path.join(args.cpuProf, b.name) } : {}) })
        results[b.name] = r
        rows.push(...toRows(b.name, r))
        progress(`${b.name}: done in ${Math.round((Date.now() - t0) / 1000)} s`)
      } catch (err) {
        errors.push({ benchmark: b.name, error: (err as Error)?.stack ?? String(err) })
        progress(`${b.name}: FAILED: ${(err as Error)?.message ?? String(err)}`)
      } finally {
        await cleanup.runAll()
      }
    }
  } finally {
    await cleanup.runAll()
    killStarted()
    if (!args.keep) await removeScratch(scratch)
    else progress(`kept ${scratch}`)
  }

  const finished = new Date()
  process.stdout.write(formatTable(rows) + '\n')
  if (args.quick) process.stdout.write('quick run: one short run per setup; a smoke test, not figures to judge targets by\n')
  if (args.cpuProf) process.stdout.write(`profiled run (--cpu-prof): volmirror ran under the profiler; profiles in ${args.cpuProf}\n`)
  for (const e of errors) process.stdout.write(`\nFAILED ${e.benchmark}: ${e.error}\n`)
  const report: Report = {
    schema: 1,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationS: Math.round((finished.getTime() - started.getTime()) / 1000),
    quick: args.quick,
    runs,
    ...(args.cpuProf ? { cpuProf: args.cpuProf } : {}),
    benchmarks: selected.map(b => b.name),
    machine,
    volmirror: { commit: app.commit, dirty: app.dirty },
    loadAvgAtEnd: os.loadavg().map(l => Math.round(l * 100) / 100),
    rows,
    results,
    errors,
  }
  const resultsDir = path.join(ROOT, 'bench', 'results')
  // Only a full run is the record (latest.*, committed); smoke and partial runs keep their own names.
  const prefix = args.quick ? 'quick-' : args.names.length > 0 ? 'partial-' : ''
  const files = await writeReport(resultsDir, report, prefix)
  const title = `volmirror ${app.commit}${app.dirty ? '+' : ''}: npm run bench${args.quick ? ' --quick' : ''}, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, median of ${runs}`
  try {
    const chart = await writeChart(path.join(resultsDir, `${prefix}latest`), chartSvg(rows, machine, title))
    files.push(...chart.files)
    if (chart.files.some(f => f.endsWith('.png'))) {
      const stamped = path.join(resultsDir, `${prefix}${stamp(started)}.png`)
      await copyFile(path.join(resultsDir, `${prefix}latest.png`), stamped)
      files.push(stamped)
    }
    if (chart.pngSkipped) progress(`chart: ${chart.pngSkipped}`)
  } catch (err) {
    progress(`chart: not written: ${(err as Error).message}`)
  }
  const targets = rows.filter(r => r.status)
  process.stdout.write(`\ntargets: ${targets.filter(r => r.status === 'met').length} met, ${targets.filter(r => r.status === 'missed').length} missed; ` +
    `${report.durationS} s; written to ${files.map(f => path.relative(process.cwd(), f)).join(', ')}\n`)
  return errors.length > 0 ? 1 : 0
}

main().then(code => process.exit(code), (err: unknown) => {
  process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exit(1)
})
