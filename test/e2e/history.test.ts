/**
 * Recovery points (`dr --history`): point-in-time views, test failover,
 * promote --at, and a promotion in the middle of a resync; primary and DR
 * as separate processes, through the CLI.
 *
 *   - mount-at --seq, at several moments taken under steady writers and
 *     namespace changes (create, truncate, rename, delete), gives exactly
 *     what the primary's journal says the volumes were at that seq (the
 *     primary keeps its journal: --retain-journal); an ext4 image seen at
 *     a point where it was unmounted passes fsck -n; `history` lists them;
 *   - retention (--history-size) drops the oldest points first, only as
 *     many as needed;
 *   - test-failover: writes in the overlay never reach the DR's images,
 *     replication goes on meanwhile, and ending it leaves no mount, process
 *     or scratch file;
 *   - promote --at rolls the images back to a point;
 *   - a DR resyncing after an outage is promoted without --force at the
 *     point its status predicted, with the primary killed at several points
 *     of the resync.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import type { DrStatus } from '../../lib/node/dr-node.js'
import { defer, trackMount, trackPid, unmountHard, untrackPid } from '../helpers/cleanup.js'
import { fsop, fsops } from '../helpers/fsop.js'
import { journalTree, type Tree } from '../helpers/journal-model.js'
import { startLoopWriter } from '../helpers/loop-writer.js'
import { drOf, freePort, inSync, MiB } from '../helpers/mirror.js'
import { startPair, type Pair } from '../helpers/pair.js'
import { pattern } from '../helpers/pattern.js'
import { CLI, cli, run, runOk } from '../helpers/proc.js'
import { startProxy } from '../helpers/tcp-proxy.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** HeldView is a running `mount-at` / `test-failover` command. */
interface HeldView { child: ChildProcess, mount: string, out: () => string, stop: () => Promise<number | null> }

/** holdView runs `volmirror <cmd> ...` until it says the mount is there; stop() sends SIGINT and waits for the exit. */
async function holdView (cmd: 'mount-at' | 'test-failover', state: string, args: string[]): Promise<HeldView> {
  const mount = await tmpDir('view')
  trackMount(mount)
  const child = spawn(process.execPath, [CLI, cmd, '--state', state, '--mount', mount, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  trackPid(child.pid)
  let out = ''
  child.stdout!.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr!.on('data', (c: Buffer) => { out += c.toString() })
  let code: number | null | undefined
  const exited = new Promise<number | null>(resolve => child.on('exit', c => { code = c; untrackPid(child.pid); resolve(c) }))
  const stop = async (): Promise<number | null> => {
    if (code === undefined) child.kill('SIGINT')
    return await exited
  }
  defer(async () => { await stop(); await unmountHard(mount) })
  await waitFor(`${cmd} to mount`, () => { if (code !== undefined) throw new Error(`${cmd} exited ${code}: ${out}`); return /mounted at/.test(out) }, 30_000, 20)
  return { child, mount, out: () => out, stop }
}

/** viewTree reads every volume of a mounted view (in a child process): name -> sha256, size. */
async function viewTree (mount: string, names: string[]): Promise<Map<string, { size: number, sha256: string }>> {
  const res = await fsops(names.map(n => ({ op: 'hash', path: path.join(mount, n) })))
  return new Map(names.map((n, i) => [n, { size: res[i]!.size as number, sha256: res[i]!.sha256 as string }]))
}

/** listTree lists the files of a mounted view (recursively), in a child process. */
async function listTree (mount: string): Promise<string[]> {
  const r = await runOk('find', [mount, '-type', 'f', '-printf', '%P\\n'])
  return r.stdout.split('\n').filter(Boolean).sort()
}

/** awaitPoint waits until the DR has a recovery point at or past the primary's last seq now, and returns it. */
async function awaitPoint (pair: Pair): Promise<number> {
  const last = (await pair.primaryStatus()).seq.last
  const p = await waitFor(`a recovery point at seq ${last} or later`, async () => {
    const s = await drOf(pair.dirs.drState)
    return s.recovery?.last && s.recovery.last.seq >= last ? s.recovery.last : undefined
  }, 30_000, 20)
  return p.seq
}

async function mkfsExt4 (file: string, sizeMiB: number): Promise<void> {
  await runOk('truncate', ['-s', `${sizeMiB}M`, file])
  await runOk('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', file])
}

describe('history: recovery points, point-in-time views, test failover, promote --at (primary and DR processes)', function () {
  this.timeout(10 * 60_000)

  it('mount-at --seq shows every volume exactly as the journal had it at each of several moments; fsck -n passes on an ext4 image seen clean; history lists them', async () => {
    const pair = await startPair({
      images: { 'vm1.raw': pattern(1, 8 * MiB), 'vm2.raw': pattern(2, 4 * MiB) },
      primaryArgs: ['--retain-journal'],
      drArgs: ['--history', '1h'],
      prepare: async (d) => { await mkfsExt4(path.join(d.images, 'fs.img'), 64) },
    })
    await inSync(pair.dirs.state, pair.dirs.drState)
    const start: Tree = new Map()
    for (const n of ['vm1.raw', 'vm2.raw', 'fs.img']) start.set(n, await readFile(path.join(pair.dirs.images, n)))
    const m = (n: string): string => path.join(pair.dirs.mnt, n)
    // Two writers all along, overwriting their own slots.
    const w1 = await startLoopWriter(pair.dirs.root, 'w1', { file: m('vm1.raw'), offset: 0, length: 64 * 1024, slots: 100, seed: 1000, group: 3 })
    const w2 = await startLoopWriter(pair.dirs.root, 'w2', { file: m('vm2.raw'), offset: 4096, length: 4096, slots: 500, seed: 2000, group: 5 })
    const moments: Array<{ seq: number, what: string }> = []
    const moment = async (what: string): Promise<void> => {
      await waitFor('more writes', async () => (await w1.acks()).length + (await w2.acks()).length > moments.length * 30 + 30, 60_000, 20)
      moments.push({ seq: await awaitPoint(pair), what })
    }
    await moment('writers only')
    // ext4 through a loop device on the primary's mount: files written, unmounted (clean).
    const loop = await tmpDir('loop')
    await runOk('mount', ['-o', 'loop', m('fs.img'), loop])
    try {
      for (let i = 0; i < 20; i++) await fsop({ op: 'writeText', path: path.join(loop, `f${i}.txt`), text: `file ${i}\n`.repeat(500) })
    } finally {
      await runOk('umount', [loop])
    }
    await moment('ext4 unmounted clean')
    await fsop({ op: 'write', path: m('vm3.raw'), offset: 0, seed: 3, length: 300_000, create: true, fsync: true })
    await moment('vm3 created')
    await fsop({ op: 'truncate', path: m('vm2.raw'), size: 1 * MiB })
    await moment('vm2 cut to 1 MiB')
    await fsop({ op: 'rename', from: m('vm3.raw'), to: m('vm3-renamed.raw') })
    await fsop({ op: 'unlink', path: m('vm3-renamed.raw') })
    await moment('vm3 renamed and deleted')
    await w1.stop()
    await w2.stop()
    await inSync(pair.dirs.state, pair.dirs.drState)

    const h = await cli(['history', '--state', pair.dirs.drState, '--json'])
    assert.equal(h.code, 0, h.stderr)
    const hist = JSON.parse(h.stdout) as { status: { points: number, first: { seq: number }, last: { seq: number } }, spans: Array<{ points: number }> }
    assert.ok(hist.status.points >= moments.length, `history lists points: ${h.stdout.slice(0, 300)}`)
    assert.ok(hist.status.first.seq <= moments[0]!.seq && hist.status.last.seq >= moments.at(-1)!.seq)
    const text = await cli(['history', '--state', pair.dirs.drState])
    assert.match(text.stdout, /recovery points, .* of undo entries/)

    // What each view shows, read now (replication is idle; the views were taken under writes).
    const seen: Array<Map<string, { size: number, sha256: string }>> = []
    for (const mo of moments) {
      const v = await holdView('mount-at', pair.dirs.drState, ['--seq', String(mo.seq)])
      assert.match(v.out(), new RegExp(`seq ${mo.seq} at `))
      const names = await listTree(v.mount)
      seen.push(new Map([...await viewTree(v.mount, names)]))
      if (mo.what === 'ext4 unmounted clean') {
        const fsck = await run('e2fsck', ['-f', '-n', path.join(v.mount, 'fs.img')])
        assert.equal(fsck.code, 0, `fsck -n of the ext4 image at seq ${mo.seq}: ${fsck.stdout}${fsck.stderr}`)
      }
      assert.equal(await v.stop(), 0, v.out())
      assert.match(v.out(), /read-only view ended: unmounted/)
    }
    // What the primary's journal says they were.
    await pair.dr.stop()
    await pair.primary.stop()
    const expect = new Map<number, Tree>()
    await journalTree(pair.dirs.state, start, { seqs: moments.map(mo => mo.seq), snapshot: (seq, t) => expect.set(seq, t) })
    moments.forEach((mo, i) => {
      const want = expect.get(mo.seq)!
      const got = seen[i]!
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `volumes at seq ${mo.seq} (${mo.what})`)
      for (const [n, b] of want) assert.deepEqual(got.get(n), { size: b.length, sha256: sha(b) }, `${n} at seq ${mo.seq} (${mo.what})`)
    })
    console.log(`      ${moments.length} moments (${moments.map(mo => `seq ${mo.seq}: ${mo.what}`).join('; ')}), ${hist.status.points} points kept`)
  })

  it('retention drops the oldest points first, and only as many as the size bound needs', async () => {
    const pair = await startPair({ images: { 'vm1.raw': pattern(1, 16 * MiB) }, drArgs: ['--history', '1h', '--history-size', '3M'] })
    await inSync(pair.dirs.state, pair.dirs.drState)
    const firsts: number[] = []
    for (let i = 0; i < 12; i++) {
      await fsop({ op: 'write', path: path.join(pair.dirs.mnt, 'vm1.raw'), offset: i * MiB, seed: 100 + i, length: MiB, fsync: true })
      await awaitPoint(pair)
      firsts.push((await drOf(pair.dirs.drState)).recovery!.first!.seq)
    }
    let seen: unknown
    const s = await waitFor('retention to settle', async () => {
      const r = (await drOf(pair.dirs.drState)).recovery!
      seen = r
      return r.bytes <= 3 * MiB ? r : undefined
    }, 10_000).catch(err => { throw new Error(`${(err as Error).message}: ${JSON.stringify(seen)}`) })
    assert.ok(s.dropped > 0, 'some points were dropped')
    for (let i = 1; i < firsts.length; i++) assert.ok(firsts[i]! >= firsts[i - 1]!, 'the oldest point only moves forward')
    // Never more than asked: each point here holds 1 MiB of undo entries, so
    // what is left is within one point of the bound.
    assert.ok(s.bytes > 2 * MiB, `retention dropped only what it had to: ${s.bytes} bytes left of a 3 MiB bound`)
    console.log(`      ${s.points} points kept, ${(s.bytes / MiB).toFixed(2)} MiB of undo entries (bound 3 MiB), ${s.dropped} dropped, oldest seq ${s.first!.seq}`)
  })

  it('test-failover: a writable mount at the latest point; writes never reach the DR images, replication goes on, nothing is left behind', async () => {
    const pair = await startPair({
      images: { 'vm1.raw': pattern(1, 8 * MiB) },
      drArgs: ['--history', '1h'],
      prepare: async (d) => { await mkfsExt4(path.join(d.images, 'fs.img'), 64) },
    })
    await inSync(pair.dirs.state, pair.dirs.drState)
    const drImage = async (): Promise<string[]> => [sha(await readFile(path.join(pair.dirs.drImages, 'vm1.raw'))), sha(await readFile(path.join(pair.dirs.drImages, 'fs.img')))]
    const w = await startLoopWriter(pair.dirs.root, 'w', { file: path.join(pair.dirs.mnt, 'vm1.raw'), offset: 4 * MiB, length: 4096, slots: 256, seed: 7, group: 2 })
    await waitFor('some writes', async () => (await w.acks()).length > 10, 30_000)
    const t = await holdView('test-failover', pair.dirs.drState, [])
    assert.match(t.out(), /test failover of seq \d+ .* mounted at .*; writes go to /)
    const scratch = /writes go to (\S+?)\./.exec(t.out())![1]!
    // Writes through the test mount, and a kernel file system on it.
    await fsop({ op: 'write', path: path.join(t.mount, 'vm1.raw'), offset: 1000, seed: 99, length: 100_000, fsync: true })
    const back = await fsop({ op: 'read', path: path.join(t.mount, 'vm1.raw'), offset: 1000, length: 100_000, hash: true })
    assert.equal(back.sha256, sha(pattern(99, 100_000)), 'the test mount reads its own writes')
    const fsck = await run('e2fsck', ['-f', '-n', path.join(t.mount, 'fs.img')])
    assert.equal(fsck.code, 0, `fsck -n in the test failover: ${fsck.stdout}${fsck.stderr}`)
    const loop = await tmpDir('loop')
    await runOk('mount', ['-o', 'loop', path.join(t.mount, 'fs.img'), loop])
    try {
      await fsop({ op: 'writeText', path: path.join(loop, 'booted.txt'), text: 'the test VM was here\n' })
    } finally {
      await runOk('umount', [loop])
    }
    // Replication goes on underneath.
    const before = (await drOf(pair.dirs.drState)).seq.applied
    await waitFor('the DR to apply more groups during the test', async () => (await drOf(pair.dirs.drState)).seq.applied > before + 5, 30_000)
    await w.stop()
    const { d } = await inSync(pair.dirs.state, pair.dirs.drState)
    assert.ok(d.lag.seconds !== null && d.lag.seconds < 2, `lag stayed normal: ${d.lag.seconds} s`)
    // The DR's images hold the primary's bytes, not the test's.
    const after = await drImage()
    assert.equal(after[0], sha(await readFile(path.join(pair.dirs.images, 'vm1.raw'))), 'vm1 on the DR is the primary\'s')
    assert.equal(after[1], sha(await readFile(path.join(pair.dirs.images, 'fs.img'))), 'fs.img on the DR is the primary\'s')
    assert.equal(await t.stop(), 0, t.out())
    assert.match(t.out(), /test failover ended: unmounted .*; [\d.]+ \S+ written discarded/)
    const mounts = await readFile('/proc/self/mountinfo', 'utf8')
    assert.ok(!mounts.includes(t.mount), 'the test mount is gone')
    await assert.rejects(stat(scratch), 'the scratch overlay is gone')
    assert.deepEqual(await readdir(path.dirname(scratch)).catch(() => []), [], 'no scratch files left')
  })

  it('promote --at rolls the images back to a recovery point, namespace changes included', async () => {
    const pair = await startPair({ images: { 'vm1.raw': pattern(1, 4 * MiB) }, drArgs: ['--history', '1h'] })
    await inSync(pair.dirs.state, pair.dirs.drState)
    const m = (n: string): string => path.join(pair.dirs.mnt, n)
    await fsop({ op: 'write', path: m('vm1.raw'), offset: 0, seed: 5, length: 2 * MiB, fsync: true })
    const point = await awaitPoint(pair)
    const want = sha(await readFile(path.join(pair.dirs.images, 'vm1.raw')))
    // "Ransomware": everything overwritten, a new file, the volume renamed.
    await fsop({ op: 'write', path: m('vm1.raw'), offset: 0, seed: 6, length: 4 * MiB, fsync: true })
    await fsop({ op: 'write', path: m('note.txt'), offset: 0, seed: 7, length: 1000, create: true, fsync: true })
    await fsop({ op: 'rename', from: m('vm1.raw'), to: m('vm1.locked') })
    await awaitPoint(pair)
    await pair.primary.stop()
    const p = await cli(['promote', '--state', pair.dirs.drState, '--seq', String(point)])
    assert.equal(p.code, 0, p.stderr)
    assert.match(p.stdout, new RegExp(`rolled back to seq ${point} at `))
    assert.match(p.stdout, new RegExp(`promoted: epoch 1 begins after seq ${point};`))
    assert.deepEqual((await readdir(pair.dirs.drImages)).filter(n => !n.startsWith('.')).sort(), ['vm1.raw'])
    assert.equal(sha(await readFile(path.join(pair.dirs.drImages, 'vm1.raw'))), want)
    const r = await fsop({ op: 'hash', path: path.join(pair.dirs.drMnt, 'vm1.raw') })
    assert.equal(r.sha256, want, 'the new primary serves the rolled-back bytes')
    // Nothing destroyed: what came after is set aside.
    assert.ok((await readdir(path.join(pair.dirs.drImages, '.volmirror', 'rolled-back'))).some(n => n.includes('note.txt')))
  })

  it('a DR resyncing after an outage is promoted without --force at the point its status predicted, the primary killed at several points of the resync', async () => {
    const port = await freePort()
    const proxy = await startProxy(`127.0.0.1:${port}`)
    const pair = await startPair({
      images: { 'vm1.raw': pattern(1, 32 * MiB) },
      primaryArgs: ['--listen', `127.0.0.1:${port}`, '--journal-limit', '2M'],
      drArgs: ['--primary', proxy.url, '--history', '1h', '--hydrate-rate', '4M'],
    })
    await inSync(pair.dirs.state, pair.dirs.drState)
    const point = await awaitPoint(pair)
    const want = sha(await readFile(path.join(pair.dirs.images, 'vm1.raw')))
    proxy.cut()
    // Past the journal limit: the primary keeps dirty regions, the DR will resync them.
    const ops = []
    for (let r = 0; r < 24; r++) ops.push({ op: 'write', path: path.join(pair.dirs.mnt, 'vm1.raw'), offset: r * MiB + 4096, seed: 300 + r, length: 256 * 1024, fsync: true })
    for (const x of await fsops(ops)) assert.ok(x.ok, JSON.stringify(x))
    await waitFor('bitmap mode', async () => (await pair.primaryStatus()).drs[0]?.mode === 'bitmap', 30_000)
    let predicted: DrStatus['promotionPoint']
    let fetched = 0
    for (let k = 0; k < 3; k++) {
      proxy.restore()
      // Killed at a different point of the resync each time: after more of it was fetched.
      fetched = await waitFor(`the resync to be under way (${k + 1})`, async () => {
        const s = await drOf(pair.dirs.drState)
        return !s.consistent && s.replication.resyncs > 0 && s.fetched.hydrationBytes > fetched + MiB / 2 ? s.fetched.hydrationBytes : undefined
      }, 30_000, 20)
      await pair.primary.kill9()
      proxy.cut()
      const s = await drOf(pair.dirs.drState)
      predicted = s.promotionPoint
      assert.ok(predicted?.rollback, `the status says a promotion would roll back: ${JSON.stringify(predicted)}`)
      assert.equal(predicted.seq, point, 'to the last point the DR was consistent at')
      const text = await cli(['status', '--state', pair.dirs.drState])
      assert.match(text.stdout, new RegExp(`promote  would roll back to seq ${point} `))
      if (k < 2) await pair.restartPrimary()
    }
    const p = await cli(['promote', '--state', pair.dirs.drState])
    assert.equal(p.code, 0, p.stderr)
    assert.match(p.stdout, new RegExp(`rolled back to seq ${point} at `))
    const s = await waitFor('the DR to be a primary', async () => { const x = await pair.dr.status(); return x.role === 'primary' ? x : undefined }, 60_000, 100)
    assert.equal(s.history.at(-1).fromSeq, point + 1, 'the new epoch begins after the predicted point')
    assert.equal(sha(await readFile(path.join(pair.dirs.drImages, 'vm1.raw'))), want, 'the volume is exactly the primary\'s at that point')
  })
})

