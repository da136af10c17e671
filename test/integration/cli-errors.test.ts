/**
 * cli-errors: bad input and misuse of the `volmirror` command get clear
 * errors and the documented exit codes, and nothing is lost.
 *
 * The contract (bin/cli.ts): exit 0 on success, 1 on failure, 2 on a usage
 * error; an expected error is one line `volmirror: <message> [CODE]` on
 * stderr, never a stack trace. Every case runs the real launcher
 * (`node bin/volmirror.js ...`) as a child process, on fresh directories
 * whose image directory holds a few files (one in a subdirectory, one
 * sparse). After every failure the test checks that nothing was lost: the
 * image files hash as before, and nothing is left mounted on the mount
 * point (/proc/self/mountinfo).
 *
 * Nodes run as child processes (startNode), so this process hosts no mount;
 * mounts are still only read and written from child processes (fsop, dd),
 * as everywhere in the tests. startNode and tmpDir register their
 * teardown; the mount point of every fixture, and every tmpfs mounted here,
 * is unmounted in teardown even when a test fails.
 *
 * `it.skip` cases with a `// BUG:` comment describe the right behaviour of
 * something the CLI gets wrong today; remove the `.skip` with the fix.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { StateStore } from '../../lib/store/state-store.js'
import { defer, trackMount, unmountHard } from '../helpers/cleanup.js'
import { fsop, fsops } from '../helpers/fsop.js'
import { pattern } from '../helpers/pattern.js'
import { cli, run, runOk, startNode, type NodeProcess, type RunResult } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'
import { ROOT as ROOT_DIR } from '../helpers/proc.js'
import { waitFor } from '../helpers/wait.js'

const MiB = 1024 * 1024
/** Longest a CLI command that fails at start may take (the machine may be busy). */
const CLI_TIMEOUT_MS = 30_000

/** Dirs are one fixture's directories; `state` does not exist until a node (or the test) creates it. */
interface Dirs { root: string, images: string, state: string, mnt: string }

/**
 * fixture makes an image directory with a few volumes, an empty mount point
 * and a path for the state directory. The mount point is unmounted in
 * teardown (before the directories are removed) whatever happened.
 */
async function fixture (): Promise<Dirs> {
  const root = await tmpDir('cli')
  const d: Dirs = { root, images: path.join(root, 'images'), state: path.join(root, 'state'), mnt: path.join(root, 'mnt') }
  await mkdir(path.join(d.images, 'pool'), { recursive: true })
  await mkdir(d.mnt)
  await writeFile(path.join(d.images, 'vm1.raw'), pattern(1, MiB + 12_345))
  await writeFile(path.join(d.images, 'pool', 'vm2.qcow2'), pattern(2, 200_000))
  const fh = await open(path.join(d.images, 'sparse.raw'), 'w')
  try {
    await fh.truncate(64 * MiB)
    await fh.write(pattern(3, 70_000), 0, 70_000, 32 * MiB + 17)
  } finally { await fh.close() }
  trackMount(d.mnt)
  defer(() => unmountHard(d.mnt))
  return d
}

/** primaryArgs is `volmirror primary` on a fixture, logging JSON lines (so tests can read events). */
function primaryArgs (d: Dirs, extra: string[] = []): string[] {
  return ['primary', '--images', d.images, '--state', d.state, '--mount', d.mnt, '--log-format', 'json', ...extra]
}

/** startPrimary runs a primary on the fixture as a child process; teardown stops it. */
function startPrimary (d: Dirs, extra: string[] = []): Promise<NodeProcess> {
  return startNode(primaryArgs(d, extra), { state: d.state, mount: d.mnt })
}

function sha256 (b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

/** snapshot maps every entry under `dir` to `dir` or `<size> <sha256>`. Read from the backing directory, never a mount. */
async function snapshot (dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  const walk = async (rel: string): Promise<void> => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const name = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) {
        out[name] = 'dir'
        await walk(name)
      } else {
        const b = await readFile(path.join(dir, name))
        out[name] = `${b.length} ${sha256(b)}`
      }
    }
  }
  await walk('')
  return out
}

/** mountsAt lists the file system types mounted exactly at `dir` (from /proc/self/mountinfo). */
async function mountsAt (dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8')
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
  const out: string[] = []
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    if (f.length < 10 || unescape(f[4]!) !== dir) continue
    out.push(f[f.indexOf('-') + 1] ?? '')
  }
  return out
}

/** exists tells whether a path exists (a stale mount, ENOTCONN, counts as existing). */
async function exists (p: string): Promise<boolean> {
  return await stat(p).then(() => true, (err: NodeJS.ErrnoException) => err.code !== 'ENOENT')
}

function show (r: RunResult): string {
  return `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`
}

/** assertNoStack fails if the output holds a stack trace or an "unexpected error". */
function assertNoStack (r: RunResult): void {
  assert.doesNotMatch(r.stderr, /^\s+at .+(:\d+:\d+\)?|\(native\))$/m, `stack trace printed\n${show(r)}`)
  assert.doesNotMatch(r.stderr, /unexpected error/, show(r))
}

/**
 * expectError checks the contract for an expected error: exit status `exit`,
 * nothing on stdout, exactly one `volmirror: <message> [CODE]` line on
 * stderr with `code` (other stderr lines may be log events), no stack
 * trace. Returns the message.
 */
function expectError (r: RunResult, exit: 1 | 2, code: string): string {
  assert.equal(r.signal, null, show(r))
  assert.equal(r.code, exit, show(r))
  assertNoStack(r)
  const lines = r.stderr.split('\n').filter(l => l.startsWith('volmirror:'))
  assert.equal(lines.length, 1, `want one "volmirror: <message> [CODE]" line\n${show(r)}`)
  const m = /^volmirror: (.+) \[([A-Z_]+)\]$/.exec(lines[0]!)
  assert.ok(m, `error line not in the form "volmirror: <message> [CODE]"\n${show(r)}`)
  assert.equal(m[2], code, show(r))
  assert.equal(r.stdout, '', show(r))
  return m[1]!
}

/** expectUsage checks a usage error found by the option parser: exit 2, no stack trace, and stderr names `what`. */
function expectUsage (r: RunResult, what: string): void {
  assert.equal(r.signal, null, show(r))
  assert.equal(r.code, 2, show(r))
  assertNoStack(r)
  assert.ok(r.stderr.includes(what), `stderr should name ${what}\n${show(r)}`)
  assert.equal(r.stdout, '', show(r))
}

/** assertNothingLost checks the image directory against `before` and that nothing is mounted on the mount point. */
async function assertNothingLost (d: Dirs, before: Record<string, string>): Promise<void> {
  assert.deepEqual(await snapshot(d.images), before, 'the image directory changed')
  assert.deepEqual(await mountsAt(d.mnt), [], `something is left mounted on ${d.mnt}`)
}

/** events parses a node's JSON log lines (other lines are ignored). */
function events (stderr: string): Array<{ level: string, event: string } & Record<string, unknown>> {
  const out: Array<{ level: string, event: string } & Record<string, unknown>> = []
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue
    try { out.push(JSON.parse(line) as { level: string, event: string }) } catch {}
  }
  return out
}

function runCli (args: string[]): Promise<RunResult> {
  return cli(args, { timeoutMs: CLI_TIMEOUT_MS })
}

describe('volmirror CLI: bad input and misuse get clear errors and exit codes, nothing lost', function () {
  this.timeout(60_000)
  this.slow(3_000)

  describe('usage errors exit 2', () => {
    it('a missing required option (primary without --mount) exits 2, names the option, touches nothing', async () => {
      const d = await fixture()
      const before = await snapshot(d.images)
      const r = await runCli(['primary', '--images', d.images, '--state', d.state])
      expectUsage(r, '--mount')
      assert.equal(await exists(d.state), false, 'a usage error must not create the state directory')
      await assertNothingLost(d, before)
    })

    it('an unknown command exits 2 and names it', async () => {
      const r = await runCli(['frobnicate', '--state', '/nonexistent'])
      expectUsage(r, 'frobnicate')
    })

    it('an unreadable --region-size (abc) exits 2 [USAGE], touches nothing', async () => {
      const d = await fixture()
      const before = await snapshot(d.images)
      const msg = expectError(await runCli(primaryArgs(d, ['--region-size', 'abc'])), 2, 'USAGE')
      assert.match(msg, /--region-size/)
      assert.equal(await exists(d.state), false, 'a usage error must not create the state directory')
      await assertNothingLost(d, before)
    })

    // BUG: `primary --region-size 3M` (also 1.5M, 32M, 16K) on a fresh state
    // directory exits 1 with `volmirror: region size must be a power of two
    // between 64 KiB and 16 MiB, not 3145728 [INVALID_ARGUMENT]`, and only
    // after it created and opened the state directory (STATE/db is left
    // behind). A bad option value is a usage error: exit 2, [USAGE], naming
    // the option, found before anything is touched (checkRegionSize in the
    // CLI, next to parseSize).
    it('a --region-size that is not a power of two in 64K..16M is a usage error (exit 2), found before anything is touched', async () => {
      const d = await fixture()
      const before = await snapshot(d.images)
      for (const size of ['3M', '1.5M', '32M', '16K']) {
        const state = path.join(d.root, `state-${size}`)
        const r = await runCli(['primary', '--images', d.images, '--state', state, '--mount', d.mnt, '--region-size', size])
        const msg = expectError(r, 2, 'USAGE')
        assert.match(msg, /--region-size/, `the message should name the option\n${show(r)}`)
        assert.equal(await exists(state), false, `--region-size ${size}: the state directory must not be created`)
        await assertNothingLost(d, before)
      }
    })

    // BUG: `primary --region-size 0` is silently taken as "no size given":
    // bin/cli.ts passes 0, PrimaryNode.start drops a falsy regionSize, and
    // the node starts (and initialises the state directory) with 1 MiB
    // regions. It must be refused like any other bad size: exit 2, [USAGE].
    // (`--checkpoint-interval 0` is dropped the same way and becomes 30s.)
    it('--region-size 0 is a usage error, not the default size', async () => {
      const d = await fixture()
      const before = await snapshot(d.images)
      // With the bug the node starts and keeps running: the timeout kills it, teardown unmounts.
      const r = await cli(primaryArgs(d, ['--region-size', '0']), { timeoutMs: 10_000 })
      expectError(r, 2, 'USAGE')
      assert.equal(await exists(d.state), false, 'the state directory must not be created')
      await assertNothingLost(d, before)
    })

    it('a bad --checkpoint-interval (soon) exits 2 [USAGE], names the option, touches nothing', async () => {
      const d = await fixture()
      const before = await snapshot(d.images)
      const msg = expectError(await runCli(primaryArgs(d, ['--checkpoint-interval', 'soon'])), 2, 'USAGE')
      assert.match(msg, /--checkpoint-interval/)
      assert.equal(await exists(d.state), false, 'a usage error must not create the state directory')
      await assertNothingLost(d, before)
    })

    // BUG: usage errors found by the option parser (commander) are printed in
    // commander's form, `error: required option '--mount <dir>' not
    // specified` plus `(run with --help for usage)`, not as the one line
    // `volmirror: <message> [USAGE]` of the CLI contract that scripts match
    // on (parseSize/parseDuration errors do use the contract form). Affects
    // missing options, unknown commands and options, bad choices, missing
    // option values, extra arguments.
    it('usage errors found by the option parser print the one line `volmirror: <message> [USAGE]`', async () => {
      const cases: Array<[string[], string]> = [
        [['primary', '--images', '/x', '--state', '/y'], '--mount'],
        [['frobnicate'], 'frobnicate'],
        [['status', '--state', '/y', '--bogus'], '--bogus'],
        [['status', '--state', '/y', '--log-level', 'loud'], 'loud'],
        [['status', '--state'], '--state'],
        [['status', '--state', '/y', 'extra'], 'too many arguments'],
      ]
      for (const [args, what] of cases) {
        const r = await runCli(args)
        const msg = expectError(r, 2, 'USAGE')
        assert.ok(msg.includes(what), `volmirror ${args.join(' ')}: the message should name ${what}\n${show(r)}`)
      }
    })

    // BUG: `volmirror` with no command prints the help on stderr and exits 0:
    // commander raises `commander.help` with exitCode 1 and fail() in
    // bin/cli.ts maps that code to 0 without looking at err.exitCode. A
    // script that runs `volmirror $CMD` with an empty $CMD believes it
    // succeeded. Expected: exit 2 (usage error), help on stderr.
    it('an unknown flag is named before any missing required one', async () => {
      const msg = expectError(await runCli(['primary', '--bogus']), 2, 'USAGE')
      assert.equal(msg, "unknown option '--bogus' for `volmirror primary` (see volmirror primary --help)")
      const sub = expectError(await runCli(['archive', 'ls', '--archive', 's3://abc/x', '--nope=1']), 2, 'USAGE')
      assert.equal(sub, "unknown option '--nope' for `volmirror archive ls` (see volmirror archive ls --help)")
    })

    it('a URL flag that is no URL echoes the value and gives an example', async () => {
      const d = await fixture()
      const msg = expectError(await runCli(['dr', '--images', d.images, '--state', d.state, '--mount', d.mnt, '--primary', 'notaurl', '--token-file', path.join(d.root, 't')]), 2, 'USAGE')
      assert.equal(msg, '--primary: not a URL: "notaurl" (e.g. http://primary:7070)')
    })

    it('a config value of the wrong type for a path is refused, not taken as a path', async () => {
      const d = await fixture()
      const file = path.join(d.root, 'c.json')
      await writeFile(file, '{"state": 5}')
      const msg = expectError(await runCli(['status', '--config', file]), 2, 'USAGE')
      assert.equal(msg, `--config: ${file}: "state" is a path: give it as text, e.g. "./state", not 5`)
    })

    it('a missing token file is said in words, the path once', async () => {
      const d = await fixture()
      const t = path.join(d.root, 'no-token')
      const msg = expectError(await runCli(['dr', '--images', path.join(d.root, 'r'), '--state', d.state, '--mount', d.mnt, '--primary', 'http://127.0.0.1:9', '--token-file', t]), 1, 'NOT_FOUND')
      assert.equal(msg, `open token file ${t}: no such file or directory`)
    })

    it('no command at all is a usage error (exit 2), not success', async () => {
      const r = await runCli([])
      assert.equal(r.code, 2, show(r))
      assert.match(r.stderr, /Usage: volmirror/)
      assertNoStack(r)
    })
  })

  describe('example config files (fixtures/examples)', () => {
    for (const [file, command] of [['primary.json', 'primary'], ['primary-tls.json', 'primary'], ['dr.json', 'dr'], ['dr-tls.json', 'dr']] as const) {
      it(`${file} is read by \`volmirror ${command}\`: every key known, every value of its type`, async () => {
        const root = await tmpDir('example')
        // The example's absolute paths, moved under a scratch directory.
        const text = (await readFile(path.join(ROOT_DIR, 'fixtures', 'examples', file), 'utf8')).replace(/"\/(srv|var|etc)\//g, `"${root}/$1/`)
        const copy = path.join(root, file)
        await writeFile(copy, text)
        const r = await runCli([command, '--config', copy])
        // It gets as far as the machine: a missing mount point or token file, never a usage error.
        const msg = expectError(r, 1, command === 'primary' ? 'MOUNTPOINT_MISSING' : 'NOT_FOUND')
        assert.ok(msg.includes(root), msg)
      })
    }
  })

  describe('help', () => {
    for (const [command, example] of [['primary', 'volmirror primary --images'], ['status', 'volmirror status --state']] as const) {
      it(`\`${command} --help\` exits 0 and shows an example`, async () => {
        const r = await runCli([command, '--help'])
        assert.equal(r.code, 0, show(r))
        assert.match(r.stdout, new RegExp(`^Usage: volmirror ${command}`, 'm'))
        assert.match(r.stdout, /^Example:/m)
        assert.ok(r.stdout.includes(example), show(r))
        assert.equal(r.stderr, '', show(r))
      })
    }
  })

  describe('mount point', () => {
    it('missing: exit 1 MOUNTPOINT_MISSING, the message says how to create it, nothing is created', async () => {
      const d = await fixture()
      const mnt = path.join(d.root, 'no', 'such', 'mnt')
      trackMount(mnt)
      const before = await snapshot(d.images)
      const msg = expectError(await runCli(['primary', '--images', d.images, '--state', d.state, '--mount', mnt]), 1, 'MOUNTPOINT_MISSING')
      assert.ok(msg.includes(`mkdir -p ${mnt}`), `the message should say how to create it: ${msg}`)
      assert.equal(await exists(mnt), false, 'the mount point must not be created behind the user\'s back')
      assert.equal(await exists(d.state), false, 'validation comes before the state directory is created')
      assert.deepEqual(await mountsAt(mnt), [])
      await assertNothingLost(d, before)
    })

    it('missing on a DR: nothing is created either (no state, no image directory)', async () => {
      const d = await fixture()
      const mnt = path.join(d.root, 'no-such-mnt')
      const drImages = path.join(d.root, 'dr-images')
      await writeFile(path.join(d.root, 't'), 'x'.repeat(64) + '\n', { mode: 0o600 })
      expectError(await runCli(['dr', '--images', drImages, '--state', d.state, '--mount', mnt, '--primary', 'http://127.0.0.1:9', '--token-file', path.join(d.root, 't')]), 1, 'MOUNTPOINT_MISSING')
      assert.equal(await exists(d.state), false)
      assert.equal(await exists(drImages), false)
    })

    it('not a directory: exit 1 MOUNTPOINT_NOT_DIRECTORY, the file is untouched', async () => {
      const d = await fixture()
      const file = path.join(d.root, 'a-file')
      await writeFile(file, 'keep me\n')
      trackMount(file)
      const before = await snapshot(d.images)
      expectError(await runCli(['primary', '--images', d.images, '--state', d.state, '--mount', file]), 1, 'MOUNTPOINT_NOT_DIRECTORY')
      assert.equal(await readFile(file, 'utf8'), 'keep me\n')
      assert.deepEqual(await mountsAt(file), [])
      await assertNothingLost(d, before)
    })

    it('not empty: exit 1 MOUNTPOINT_NOT_EMPTY, its contents are untouched', async () => {
      const d = await fixture()
      await writeFile(path.join(d.mnt, 'notes.txt'), 'mine\n')
      const before = await snapshot(d.images)
      expectError(await runCli(primaryArgs(d)), 1, 'MOUNTPOINT_NOT_EMPTY')
      assert.deepEqual(await readdir(d.mnt), ['notes.txt'])
      assert.equal(await readFile(path.join(d.mnt, 'notes.txt'), 'utf8'), 'mine\n')
      await assertNothingLost(d, before)
    })

    it('already a mount (an empty tmpfs): exit 1 MOUNTPOINT_IN_USE, the tmpfs is left alone', async () => {
      const d = await fixture()
      await runOk('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', d.mnt])
      defer(async () => { if ((await mountsAt(d.mnt)).length > 0) await run('umount', [d.mnt]) })
      assert.deepEqual(await mountsAt(d.mnt), ['tmpfs'])
      const before = await snapshot(d.images)
      expectError(await runCli(primaryArgs(d)), 1, 'MOUNTPOINT_IN_USE')
      assert.deepEqual(await mountsAt(d.mnt), ['tmpfs'], 'the tmpfs must stay, and nothing be mounted over it')
      assert.deepEqual(await readdir(d.mnt), [])
      assert.deepEqual(await snapshot(d.images), before)
      await runOk('umount', [d.mnt])
      assert.deepEqual(await mountsAt(d.mnt), [])
    })
  })

  it('image directory missing: exit 1 IMAGES_MISSING, nothing mounted', async () => {
    const d = await fixture()
    const images = path.join(d.root, 'no-images')
    const r = await runCli(['primary', '--images', images, '--state', d.state, '--mount', d.mnt])
    expectError(r, 1, 'IMAGES_MISSING')
    assert.equal(await exists(images), false)
    assert.deepEqual(await mountsAt(d.mnt), [])
    assert.deepEqual(await readdir(d.mnt), [])
  })

  describe('state directory', () => {
    it('in use by a running node: exit 1 STATE_LOCKED, and the running node is unaffected', async () => {
      const d = await fixture()
      const first = await startPrimary(d)
      const mnt2 = path.join(d.root, 'mnt2')
      await mkdir(mnt2)
      trackMount(mnt2)
      defer(() => unmountHard(mnt2))
      const statusBefore = await first.status<{ nodeId: string, seq: { last: number } }>()
      const before = await snapshot(d.images)

      const r = await runCli(['primary', '--images', d.images, '--state', d.state, '--mount', mnt2])
      expectError(r, 1, 'STATE_LOCKED')
      assert.deepEqual(await mountsAt(mnt2), [], 'the second node must not mount')
      assert.deepEqual(await readdir(mnt2), [])
      assert.deepEqual(await snapshot(d.images), before, 'the image directory changed')

      // The first node: still running, still answering, its mount still works.
      assert.equal(first.exit, undefined, `the first node exited:\n${first.stderr}`)
      const s = await first.status<{ nodeId: string, seq: { last: number }, mount: string }>()
      assert.equal(s.nodeId, statusBefore.nodeId)
      assert.equal(s.mount, d.mnt)
      assert.deepEqual(await mountsAt(d.mnt), ['fuse.volmirror'])
      assert.deepEqual((await fsop({ op: 'readdir', path: d.mnt })).names, ['pool', 'sparse.raw', 'vm1.raw'])
      const [w, h] = await fsops([
        { op: 'write', path: path.join(d.mnt, 'vm1.raw'), offset: 4096, seed: 9, length: 65_536, fsync: true },
        { op: 'read', path: path.join(d.mnt, 'vm1.raw'), offset: 4096, length: 65_536, hash: true },
      ])
      assert.ok(w!.ok, JSON.stringify(w))
      assert.equal(h!.sha256, sha256(pattern(9, 65_536)))
      assert.ok((await first.status<{ seq: { last: number } }>()).seq.last > statusBefore.seq.last, 'the write was journaled')
    })

    it('region size mismatch: exit 1 STATE_REGION_SIZE_MISMATCH, and the state still opens with its own size', async () => {
      const d = await fixture()
      const n1 = await startPrimary(d, ['--region-size', '1M'])
      await runOk('dd', ['if=/dev/urandom', `of=${path.join(d.mnt, 'new.raw')}`, 'bs=64k', 'count=4', 'conv=fsync', 'status=none'])
      const lastSeq = (await n1.status<{ seq: { last: number } }>()).seq.last
      assert.ok(lastSeq > 0)
      assert.deepEqual(await n1.stop(), { code: 0, signal: null }, n1.stderr)
      const before = await snapshot(d.images)

      expectError(await runCli(primaryArgs(d, ['--region-size', '2M'])), 1, 'STATE_REGION_SIZE_MISMATCH')
      await assertNothingLost(d, before)

      const n2 = await startPrimary(d, ['--region-size', '1M'])
      const s = await n2.status<{ regionSize: number, seq: { last: number } }>()
      assert.equal(s.regionSize, MiB)
      assert.equal(s.seq.last, lastSeq, 'the journal position survived the failed start')
    })

    // BUG: a state directory initialised with `--region-size 2M` cannot be
    // restarted without repeating the option: `primary` without
    // --region-size fails with `... was initialised with region size
    // 2097152, not 1048576 (the region size is fixed at init)
    // [STATE_REGION_SIZE_MISMATCH]`, because the option's default '1M' is
    // always passed. Omitting the option should mean "the size fixed at
    // init" (the help says "fixed at first start").
    it('a restart without --region-size keeps the size fixed at init', async () => {
      const d = await fixture()
      const n1 = await startPrimary(d, ['--region-size', '2M'])
      assert.deepEqual(await n1.stop(), { code: 0, signal: null }, n1.stderr)
      const n2 = await startPrimary(d)
      assert.equal((await n2.status<{ regionSize: number }>()).regionSize, 2 * MiB)
    })

    it('role mismatch (a DR state directory given to primary): exit 1 STATE_ROLE_MISMATCH, the state stays a DR', async () => {
      const d = await fixture()
      const dr = await StateStore.open(d.state, { role: 'dr' })
      const nodeId = dr.identity.nodeId
      await dr.close()
      const before = await snapshot(d.images)

      expectError(await runCli(primaryArgs(d)), 1, 'STATE_ROLE_MISMATCH')
      await assertNothingLost(d, before)

      const again = await StateStore.open(d.state, { role: 'dr' })
      try {
        assert.equal(again.identity.role, 'dr')
        assert.equal(again.identity.nodeId, nodeId)
      } finally { await again.close() }
    })
  })

  it('a stale mount left by a killed node is cleaned at the next start, and fsynced data is there', async () => {
    const d = await fixture()
    const before = await snapshot(d.images)
    const src = path.join(d.root, 'src.bin')
    const data = pattern(7, 3 * MiB + 4096)
    await writeFile(src, data)

    const n1 = await startPrimary(d)
    await runOk('dd', [`if=${src}`, `of=${path.join(d.mnt, 'disk.raw')}`, 'bs=128k', 'conv=fsync', 'status=none'])
    await n1.kill9()
    assert.equal(n1.exit?.signal, 'SIGKILL')
    await waitFor('the mount to be stale (ENOTCONN)', async () => (await fsops([{ op: 'stat', path: d.mnt }]))[0]!.code === 'ENOTCONN')
    assert.deepEqual(await mountsAt(d.mnt), ['fuse.volmirror'])

    // Its control socket is left behind, but nothing answers it.
    expectError(await runCli(['status', '--state', d.state]), 1, 'NODE_NOT_RUNNING')

    const n2 = await startPrimary(d)
    await waitFor('the fuse.stale_mount_cleaned event', () => events(n2.stderr).some(e => e.event === 'fuse.stale_mount_cleaned' && e.mount === d.mnt))
    assert.deepEqual(await mountsAt(d.mnt), ['fuse.volmirror'], 'exactly one live mount, not one stacked on the stale one')
    const [h, ls] = await fsops([
      { op: 'hash', path: path.join(d.mnt, 'disk.raw') },
      { op: 'readdir', path: d.mnt },
    ])
    assert.equal(h!.sha256, sha256(data), 'the data fsynced before the kill is in the mount')
    assert.deepEqual(ls!.names, ['disk.raw', 'pool', 'sparse.raw', 'vm1.raw'])
    assert.deepEqual(await snapshot(d.images), { ...before, 'disk.raw': `${data.length} ${sha256(data)}` })
  })

  describe('status', () => {
    it('with no node running: exit 1 NODE_NOT_RUNNING', async () => {
      const d = await fixture()
      await mkdir(d.state)
      expectError(await runCli(['status', '--state', d.state]), 1, 'NODE_NOT_RUNNING')
      expectError(await runCli(['status', '--state', d.state, '--json']), 1, 'NODE_NOT_RUNNING')
      expectError(await runCli(['status', '--state', path.join(d.root, 'never-created')]), 1, 'NODE_NOT_RUNNING')
    })

    it('with a node running: exit 0, text that shows the mount; --json parses with role primary', async () => {
      const d = await fixture()
      await startPrimary(d)
      const text = await runCli(['status', '--state', d.state])
      assert.equal(text.code, 0, show(text))
      assert.equal(text.stderr, '', show(text))
      assert.match(text.stdout, /^volmirror primary/)
      assert.match(text.stdout, new RegExp(`^\\s*mount\\s+${d.mnt.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'))
      assert.match(text.stdout, /vm1\.raw/)

      const json = await runCli(['status', '--state', d.state, '--json'])
      assert.equal(json.code, 0, show(json))
      const s = JSON.parse(json.stdout) as { role: string, mount: string, state: string, volumes: Array<{ name: string, size: number }> }
      assert.equal(s.role, 'primary')
      assert.equal(s.mount, d.mnt)
      assert.equal(s.state, d.state)
      assert.deepEqual(s.volumes.map(v => [v.name, v.size]), [['pool/vm2.qcow2', 200_000], ['sparse.raw', 64 * MiB], ['vm1.raw', MiB + 12_345]])
    })
  })

  describe('signals', () => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      it(`${signal} on a running node unmounts cleanly and exits 0, writes kept`, async () => {
        const d = await fixture()
        const node = await startPrimary(d)
        const w = await fsop({ op: 'write', path: path.join(d.mnt, 'vm1.raw'), offset: 100_000, seed: 21, length: 300_000 })
        assert.equal(w.written, 300_000)

        node.child.kill(signal)
        assert.deepEqual(await node.waitExit(), { code: 0, signal: null }, node.stderr)
        assert.deepEqual(await mountsAt(d.mnt), [], 'the mount is gone')
        assert.deepEqual(await readdir(d.mnt), [], 'the mount point is an empty directory again')
        const ev = events(node.stderr)
        assert.ok(ev.some(e => e.event === 'node.stopping' && e.signal === signal), node.stderr)
        assert.ok(ev.some(e => e.event === 'fuse.unmounted'), node.stderr)
        assert.ok(ev.some(e => e.event === 'node.stopped'), node.stderr)
        const trouble = ev.filter(e => e.level === 'error' || e.level === 'warn')
        assert.deepEqual(trouble, [], 'a clean stop warns about nothing')
        assertNoStack({ code: 0, signal: null, stdout: '', stderr: node.stderr })

        const image = await readFile(path.join(d.images, 'vm1.raw'))
        assert.equal(image.length, MiB + 12_345)
        assert.equal(sha256(image.subarray(100_000, 400_000)), sha256(pattern(21, 300_000)))
        assert.equal(sha256(image.subarray(0, 100_000)), sha256(pattern(1, MiB + 12_345).subarray(0, 100_000)))
        expectError(await runCli(['status', '--state', d.state]), 1, 'NODE_NOT_RUNNING')
      })
    }
  })
})
