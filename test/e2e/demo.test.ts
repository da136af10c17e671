/**
 * demo: `volmirror demo` end to end, as CI runs it: non-interactive (its
 * output is a pipe, so plain progress lines), bounded by --duration. It
 * must reach "consistent", exit 0, and leave nothing behind: no mount, no
 * process of it (the nodes it started), no work directory, unless --keep.
 *
 * The demo starts its nodes in their own process groups; should a test
 * fail midway, teardown finds them by the unique work directory in their
 * command lines (they are this test's grandchildren) and kills them by
 * PID, then unmounts the demo's mount points.
 */
import assert from 'node:assert/strict'
import { readdir, readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { defer, unmountHard } from '../helpers/cleanup.js'
import { cli, type RunResult } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'

function show (r: RunResult): string {
  return `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`
}

/** processesMentioning lists the PIDs whose command line contains `text`. */
async function processesMentioning (text: string): Promise<number[]> {
  const out: number[] = []
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')
    if (cmd.includes(text)) out.push(Number(e))
  }
  return out
}

/** mountsUnder lists mount points at or below `dir`. */
async function mountsUnder (dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8')
  return text.split('\n').map(l => l.split(' ')[4] ?? '').filter(m => m === dir || m.startsWith(dir + '/'))
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

/** demoDir makes a path for the demo's work directory (not created) and the teardown that clears up after a failed run. */
async function demoDir (): Promise<string> {
  const root = await tmpDir('demo')
  const work = path.join(root, 'work')
  defer(async () => {
    for (const pid of await processesMentioning(work)) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
    for (const m of [path.join(work, 'primary', 'mnt'), path.join(work, 'dr', 'mnt')]) await unmountHard(m)
  })
  return work
}

/** assertNothingLeft checks the demo's nodes are gone and nothing is mounted under `work`. */
async function assertNothingLeft (r: RunResult, work: string): Promise<void> {
  const pids = [...r.stdout.matchAll(/^(?:primary|DR) +pid (\d+),/gm)].map(m => Number(m[1]))
  assert.equal(pids.length, 2, `the demo should say both nodes' PIDs\n${show(r)}`)
  for (const pid of pids) assert.equal(alive(pid), false, `node process ${pid} is still running`)
  assert.deepEqual(await processesMentioning(work), [], 'a process of the demo is still running')
  assert.deepEqual(await mountsUnder(work), [], 'something is still mounted under the work directory')
}

describe('volmirror demo (e2e)', function () {
  this.timeout(120_000)
  this.slow(40_000)

  it('runs for --duration without a terminal, reaches consistent, exits 0, and removes everything it made', async () => {
    const work = await demoDir()
    const r = await cli(['demo', '--duration', '20s', '--size', '256M', '--dir', work], { timeoutMs: 100_000 })
    assert.equal(r.code, 0, show(r))
    assert.match(r.stdout, /^DR is consistent after [\d.]+ s: .*a failover target as of seq \d+/m, show(r))
    assert.match(r.stdout, /--duration ended after [\d.]+ s: the DR became consistent/, show(r))
    // Not a terminal: plain lines with times, no escape sequences.
    assert.doesNotMatch(r.stdout, /\x1b\[/, 'escape sequences in plain output')
    assert.match(r.stdout, /^\d\d:\d\d:\d\d {2}hydrate disk\.img {2}done {2}256 MiB {2}in [\d.]+ s$/m, show(r))
    assert.match(r.stdout, /^\d\d:\d\d:\d\d {2}DR CONSISTENT {2}lag \d+ records, at most [\d.]+ s \(RPO\) {2}applied seq \d+ of \d+ {2}writer /m, show(r))
    // It said where things are and what to try.
    assert.ok(r.stdout.includes(`status --state ${path.join(work, 'dr', 'state')}`), show(r))
    assert.ok(r.stdout.includes(`mount -o ro,loop ${path.join(work, 'dr', 'mnt', 'disk.img')}`), show(r))
    assert.ok(r.stdout.includes(path.join(work, 'dr.log')), show(r))
    assert.match(r.stdout, new RegExp(`^removed ${work.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), show(r))
    await assertNothingLeft(r, work)
    await assert.rejects(stat(work), { code: 'ENOENT' }, 'the work directory is still there')
  })

  it('--keep keeps the work directory: images, state, node logs (with the DR\'s hydration progress lines)', async () => {
    const work = await demoDir()
    // A slower copy, so the DR logs progress lines (every 5 s) before it completes.
    const r = await cli(['demo', '--duration', '25s', '--size', '256M', '--hydrate-rate', '4M', '--keep', '--dir', work], { timeoutMs: 100_000 })
    assert.equal(r.code, 0, show(r))
    assert.match(r.stdout, /^kept /m, show(r))
    await assertNothingLeft(r, work)
    for (const f of ['primary/images/disk.img', 'primary/images/data.raw', 'dr/images/disk.img', 'dr/images/data.raw', 'primary/state/token']) {
      await stat(path.join(work, f))
    }
    assert.equal((await stat(path.join(work, 'dr', 'images', 'disk.img'))).size, 256 << 20)
    const drLog = await readFile(path.join(work, 'dr.log'), 'utf8')
    assert.match(drLog, / info node\.ready node=dr role=dr /)
    assert.match(drLog, / info hydrate\.progress node=dr volume=disk\.img done=\d+\.\d% regions=\d+\/256 rate=\d+\.\dMiB\/s eta=\d+s/, drLog)
    assert.match(drLog, / info hydrate\.complete node=dr seconds=[\d.]+ kept=\d+ released=\d+ copied=\d+/, drLog)
    assert.match(drLog, / info node\.stopped node=dr /)
    assert.match(await readFile(path.join(work, 'primary.log'), 'utf8'), / info node\.stopped node=primary /)
  })
})
