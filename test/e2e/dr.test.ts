/**
 * End to end, a primary and a DR as separate processes (test/helpers/pair.ts):
 * real FUSE mounts, HTTP on 127.0.0.1, real tools (fio, qemu-img,
 * mkfs.ext4/fsck, loop mounts). The acceptance tests of issue 3:
 *
 *  1. fio writes a verify pattern through the primary while a reader reads
 *     regions of the DR mount not copied yet (copy-on-read under writes);
 *     after hydration `cmp`, `qemu-img compare` and fio's verify of the
 *     bytes read through the DR mount agree.
 *  2. Write order across volumes: a writer bumps a counter in A, then in B;
 *     read from the DR mount, B never exceeds A (nor reads stale).
 *  3. A stale copy (last week's backup) of a 1 GiB image: hydration moves
 *     only the regions changed since (about 2%).
 *  4. ext4 made on the primary, loop-mounted read-only from the DR mount
 *     before hydration finished; `fsck -n` passes after.
 *  5. Copy-on-read without the primary: present regions still read, absent
 *     ones fail with EIO after --fetch-timeout; then the DR reconnects and
 *     catches up.
 *  6. Namespace operations replicate; a deleted volume is kept aside.
 *  7. The DR mount is read-only: EROFS.
 *
 * The test process hosts no mount: it reads backing directories directly
 * and touches the mounts only through child processes (fsop, tools).
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { defer } from '../helpers/cleanup.js'
import { fsop, fsops, type FsResult } from '../helpers/fsop.js'
import { startPair, type PairDirs } from '../helpers/pair.js'
import { pattern, rng } from '../helpers/pattern.js'
import { run, runOk } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

const KiB = 1024
const MiB = 1024 * KiB

function sha256 (b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

function mb (bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`
}

function shuffled<T> (items: T[], next: () => number): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

/**
 * sameBytes compares a file with one in a mount, with cmp(1). The mount's
 * file is read by dd in 4 MiB reads: cmp's own small reads would each be a
 * FUSE request (direct I/O on the DR mount), 20 s for 1 GiB.
 */
async function sameBytes (file: string, inMount: string): Promise<void> {
  const r = await run('sh', ['-c', 'dd if="$1" bs=4M status=none | cmp "$2" -', 'sh', inMount, file], { timeoutMs: 120_000 })
  assert.equal(r.code, 0, `cmp ${file} ${inMount} (exit ${r.code ?? r.signal}): ${r.stdout}${r.stderr}`)
}

/** qemuSame runs `qemu-img compare` of two raw images. */
async function qemuSame (a: string, b: string): Promise<void> {
  const r = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', a, b], { timeoutMs: 120_000 })
  assert.equal(r.code, 0, `qemu-img compare ${a} ${b} (exit ${r.code ?? r.signal}): ${r.stdout}${r.stderr}`)
}

async function mountedAt (dir: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8')
  return text.split('\n').some(l => l.split(' ')[4] === dir)
}

/**
 * loopMount mounts an image (through a loop device) and registers its
 * teardown first, so a failed or half-done mount is cleaned as well: the
 * file system is unmounted and loop devices on the image are detached.
 */
async function loopMount (image: string, dir: string, options: string): Promise<void> {
  defer(async () => {
    if (await mountedAt(dir)) {
      const r = await run('umount', [dir], { timeoutMs: 30_000 })
      if (r.code !== 0) await run('umount', ['-l', dir], { timeoutMs: 30_000 })
    }
    const list = await run('losetup', ['--list', '--json', '--output', 'NAME,BACK-FILE'], { timeoutMs: 10_000 })
    const devices = list.stdout.trim() ? (JSON.parse(list.stdout) as { loopdevices: Array<{ name: string, 'back-file': string | null }> }).loopdevices : []
    for (const d of devices) {
      if (d['back-file']?.startsWith(image)) await run('losetup', ['-d', d.name], { timeoutMs: 10_000 })
    }
  })
  await runOk('mount', ['-o', options, image, dir], { timeoutMs: 60_000 })
}

/** FioJob is the part of one job in fio's JSON output that the tests read. */
interface FioJob { error: number, read: { io_bytes: number }, write: { io_bytes: number, bw_bytes: number } }

async function fio (work: string, name: string, args: string[]): Promise<FioJob> {
  const out = path.join(work, `${name}.json`)
  await runOk('fio', [...args, '--output-format=json', `--output=${out}`], { cwd: work, timeoutMs: 180_000 })
  return (JSON.parse(await readFile(out, 'utf8')) as { jobs: FioJob[] }).jobs[0]!
}

/** tree lists a directory tree (through a mount: in child processes) as `relative path -> size, or 'dir'`. */
async function tree (root: string): Promise<Record<string, number | 'dir'>> {
  const out: Record<string, number | 'dir'> = {}
  const dirs = ['']
  while (dirs.length > 0) {
    const rel = dirs.shift()!
    const [list] = await fsops([{ op: 'readdir', path: path.join(root, rel) }])
    assert.ok(list!.ok, `readdir ${rel}: ${list!.code}`)
    const names = (list!.names as string[]).map(n => path.join(rel, n))
    const stats = await fsops(names.map(n => ({ op: 'stat', path: path.join(root, n) })))
    names.forEach((n, i) => {
      const s = stats[i]!
      assert.ok(s.ok, `stat ${n}: ${s.code}`)
      if (s.isDirectory) { out[n] = 'dir'; dirs.push(n) } else out[n] = s.size as number
    })
  }
  return out
}

/** counter is the 64-bit counter at the start of a buffer read by a child (base64). */
function counter (r: FsResult): number {
  return Number(Buffer.from(r.data as string, 'base64').readBigUInt64LE(0))
}

/**
 * ORDER_WRITER (a child process): for `ms`, write counter i to volume A,
 * fsync, then i to volume B, fsync, i = 1, 2, ... Each write is
 * acknowledged before the next begins, so the primary orders A's write
 * before B's.
 */
const ORDER_WRITER = `
const fs = require('node:fs')
const { a, b, ms } = JSON.parse(fs.readFileSync(0, 'utf8'))
const fa = fs.openSync(a, 'r+'), fb = fs.openSync(b, 'r+')
const buf = Buffer.alloc(8)
const end = Date.now() + ms
let i = 0
while (Date.now() < end) {
  i++
  buf.writeBigUInt64LE(BigInt(i))
  fs.writeSync(fa, buf, 0, 8, 0); fs.fsyncSync(fa)
  fs.writeSync(fb, buf, 0, 8, 0); fs.fsyncSync(fb)
}
process.stdout.write(JSON.stringify({ last: i }))
`

/**
 * ORDER_CHECKER (a child process): for `ms`, read B's counter, then A's,
 * then B's again from the DR mount. Every read sees a group boundary, each
 * at the same boundary as the read before it or a later one. At a boundary
 * A is B or B + 1 (the writer bumps A first), so: A >= the first B (order),
 * and the second B >= A - 1 (no stale read of B).
 */
const ORDER_CHECKER = `
const fs = require('node:fs')
const { a, b, ms } = JSON.parse(fs.readFileSync(0, 'utf8'))
const fa = fs.openSync(a, 'r'), fb = fs.openSync(b, 'r')
const buf = Buffer.alloc(8)
const read = (fd) => {
  if (fs.readSync(fd, buf, 0, 8, 0) !== 8) throw new Error('short read')
  return Number(buf.readBigUInt64LE(0))
}
const end = Date.now() + ms
let samples = 0, first = -1, last = -1, distinct = 0
const violations = []
while (Date.now() < end) {
  const b1 = read(fb), va = read(fa), b2 = read(fb)
  samples++
  if ((va < b1 || b2 < va - 1) && violations.length < 20) violations.push({ sample: samples, b1, a: va, b2 })
  if (first < 0) first = b1
  if (b2 !== last) distinct++
  last = b2
}
process.stdout.write(JSON.stringify({ samples, first, last, distinct, violations }))
`

describe('DR end to end (primary and DR processes)', function () {
  this.timeout(240_000)
  this.slow(30_000)

  it('serves absent regions while fio writes through the primary; after hydration cmp, qemu-img compare and fio verify agree', async () => {
    const FIO_SIZE = 256 * MiB
    const IO_SIZE = 48 * MiB
    const staticData = pattern(11, 32 * MiB)
    const pair = await startPair({
      hydrateRate: '0',
      images: { 'static.raw': staticData },
      prepare: async (dirs) => {
        // fio.raw holds data before fio starts: a read of an absent region
        // on the DR races fio's writes to it.
        const f = await open(path.join(dirs.images, 'fio.raw'), 'w')
        try {
          for (let at = 0; at < FIO_SIZE; at += MiB) await f.write(pattern(10 + at / MiB, MiB), 0, MiB, at)
        } finally { await f.close() }
      },
    })
    const work = await tmpDir('fio')
    await waitFor('DR to list the volumes', async () => (await pair.drStatus()).volumes.length === 2)
    const rs = (await pair.drStatus()).regionSize

    // Random 4-64 KiB blocks over 48 of the 256 MiB, each written once, at
    // 5 MiB/s (about 10 s); the same options replay the blocks to verify.
    const job = (file: string, extra: string[]): string[] => [
      '--name=dr', `--filename=${file}`, `--size=${FIO_SIZE}`, `--io_size=${IO_SIZE}`, '--rw=randwrite', '--bsrange=4k-64k',
      '--ioengine=psync', '--direct=1', '--verify=crc32c', '--verify_fatal=1', '--randseed=4321', '--verify_state_save=0', ...extra,
    ]
    const t0 = Date.now()
    let fioRunning = true
    const writing = fio(work, 'write', job(path.join(pair.dirs.mnt, 'fio.raw'), ['--do_verify=0', '--rate=5m', '--end_fsync=1']))
      .finally(() => { fioRunning = false })

    // Meanwhile, read the DR mount in child processes: fio.raw in regions
    // never read before (absent: hydration is off, and a new descriptor
    // has no read-ahead), static.raw checked byte for byte.
    const next = rng(12)
    const unread = shuffled([...Array(FIO_SIZE / rs).keys()], next)
    const staticRegions = staticData.length / rs
    let reads = 0
    let absentReads = 0
    while (fioRunning) {
      const batch: Array<{ op: string, path: string, offset: number, length: number, expect?: string }> = []
      for (let i = 0; i < 2; i++) {
        // Once every region was read, reads go on at random offsets.
        const region = unread.pop() ?? Math.floor(next() * FIO_SIZE / rs)
        const length = 4 * KiB * (1 + Math.floor(next() * 32))
        batch.push({ op: 'read', path: path.join(pair.dirs.drMnt, 'fio.raw'), offset: region * rs + Math.floor(next() * (rs - length) / 512) * 512, length })
      }
      const length = 4 * KiB * (1 + Math.floor(next() * 64))
      const offset = Math.floor(next() * staticRegions) * rs + Math.floor(next() * (rs - length))
      batch.push({ op: 'read', path: path.join(pair.dirs.drMnt, 'static.raw'), offset, length, expect: sha256(staticData.subarray(offset, offset + length)) })
      const before = unread.length
      const results = await fsops(batch.map(({ expect: _e, ...o }) => ({ ...o, hash: true })))
      batch.forEach((o, i) => {
        const r = results[i]!
        assert.ok(r.ok, `read of ${path.basename(o.path)} at ${o.offset} from the DR mount: ${r.code} ${r.message}`)
        assert.equal(r.n, o.length, `full read of ${path.basename(o.path)} at ${o.offset}`)
        if (o.expect) assert.equal(r.sha256, o.expect, `static.raw at ${o.offset} as on the primary`)
      })
      reads += batch.length
      if (fioRunning) absentReads += Math.min(2, before + 2 - unread.length)
    }
    const w = await writing
    const fioMs = Date.now() - t0
    assert.equal(w.error, 0, 'fio reports no error')
    assert.ok(w.write.io_bytes >= IO_SIZE, `fio wrote ${w.write.io_bytes} bytes`)
    const during = await pair.drStatus()
    const fioVol = during.volumes.find(v => v.name === 'fio.raw')!
    console.log(`      fio: ${mb(w.write.io_bytes)} in ${fioMs} ms (${mb(w.write.bw_bytes)}/s); DR reads: ${reads}, ${absentReads} of them in absent regions of fio.raw while fio ran; ` +
      `${mb(during.fetched.onDemandBytes)} fetched on demand; fio.raw ${fioVol.regions.absent}/${fioVol.regions.total} regions still absent`)
    assert.ok(absentReads >= 10, `reads of absent regions while fio ran: ${absentReads}`)
    assert.ok(during.fetched.fetches >= FIO_SIZE / rs - unread.length, `a fetch per region read: ${during.fetched.fetches}`)
    assert.equal(during.fetched.hydrationBytes, 0, 'hydration is off')

    // Hydration on: restart the DR with it.
    await pair.caughtUp()
    await pair.dr.stop()
    await pair.startDr(['--hydrate-rate', 'unlimited'])
    const t1 = Date.now()
    const s = await pair.consistent(120_000)
    console.log(`      hydration: ${mb(s.fetched.hydrationBytes)} in ${Date.now() - t1} ms; applied seq ${s.seq.applied}`)
    for (const v of ['fio.raw', 'static.raw']) {
      await sameBytes(path.join(pair.dirs.images, v), path.join(pair.dirs.drMnt, v))
      await qemuSame(path.join(pair.dirs.mnt, v), path.join(pair.dirs.drMnt, v))
    }
    // fio's verify_only opens a write job's file read-write (and --readonly
    // refuses write jobs), which the DR mount rightly answers with EROFS:
    // verify the bytes read through the DR mount, copied out by dd.
    const copy = path.join(work, 'fio-from-dr.raw')
    await runOk('dd', [`if=${path.join(pair.dirs.drMnt, 'fio.raw')}`, `of=${copy}`, 'bs=4M', 'status=none'], { timeoutMs: 120_000 })
    const v = await fio(work, 'verify', job(copy, ['--verify_only=1']))
    assert.equal(v.error, 0, 'fio verifies its pattern in the bytes of the DR mount')
    assert.equal(v.read.io_bytes, w.write.io_bytes, 'every block fio wrote was verified')
  })

  it('keeps write order across volumes: read from the DR, B\'s counter never exceeds A\'s', async () => {
    const pair = await startPair({ images: { 'a.raw': Buffer.alloc(64 * KiB), 'b.raw': Buffer.alloc(64 * KiB) } })
    // Every region present first: from then on the DR serves applied groups only.
    await pair.consistent()
    const MS = 10_000
    const p = (v: string): string => path.join(pair.dirs.mnt, v)
    const d = (v: string): string => path.join(pair.dirs.drMnt, v)
    const [w, c] = await Promise.all([
      runOk(process.execPath, ['-e', ORDER_WRITER], { input: JSON.stringify({ a: p('a.raw'), b: p('b.raw'), ms: MS }), timeoutMs: MS + 60_000 }),
      runOk(process.execPath, ['-e', ORDER_CHECKER], { input: JSON.stringify({ a: d('a.raw'), b: d('b.raw'), ms: MS }), timeoutMs: MS + 60_000 }),
    ])
    const writer = JSON.parse(w.stdout) as { last: number }
    const check = JSON.parse(c.stdout) as { samples: number, first: number, last: number, distinct: number, violations: unknown[] }
    const s = await pair.caughtUp()
    console.log(`      writer: ${writer.last} pairs of writes; checker: ${check.samples} samples, B seen from ${check.first} to ${check.last} ` +
      `(${check.distinct} distinct values); ${s.replication.groups} groups applied`)
    assert.deepEqual(check.violations, [], 'on the DR, B\'s counter never exceeds A\'s (nor lags behind it by more than the one write in between)')
    assert.ok(check.samples > 50, `samples: ${check.samples}`)
    assert.ok(writer.last > 20, `the writer made progress: ${writer.last}`)
    assert.ok(check.last > check.first && check.distinct > 5, `the DR made progress while sampled: B from ${check.first} to ${check.last}, ${check.distinct} values`)
    const [a, b] = await fsops([{ op: 'read', path: d('a.raw'), offset: 0, length: 8 }, { op: 'read', path: d('b.raw'), offset: 0, length: 8 }])
    assert.equal(counter(a!), writer.last, 'A on the DR after catching up')
    assert.equal(counter(b!), writer.last, 'B on the DR after catching up')
  })

  it('starts from a stale copy of a 1 GiB image and moves only what changed (about 2%)', async () => {
    const SIZE = 1024 * MiB
    const RS = MiB // the default region size (checked below)
    const next = rng(31)
    const order = shuffled([...Array(SIZE / RS).keys()], next)
    const filled = order.slice(0, order.length / 2)
    const empty = order.slice(order.length / 2)
    // Changed since the backup: 10 filled regions partly rewritten, 10
    // empty ones filled (both must be copied: 20 regions, 1.95%), and 4
    // filled regions zeroed (released on the DR, nothing to copy).
    const rewritten = filled.slice(0, 10)
    const newlyFilled = empty.slice(0, 10)
    const zeroed = filled.slice(10, 14)
    const prepare = async (dirs: PairDirs): Promise<void> => {
      const p = await open(path.join(dirs.images, 'big.raw'), 'w')
      const d = await open(path.join(dirs.drImages, 'big.raw'), 'w')
      try {
        await p.truncate(SIZE)
        await d.truncate(SIZE)
        for (const r of filled) {
          const b = randomBytes(RS)
          await p.write(b, 0, RS, r * RS)
          await d.write(b, 0, RS, r * RS)
        }
        // Last week's backup ends here; since then, on the primary:
        for (const r of rewritten) await p.write(randomBytes(64 * KiB), 0, 64 * KiB, r * RS + Math.floor(next() * 15) * 64 * KiB)
        for (const r of newlyFilled) await p.write(randomBytes(RS), 0, RS, r * RS)
        for (const r of zeroed) await p.write(Buffer.alloc(RS), 0, RS, r * RS)
      } finally {
        await p.close()
        await d.close()
      }
    }
    const t0 = Date.now()
    const pair = await startPair({ prepare })
    const s = await pair.consistent(180_000)
    const ms = Date.now() - t0
    assert.equal(s.regionSize, RS)
    const moved = s.fetched.hydrationBytes + s.fetched.onDemandBytes
    const changed = rewritten.length + newlyFilled.length
    console.log(`      stale copy of ${mb(SIZE)}: moved ${moved} bytes (${mb(moved)}, ${(100 * moved / SIZE).toFixed(2)}% of the image; ` +
      `${changed} regions = ${(100 * changed * RS / SIZE).toFixed(2)}% changed) in ${ms} ms; ` +
      `kept ${s.hydration.kept}, released ${s.hydration.released}, copied ${s.hydration.copied}, compared ${mb(s.hydration.comparedBytes)} locally`)
    assert.ok(moved >= changed * RS, `every changed region copied: ${moved} bytes`)
    assert.equal(s.moved.initialSyncBytes, moved, 'status --json counts them as the initial sync\'s cost')
    assert.ok(moved >= 0.015 * SIZE && moved <= 0.03 * SIZE, `moved ${(100 * moved / SIZE).toFixed(2)}% of the image, expected 1.5-3%`)
    assert.ok(s.hydration.released >= zeroed.length, `zeroed regions released: ${s.hydration.released}`)
    await sameBytes(path.join(pair.dirs.images, 'big.raw'), path.join(pair.dirs.drMnt, 'big.raw'))
    // The DR stays sparse: it punched out what the primary zeroed.
    const [pst, dst] = [await stat(path.join(pair.dirs.images, 'big.raw')), await stat(path.join(pair.dirs.drImages, 'big.raw'))]
    assert.ok(dst.blocks * 512 <= pst.blocks * 512 - zeroed.length * RS + MiB,
      `DR allocation ${mb(dst.blocks * 512)} vs primary ${mb(pst.blocks * 512)} (${zeroed.length} MiB of zeros there)`)
  })

  it('mounts an ext4 image made on the primary read-only from the DR before hydration, and fsck passes after it', async () => {
    const pair = await startPair({ dr: false, hydrateRate: '0' })
    const work = await tmpDir('ext4')
    // A known tree of files.
    const src = path.join(work, 'src')
    const files: Record<string, Buffer> = {}
    const sizes = [0, 1, 511, 4096, 4097, 65_536, 100_000, MiB, 3 * MiB + 17, 5 * MiB]
    sizes.forEach((size, i) => { files[`${['', 'a/', 'a/b/', 'c/'][i % 4]}f${i}.bin`] = pattern(100 + i, size) })
    for (const [name, data] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(src, name)), { recursive: true })
      await writeFile(path.join(src, name), data)
    }
    // mkfs and fill it through the primary mount.
    const img = path.join(pair.dirs.mnt, 'fs.img')
    await runOk('truncate', ['-s', '128M', img])
    await runOk('mkfs.ext4', ['-F', '-q', img], { timeoutMs: 60_000 })
    const pdir = path.join(work, 'primary-fs')
    await mkdir(pdir)
    await loopMount(img, pdir, 'loop')
    await runOk('cp', ['-a', `${src}/.`, pdir])
    await runOk('umount', [pdir], { timeoutMs: 60_000 })
    await runOk('sync', [])

    // A new DR, hydration off: every region of fs.img absent at first.
    await pair.startDr()
    await waitFor('DR to list fs.img', async () => (await pair.drStatus()).volumes.some(v => v.name === 'fs.img'))
    const drImg = path.join(pair.dirs.drMnt, 'fs.img')
    const ddir = path.join(work, 'dr-fs')
    await mkdir(ddir)
    await loopMount(drImg, ddir, 'ro,loop')
    const names = Object.keys(files)
    const hashes = await fsops(names.map(n => ({ op: 'hash', path: path.join(ddir, n) })))
    names.forEach((n, i) => {
      assert.ok(hashes[i]!.ok, `read ${n} from the DR's ext4: ${hashes[i]!.code}`)
      assert.equal(hashes[i]!.sha256, sha256(files[n]!), `${n} as written on the primary`)
    })
    const s1 = await pair.drStatus()
    const vol = s1.volumes.find(v => v.name === 'fs.img')!
    console.log(`      ext4 from the DR before hydration: ${names.length} files read, ${mb(s1.fetched.onDemandBytes)} fetched on demand, ` +
      `${vol.regions.absent}/${vol.regions.total} regions absent`)
    assert.ok(vol.regions.absent > 0, 'the DR still had absent regions while the file system was read')
    assert.equal(vol.state, 'inconsistent')
    await runOk('umount', [ddir], { timeoutMs: 60_000 })

    await pair.dr.stop()
    await pair.startDr(['--hydrate-rate', 'unlimited'])
    await pair.consistent(120_000)
    const fsck = await run('fsck.ext4', ['-n', '-f', drImg], { timeoutMs: 120_000 })
    assert.equal(fsck.code, 0, `fsck.ext4 -n -f of the DR's image: exit ${fsck.code ?? fsck.signal}\n${fsck.stdout}${fsck.stderr}`)
    await sameBytes(path.join(pair.dirs.images, 'fs.img'), drImg)
  })

  it('reads present regions without the primary, fails absent ones with EIO after --fetch-timeout, then reconnects and catches up', async () => {
    const data = pattern(50, 16 * MiB)
    const pair = await startPair({ hydrateRate: '0', drArgs: ['--fetch-timeout', '2s'], images: { 'vm.raw': data } })
    const dvm = path.join(pair.dirs.drMnt, 'vm.raw')
    await waitFor('DR to list vm.raw', async () => (await pair.drStatus()).volumes.length === 1)
    const present = { offset: MiB + 4000, length: 64 * KiB }
    const r1 = await fsop({ op: 'read', path: dvm, ...present })
    assert.deepEqual(Buffer.from(r1.data, 'base64'), data.subarray(present.offset, present.offset + present.length))

    await pair.primary.stop()
    await waitFor('DR to see the primary gone', async () => !(await pair.drStatus()).lag.connected, 20_000)
    const r2 = await fsop({ op: 'read', path: dvm, ...present })
    assert.deepEqual(Buffer.from(r2.data, 'base64'), data.subarray(present.offset, present.offset + present.length), 'a present region reads without the primary')
    const t0 = Date.now()
    const [absent] = await fsops([{ op: 'read', path: dvm, offset: 9 * MiB + 12_345, length: 4096 }])
    const ms = Date.now() - t0
    assert.equal(absent!.ok, false, 'an absent region cannot be read without the primary')
    assert.equal(absent!.code, 'EIO')
    // What the flag says: not before 2 s (the last retry is at the deadline), and not much after.
    assert.ok(ms >= 2000 && ms < 3500, `EIO after ${ms} ms (fetch timeout 2 s)`)
    const s1 = await pair.drStatus()
    assert.ok(s1.fetched.failures >= 1, 'the failed fetch is counted')
    console.log(`      absent read without the primary: EIO after ${ms} ms (${s1.fetched.retries} retries)`)

    await pair.restartPrimary()
    // Written before the DR is back: into the present region (only the
    // journal can bring it) and into an absent one.
    await fsops([
      { op: 'write', path: path.join(pair.dirs.mnt, 'vm.raw'), offset: MiB + 8000, seed: 51, length: 20_000, fsync: true },
      { op: 'write', path: path.join(pair.dirs.mnt, 'vm.raw'), offset: 12 * MiB, seed: 52, length: 5000, fsync: true },
    ])
    const expected = Buffer.from(data)
    pattern(51, 20_000).copy(expected, MiB + 8000)
    pattern(52, 5000).copy(expected, 12 * MiB)
    const r3 = await fsop({ op: 'read', path: dvm, offset: 9 * MiB + 12_345, length: 4096 })
    assert.deepEqual(Buffer.from(r3.data, 'base64'), expected.subarray(9 * MiB + 12_345, 9 * MiB + 12_345 + 4096), 'the absent region reads once the primary is back')
    await waitFor('DR to reconnect', async () => (await pair.drStatus()).lag.connected, 30_000)
    const s2 = await pair.caughtUp()
    assert.ok(s2.replication.reconnects > 0)
    const [a, b] = await fsops([
      { op: 'read', path: dvm, offset: MiB, length: 64 * KiB },
      { op: 'read', path: dvm, offset: 12 * MiB, length: 8192 },
    ])
    assert.deepEqual(Buffer.from(a!.data, 'base64'), expected.subarray(MiB, MiB + 64 * KiB), 'the write into the present region arrived by the journal')
    assert.deepEqual(Buffer.from(b!.data, 'base64'), expected.subarray(12 * MiB, 12 * MiB + 8192))
  })

  it('replicates create, truncate, rename and delete; a deleted volume is kept aside on the DR', async () => {
    const gone = pattern(63, 2 * MiB + 77)
    const pair = await startPair({
      images: {
        'grow.raw': pattern(60, 3 * MiB + 5000),
        'shrink.raw': pattern(61, 6 * MiB),
        'old.raw': pattern(62, 2 * MiB),
        'gone.raw': gone,
        'dir/one.raw': pattern(64, MiB),
        'dir/sub/two.raw': pattern(65, 1_500_000),
        'victim.raw': pattern(66, MiB),
        'over.raw': pattern(67, MiB + 1),
      },
    })
    await pair.consistent()
    const m = (p: string): string => path.join(pair.dirs.mnt, p)
    const results = await fsops([
      { op: 'create', path: m('new.raw') },
      { op: 'write', path: m('new.raw'), offset: 0, seed: 70, length: 1_234_567, fsync: true },
      { op: 'truncate', path: m('grow.raw'), size: 9 * MiB + 3 },
      { op: 'write', path: m('grow.raw'), offset: 8 * MiB, seed: 71, length: 10_000 },
      { op: 'truncate', path: m('shrink.raw'), size: 1_500_000 },
      { op: 'rename', from: m('old.raw'), to: m('renamed.raw') },
      { op: 'rename', from: m('dir'), to: m('dir2') },
      { op: 'mkdir', path: m('newdir') },
      { op: 'write', create: true, path: m('newdir/n.raw'), offset: 0, seed: 72, length: 300_000 },
      { op: 'rename', from: m('over.raw'), to: m('victim.raw') },
      { op: 'unlink', path: m('gone.raw') },
    ])
    results.forEach((r, i) => assert.ok(r.ok, `primary op ${i}: ${r.code} ${r.message}`))
    await pair.consistent()

    const expected = {
      dir2: 'dir', 'dir2/one.raw': MiB, 'dir2/sub': 'dir', 'dir2/sub/two.raw': 1_500_000,
      'grow.raw': 9 * MiB + 3, 'new.raw': 1_234_567, newdir: 'dir', 'newdir/n.raw': 300_000,
      'renamed.raw': 2 * MiB, 'shrink.raw': 1_500_000, 'victim.raw': MiB + 1,
    }
    assert.deepEqual(await tree(pair.dirs.mnt), expected, 'the primary\'s tree')
    assert.deepEqual(await tree(pair.dirs.drMnt), expected, 'the DR\'s tree is the primary\'s')
    for (const [name, size] of Object.entries(expected)) {
      if (size !== 'dir') await sameBytes(path.join(pair.dirs.images, name), path.join(pair.dirs.drMnt, name))
    }

    // gone.raw: kept aside under .volmirror/deleted, out of the mount.
    const aside = path.join(pair.dirs.drImages, '.volmirror', 'deleted')
    const kept = (await readdir(aside)).filter(n => n.endsWith('-gone.raw'))
    assert.equal(kept.length, 1, `gone.raw kept aside once: ${kept.join(', ')}`)
    assert.equal(sha256(await readFile(path.join(aside, kept[0]!))), sha256(gone), 'the kept-aside copy holds the deleted bytes')
    const [st, hidden] = await fsops([{ op: 'stat', path: path.join(pair.dirs.drMnt, 'gone.raw') }, { op: 'stat', path: path.join(pair.dirs.drMnt, '.volmirror') }])
    assert.equal(st!.code, 'ENOENT', 'gone.raw is gone from the DR mount')
    assert.equal(hidden!.code, 'ENOENT', '.volmirror is not reachable through the DR mount')
  })

  it('is read-only on the DR mount: writes, creates, truncates, renames and unlinks fail with EROFS', async () => {
    const data = pattern(80, 2 * MiB)
    const pair = await startPair({ images: { 'vm.raw': data, 'd/x.raw': pattern(81, 4096) } })
    await fsop({ op: 'mkdir', path: path.join(pair.dirs.mnt, 'empty') })
    await pair.consistent()
    const d = (p: string): string => path.join(pair.dirs.drMnt, p)
    const before = await tree(pair.dirs.drMnt)
    const ops: Array<Record<string, unknown> & { op: string }> = [
      { op: 'write', path: d('vm.raw'), offset: 0, seed: 1, length: 4096 },
      { op: 'write', path: d('vm.raw'), offset: 0, seed: 1, length: 4096, create: true },
      { op: 'write', path: d('new.raw'), offset: 0, seed: 1, length: 4096, create: true },
      { op: 'create', path: d('new.raw') },
      { op: 'truncate', path: d('vm.raw'), size: 4096 },
      { op: 'ftruncate', path: d('vm.raw'), size: 0 },
      { op: 'rename', from: d('vm.raw'), to: d('moved.raw') },
      { op: 'rename', from: d('d'), to: d('e') },
      { op: 'unlink', path: d('vm.raw') },
      { op: 'mkdir', path: d('newdir') },
      { op: 'rmdir', path: d('empty') },
      { op: 'chmod', path: d('vm.raw'), mode: 0o600 },
      { op: 'utimes', path: d('vm.raw'), atime: 1, mtime: 1 },
    ]
    const results = await fsops(ops)
    ops.forEach((o, i) => assert.equal(results[i]!.code, 'EROFS', `${JSON.stringify(o)}: ${results[i]!.ok ? 'succeeded' : results[i]!.code}`))
    assert.deepEqual(await tree(pair.dirs.drMnt), before, 'the DR\'s tree is unchanged')
    const [h] = await fsops([{ op: 'hash', path: d('vm.raw') }])
    assert.equal(h!.sha256, sha256(data), 'vm.raw unchanged')
  })
})

