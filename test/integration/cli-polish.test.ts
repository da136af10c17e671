/**
 * cli-polish: the command line as a person and a script meet it.
 *
 * - usage errors (new flags too: --config, --watch/--interval, demo's) exit
 *   2 with the one line `volmirror: <message> [USAGE]`, and touch nothing;
 * - every command's --help has an example, --config and --log-level; the
 *   top-level help documents the exit codes;
 * - `--json` outputs parse (status of a primary and of a DR, verify, and
 *   `status --watch --json`, one object per line);
 * - `--config FILE` and flags agree: a node started from a file alone
 *   runs on the file's directories, a flag wins over the file, one file
 *   serves several commands, an unknown key is a usage error naming it;
 * - `status --watch` without a terminal writes plain lines (time, item,
 *   percent, amount, rate, ETA; a lag line) every --interval and exits 0
 *   on SIGINT;
 * - a DR shows a running verify's progress in its status.
 *
 * Nodes run as child processes (startNode, startPair), stopped and
 * unmounted in teardown even when a test fails.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { DrStatus } from '../../lib/node/dr-node.js'
import type { PrimaryStatus } from '../../lib/node/primary-node.js'
import type { VerifyReport } from '../../lib/dr/verifier.js'
import { defer, trackMount, trackPid, unmountHard, untrackPid } from '../helpers/cleanup.js'
import { startPair } from '../helpers/pair.js'
import { CLI, cli, startNode, type RunResult } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

const MiB = 1024 * 1024

function show (r: RunResult): string {
  return `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`
}

/** expectUsage: exit 2, nothing on stdout, exactly one `volmirror: ... [USAGE]` line that names `what`, no stack trace. */
function expectUsage (r: RunResult, what: string | RegExp): string {
  assert.equal(r.code, 2, show(r))
  assert.equal(r.stdout, '', show(r))
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+\)?$/m, `stack trace printed\n${show(r)}`)
  const lines = r.stderr.split('\n').filter(l => l.startsWith('volmirror:'))
  assert.equal(lines.length, 1, show(r))
  const m = /^volmirror: (.+) \[USAGE\]$/.exec(lines[0]!)
  assert.ok(m, show(r))
  if (typeof what === 'string') assert.ok(m[1]!.includes(what), `the message should name ${what}\n${show(r)}`)
  else assert.match(m[1]!, what, show(r))
  return m[1]!
}

function runCli (args: string[], opts: Parameters<typeof cli>[1] = {}): Promise<RunResult> {
  return cli(args, { timeoutMs: 30_000, ...opts })
}

/** Dirs of one primary: an image directory with one volume, an empty mount point. */
interface Dirs { root: string, images: string, state: string, mnt: string }

async function dirs (): Promise<Dirs> {
  const root = await tmpDir('polish')
  const d = { root, images: path.join(root, 'images'), state: path.join(root, 'state'), mnt: path.join(root, 'mnt') }
  await mkdir(d.images)
  await mkdir(d.mnt)
  await writeFile(path.join(d.images, 'vm.raw'), randomBytes(2 * MiB))
  trackMount(d.mnt)
  defer(() => unmountHard(d.mnt))
  return d
}

async function exists (p: string): Promise<boolean> {
  return await stat(p).then(() => true, () => false)
}

/** Watch is a `volmirror status --watch` child whose output is collected as it comes. */
interface Watch { stdout: () => string, stderr: () => string, exit: Promise<{ code: number | null, signal: NodeJS.Signals | null }>, kill: (sig: NodeJS.Signals) => void }

function startWatch (args: string[]): Watch {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  trackPid(child.pid)
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr.on('data', (c: Buffer) => { err += c.toString() })
  const exit = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.on('close', (code, signal) => { untrackPid(child.pid); resolve({ code, signal }) }))
  defer(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exit
  })
  return { stdout: () => out, stderr: () => err, exit, kill: sig => child.kill(sig) }
}

/** runBash runs a bash script and returns its standard output. */
async function runBash (script: string): Promise<string> {
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  await new Promise(resolve => child.on('close', resolve))
  return out
}

describe('volmirror CLI polish: help, --json, --config, --watch, progress', function () {
  this.timeout(90_000)
  this.slow(5_000)

  describe('usage errors of the new flags exit 2 with one line', () => {
    it('status: --interval without --watch, an unreadable --interval', async () => {
      expectUsage(await runCli(['status', '--state', '/nonexistent', '--interval', '1s']), '--interval')
      expectUsage(await runCli(['status', '--state', '/nonexistent', '--watch', '--interval', 'soon']), '--interval')
    })

    it('demo: bad --size, too small a --size, --duration 0, a non-empty --dir (left as it was)', async () => {
      expectUsage(await runCli(['demo', '--size', 'big']), '--size')
      expectUsage(await runCli(['demo', '--size', '1M']), '--size')
      expectUsage(await runCli(['demo', '--duration', '0']), '--duration')
      expectUsage(await runCli(['demo', '--hydrate-rate', 'fast']), '--hydrate-rate')
      const root = await tmpDir('polish-demo')
      await writeFile(path.join(root, 'mine.txt'), 'keep me')
      expectUsage(await runCli(['demo', '--dir', root, '--duration', '5s']), 'not empty')
      assert.deepEqual(await readdir(root), ['mine.txt'], 'the demo touched a directory it refused')
    })

    it('--config: a missing file, a file that is not JSON, not an object, an unknown key (named), a wrong type, a bad choice', async () => {
      const d = await dirs()
      const file = path.join(d.root, 'volmirror.json')
      const base = { images: d.images, state: d.state, mount: d.mnt }
      const primary = ['primary', '--config', file]
      expectUsage(await runCli(primary), 'volmirror.json')
      await writeFile(file, '{"images": ')
      expectUsage(await runCli(primary), /is not JSON/)
      await writeFile(file, '["images"]')
      expectUsage(await runCli(primary), /one JSON object/)
      await writeFile(file, JSON.stringify({ ...base, imagez: '/x', 'hydrate-rat': '1M' }))
      const msg = expectUsage(await runCli(primary), '"imagez"')
      assert.ok(msg.includes('"hydrate-rat"'), msg)
      await writeFile(file, JSON.stringify({ ...base, 'retain-journal': 'yes' }))
      expectUsage(await runCli(primary), '"retain-journal"')
      await writeFile(file, JSON.stringify({ ...base, 'log-level': 'loud' }))
      expectUsage(await runCli(primary), 'loud')
      await writeFile(file, JSON.stringify({ ...base, config: 'other.json' }))
      expectUsage(await runCli(primary), '"config"')
      expectUsage(await runCli(['primary', '--config']), '--config')
      assert.equal(await exists(d.state), false, 'a usage error must not create the state directory')
    })
  })

  describe('help', () => {
    for (const command of ['primary', 'dr', 'promote', 'demote', 'verify', 'status', 'demo']) {
      it(`\`${command} --help\` exits 0 with an example, --config and --log-level`, async () => {
        const r = await runCli([command, '--help'])
        assert.equal(r.code, 0, show(r))
        assert.match(r.stdout, new RegExp(`^Usage: volmirror ${command} `, 'm'))
        assert.match(r.stdout, /^Example/m)
        assert.match(r.stdout, new RegExp(`^ +volmirror ${command} +--`, 'm'), show(r))
        assert.match(r.stdout, /--config <file>/)
        assert.match(r.stdout, /--log-level <level>/)
        assert.equal(r.stderr, '')
      })
    }

    it('the top-level help documents the exit codes and --config', async () => {
      const r = await runCli(['--help'])
      assert.equal(r.code, 0, show(r))
      assert.match(r.stdout, /^Exit status:$/m)
      assert.match(r.stdout, /^ +0 +success/m)
      assert.match(r.stdout, /^ +1 +failure/m)
      assert.match(r.stdout, /^ +2 +usage error/m)
      assert.match(r.stdout, /--config FILE/)
      assert.match(r.stdout, /^ +demo +/m)
    })
  })

  describe('shell completion', () => {
    it('`completion bash` completes commands, subcommands, a command\'s flags and a flag\'s choices in a real bash', async () => {
      const script = await cli(['completion', 'bash'])
      assert.equal(script.code, 0, script.stderr)
      const dir = await tmpDir('completion')
      const file = path.join(dir, 'volmirror.bash')
      await writeFile(file, script.stdout)
      const ask = async (...words: string[]): Promise<string> => {
        const r = await runBash(`source ${file}; COMP_WORDS=(${words.map(w => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}; _volmirror; echo "\${COMPREPLY[*]}"`)
        return r.trim()
      }
      assert.equal(await ask('volmirror', 'arch'), 'archive')
      assert.equal(await ask('volmirror', 'archive', ''), 'ls')
      assert.equal(await ask('volmirror', 'primary', '--archive-re'), '--archive-region --archive-retention')
      assert.equal(await ask('volmirror', 'dr', '--data-path', ''), 'native js')
      assert.equal(await ask('volmirror', 'primary', '--compress', ''), 'auto zstd none')
      const zsh = await cli(['completion', 'zsh'])
      assert.match(zsh.stdout, /^#compdef volmirror/)
      const fish = await cli(['completion', 'fish'])
      assert.equal(fish.code, 2)
      assert.match(fish.stderr, /completion: shell "fish" is not supported \(bash or zsh\) \[USAGE\]/)
    })
  })

  describe('--config and flags agree', () => {
    it('a primary started from a config file alone runs on the file\'s directories; `status --config` with the same file finds it', async () => {
      const d = await dirs()
      const file = path.join(d.root, 'volmirror.json')
      await writeFile(file, JSON.stringify({
        images: d.images, state: d.state, mount: d.mnt, listen: '127.0.0.1:0', 'retain-journal': true,
        'checkpoint-interval': '5s', 'log-format': 'json', 'hydrate-rate': '200M', // the last is dr's: ignored by primary
      }))
      const node = await startNode(['primary', '--config', file], { state: d.state, mount: d.mnt })
      assert.match(node.stderr, /^\{"ts":/m, 'log-format json from the file')
      const r = await runCli(['status', '--config', file, '--json'])
      assert.equal(r.code, 0, show(r))
      const s = JSON.parse(r.stdout) as PrimaryStatus
      assert.equal(s.role, 'primary')
      assert.equal(s.images, d.images)
      assert.equal(s.state, d.state)
      assert.equal(s.mount, d.mnt)
      assert.match(s.listen ?? '', /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.equal(s.journal.retained, true)
      assert.deepEqual(s.volumes.map(v => v.name), ['vm.raw'])
      // A status-only file may turn --json on.
      const statusFile = path.join(d.root, 'status.json')
      await writeFile(statusFile, JSON.stringify({ state: d.state, json: true }))
      const r2 = await runCli(['status', '--config', statusFile])
      assert.equal(r2.code, 0, show(r2))
      assert.equal((JSON.parse(r2.stdout) as PrimaryStatus).mount, d.mnt)
    })

    it('a flag on the command line wins over the file', async () => {
      const d = await dirs()
      const file = path.join(d.root, 'volmirror.json')
      // The file's mount point does not exist: the node starts only if the flag wins.
      await writeFile(file, JSON.stringify({ images: d.images, state: d.state, mount: path.join(d.root, 'no-such-mnt'), 'log-level': 'error' }))
      const node = await startNode(['primary', '--config', file, '--mount', d.mnt, '--log-level', 'info'], { state: d.state, mount: d.mnt })
      assert.match(node.stderr, / info node\.ready /, 'the --log-level flag should win over the file\'s "error"')
      const s = JSON.parse((await runCli(['status', '--state', d.state, '--json'])).stdout) as PrimaryStatus
      assert.equal(s.mount, d.mnt)
      assert.equal(await exists(path.join(d.root, 'no-such-mnt')), false)
    })
  })

  describe('with a primary and a DR', () => {
    it('--json of status (primary and DR) and of verify parse; the DR shows the verify\'s progress while it runs', async () => {
      const pair = await startPair({
        prepare: async (dd) => {
          // Sparse, 1 GiB, data in a few regions: many regions to compare, little to copy.
          const fh = await open(path.join(dd.images, 'big.raw'), 'w')
          try {
            await fh.truncate(1024 * MiB)
            for (let i = 0; i < 8; i++) await fh.write(randomBytes(MiB), 0, MiB, i * 97 * MiB)
          } finally { await fh.close() }
        },
      })
      await pair.consistent()
      const p = await runCli(['status', '--state', pair.dirs.state, '--json'])
      assert.equal(p.code, 0, show(p))
      const ps = JSON.parse(p.stdout) as PrimaryStatus
      assert.equal(ps.role, 'primary')
      assert.equal(ps.drs.length, 1)
      const s = await runCli(['status', '--state', pair.dirs.drState, '--json'])
      assert.equal(s.code, 0, show(s))
      const ds = JSON.parse(s.stdout) as DrStatus
      assert.equal(ds.role, 'dr')
      assert.equal(ds.consistent, true)
      assert.equal(ds.verifyProgress, undefined, 'no verify ran yet')

      // verify, watched from here through the DR's status.
      const seen: Array<NonNullable<DrStatus['verifyProgress']>> = []
      let verifying = true
      const polling = (async () => {
        while (verifying) {
          const st = await pair.drStatus().catch(() => undefined)
          if (st?.verifyProgress) seen.push(st.verifyProgress)
          await new Promise(resolve => setTimeout(resolve, 5))
        }
      })()
      const v = await runCli(['verify', '--state', pair.dirs.drState, '--json'])
      verifying = false
      await polling
      assert.equal(v.code, 0, show(v))
      const report = JSON.parse(v.stdout) as VerifyReport
      assert.equal(report.volumes, 1)
      assert.equal(report.regionsChecked, 1024)
      assert.deepEqual(report.mismatched, [])
      // Off a terminal the CLI says when the verify is done, on stderr, in the unit of its summary (regions).
      assert.match(v.stderr, /^\d\d:\d\d:\d\d {2}verify regions {2}done {2}1024 regions {2}in [\d.]+ s$/m, show(v))
      const running = seen.filter(x => x.finishedAt === undefined)
      assert.ok(running.length > 0, `never saw the verify running: ${JSON.stringify(seen.slice(-3))}`)
      assert.ok(running.every(x => x.total === 1024 && x.done >= 0 && x.done <= x.total), JSON.stringify(running))
      const last = (await pair.drStatus()).verifyProgress
      assert.ok(last?.finishedAt, JSON.stringify(last))
      assert.equal(last.done, 1024)
      assert.equal(last.total, 1024)
    })

    it('`status --watch` off a terminal: plain progress lines every --interval, a lag line, the DR logs hydrate.progress; SIGINT exits 0', async () => {
      // 24 MiB of random data hydrated at 2 MiB/s: about 12 s of progress to watch.
      const pair = await startPair({ images: { 'vol.raw': randomBytes(24 * MiB) }, hydrateRate: '2M' })
      const w = startWatch(['status', '--state', pair.dirs.drState, '--watch', '--interval', '300ms'])
      const progress = /^\d\d:\d\d:\d\d {2}hydrate vol\.raw {2}(\d+\.\d)% {2}[\d.]+ (?:B|KiB|MiB) of 24\.0 MiB {2}(-|[\d.]+ (?:B|KiB|MiB)\/s) {2}eta (-|\d+s)$/gm
      const lines = await waitFor('three progress lines, one with a rate and an ETA', () => {
        const found = [...w.stdout().matchAll(progress)]
        return found.length >= 3 && found.some(m => m[2] !== '-' && m[3] !== '-') ? found : undefined
      }, 20_000, 50)
      const pcts = lines.map(m => Number(m[1]))
      assert.deepEqual([...pcts].sort((a, b) => a - b), pcts, `hydration went backwards: ${pcts.join(' ')}`)
      assert.match(w.stdout(), /^\d\d:\d\d:\d\d {2}(CONSISTENT|INCONSISTENT) {2}lag \d+ records, at most [\d.]+ s \(RPO\) {2}applied seq \d+ of \d+/m)
      assert.doesNotMatch(w.stdout(), /\x1b\[/, 'escape sequences in plain output')
      // The DR's own log: one line per volume every 5 s, with rate and ETA.
      await waitFor('a hydrate.progress line in the DR\'s log', () =>
        / info hydrate\.progress node=dr volume=vol\.raw done=\d+\.\d% regions=\d+\/24 rate=\d+\.\dMiB\/s eta=\d+s/.test(pair.dr.stderr), 15_000, 100)
      w.kill('SIGINT')
      assert.deepEqual(await w.exit, { code: 0, signal: null }, w.stderr())
      assert.equal(w.stderr(), '')
    })

    it('`status --watch --json` writes one status object per line; a node that is not running fails at once (exit 1)', async () => {
      const pair = await startPair({ images: { 'vol.raw': randomBytes(2 * MiB) } })
      const w = startWatch(['status', '--state', pair.dirs.state, '--watch', '--json', '--interval', '200ms'])
      const objs = await waitFor('three JSON lines', () => {
        const lines = w.stdout().split('\n').filter(Boolean)
        return lines.length >= 3 ? lines.map(l => JSON.parse(l) as PrimaryStatus) : undefined
      }, 15_000, 50)
      assert.ok(objs.every(o => o.role === 'primary' && o.state === pair.dirs.state))
      w.kill('SIGTERM')
      assert.deepEqual(await w.exit, { code: 0, signal: null }, w.stderr())
      const none = await runCli(['status', '--state', path.join(pair.dirs.root, 'nothing'), '--watch'])
      assert.equal(none.code, 1, show(none))
      assert.match(none.stderr, /^volmirror: .* \[NODE_NOT_RUNNING\]$/m)
    })
  })
})
