/**
 * Real tools through a real primary mount: fio writing with crc32c
 * verification (random 4 KiB and sequential 1 MiB writes), and qemu-img /
 * qemu-io creating, writing and checking qcow2 and raw images. Each time
 * the backing image must hold the same bytes as the mount shows, and the
 * journal must hold the writes.
 *
 * The test process hosts the mount, so every tool runs as a child process
 * (run/runOk), and nothing here touches the mount path itself.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { fsops } from '../helpers/fsop.js'
import { startPrimary, type TestPrimary } from '../helpers/primary.js'
import { run, runOk } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'

/** FioJob is the part of one job in fio's JSON output that the tests read. */
interface FioJob {
  jobname: string
  error: number
  read: { io_bytes: number, total_ios: number }
  write: { io_bytes: number, total_ios: number }
}

let fioRuns = 0

/** fio runs one fio job with JSON output written to a file outside the mount, and returns that job. */
async function fio (workDir: string, args: string[]): Promise<FioJob> {
  const out = path.join(workDir, `fio-${++fioRuns}.json`)
  await runOk('fio', [...args, '--output-format=json', `--output=${out}`, '--verify_state_save=0'], { cwd: workDir, timeoutMs: 60_000 })
  const report = JSON.parse(await readFile(out, 'utf8')) as { jobs: FioJob[] }
  assert.equal(report.jobs.length, 1)
  return report.jobs[0]!
}

/** sha256 hashes files from a child process (the mount must not be read from this one). */
async function sha256 (...files: string[]): Promise<string[]> {
  const r = await runOk('sha256sum', files, { timeoutMs: 60_000 })
  return r.stdout.trim().split('\n').map(l => l.split(/\s+/)[0]!)
}

/** JournalWrites summarises the journal's write and zero records of one volume. */
interface JournalWrites { records: number, bytes: number, maxLength: number, offsets: number[] }

/** writesTo sums the journal's write and zero records of `volume`. */
async function writesTo (p: TestPrimary, volume: string): Promise<JournalWrites> {
  await p.node.journal.indexed()
  const entries = (await p.node.journal.entries(0)).filter(e => e.volume === volume && (e.op === 'write' || e.op === 'zero'))
  return {
    records: entries.length,
    bytes: entries.reduce((s, e) => s + e.length, 0),
    maxLength: entries.reduce((m, e) => Math.max(m, e.length), 0),
    offsets: entries.map(e => e.offset),
  }
}

/**
 * rebuildFromJournal replays the journal's records of `volume` (from its
 * create on) into memory and returns the SHA-256 of the result: what a DR
 * that only had the journal would hold.
 */
async function rebuildFromJournal (p: TestPrimary, volume: string): Promise<{ size: number, sha256: string }> {
  await p.node.journal.indexed()
  let buf = Buffer.alloc(0)
  let size = 0
  const ensure = (n: number): void => {
    if (n <= buf.length) return
    const next = Buffer.alloc(Math.max(n, buf.length * 2))
    buf.copy(next, 0, 0, size)
    buf = next
  }
  for (let after = 0; ;) {
    const recs = await p.node.journal.read(after, { maxBytes: 8 << 20 })
    if (recs.length === 0) break
    for (const r of recs) {
      after = r.seq
      if (r.volume !== volume) continue
      if (r.op === 'create') { size = 0; buf.fill(0) } else if (r.op === 'truncate') {
        ensure(r.offset)
        if (r.offset < size) buf.fill(0, r.offset, size)
        size = r.offset
      } else if (r.op === 'write' || r.op === 'zero') {
        ensure(r.offset + r.length)
        if (r.op === 'write') buf.set(r.data!, r.offset); else buf.fill(0, r.offset, r.offset + r.length)
        size = Math.max(size, r.offset + r.length)
      } else if (r.op !== 'chmod') {
        throw new Error(`unexpected ${r.op} record for ${volume}`)
      }
    }
  }
  return { size, sha256: createHash('sha256').update(buf.subarray(0, size)).digest('hex') }
}

describe('primary mount: real tools', function () {
  this.timeout(120_000)
  this.slow(20_000)
  let p: TestPrimary
  let work: string

  beforeEach(async () => {
    p = await startPrimary({ retainJournal: true })
    work = await tmpDir('tools')
  })

  describe('fio with crc32c verification', () => {
    it('random 4 KiB writes verify through the mount and in the backing image, and the journal holds them', async () => {
      const ios = 4096
      // O_DIRECT: the verify reads go through the mount, not the page cache.
      const job = (file: string, extra: string[]): string[] => [
        '--name=rand', `--filename=${file}`, '--size=64M', '--rw=randwrite', '--bs=4k', '--ioengine=psync',
        '--verify=crc32c', '--verify_fatal=1', `--number_ios=${ios}`, '--randseed=1234', ...extra,
      ]
      const w = await fio(work, job(path.join(p.mnt, 'vm.raw'), ['--direct=1', '--do_verify=1', '--end_fsync=1']))
      assert.equal(w.error, 0, 'fio reports no error')
      assert.equal(w.write.total_ios, ios)
      assert.equal(w.write.io_bytes, ios * 4096)
      assert.equal(w.read.io_bytes, ios * 4096, 'every written block was read back and verified')

      // The same blocks verify in the backing image, read by a second fio that never saw the mount.
      const v = await fio(work, job(path.join(p.images, 'vm.raw'), ['--verify_only=1']))
      assert.equal(v.error, 0)
      assert.equal(v.read.io_bytes, ios * 4096, 'every block was verified in the backing image')

      const [m, b] = await fsops([
        { op: 'stat', path: path.join(p.mnt, 'vm.raw') },
        { op: 'stat', path: path.join(p.images, 'vm.raw') },
      ])
      assert.equal(m!.size, b!.size)
      const [mounted, backing] = await sha256(path.join(p.mnt, 'vm.raw'), path.join(p.images, 'vm.raw'))
      assert.equal(mounted, backing, 'backing image has the bytes the mount shows')

      const j = await writesTo(p, 'vm.raw')
      assert.equal(j.records, ios, 'one journal record per 4 KiB write')
      assert.equal(j.maxLength, 4096)
      assert.equal(new Set(j.offsets).size, ios, 'each record at the offset fio wrote (fio never rewrote a block)')
      assert.ok(j.offsets.every(o => o % 4096 === 0 && o < 64 << 20))
      const s = p.node.journal.stats()
      assert.equal(s.firstSeq, 1, 'records are retained (retainJournal)')
      assert.equal(s.records, s.lastSeq)
      assert.ok(s.records >= ios + 1, `journal stats count ${s.records} records (create + ${ios} writes)`)
      assert.ok(s.bytes >= ios * 4096, `journal holds ${s.bytes} bytes`)
      const rebuilt = await rebuildFromJournal(p, 'vm.raw')
      assert.equal(rebuilt.size, b!.size)
      assert.equal(rebuilt.sha256, backing, 'the journal alone rebuilds the image byte for byte')
    })

    it('sequential 1 MiB writes verify, the backing image matches, and the journal holds them in 128 KiB pieces', async () => {
      const size = 48 << 20
      const job = (file: string, extra: string[]): string[] => [
        '--name=seq', `--filename=${file}`, `--size=${size}`, '--rw=write', '--bs=1M', '--ioengine=psync',
        '--verify=crc32c', '--verify_fatal=1', ...extra,
      ]
      const w = await fio(work, job(path.join(p.mnt, 'seq.raw'), ['--do_verify=1', '--end_fsync=1']))
      assert.equal(w.error, 0, 'fio reports no error')
      assert.equal(w.write.io_bytes, size)
      assert.equal(w.read.io_bytes, size, 'everything written was read back and verified')
      const v = await fio(work, job(path.join(p.images, 'seq.raw'), ['--verify_only=1']))
      assert.equal(v.error, 0)
      assert.equal(v.read.io_bytes, size, 'everything verifies in the backing image')

      const [mounted, backing] = await sha256(path.join(p.mnt, 'seq.raw'), path.join(p.images, 'seq.raw'))
      assert.equal(mounted, backing, 'backing image has the bytes the mount shows')

      const j = await writesTo(p, 'seq.raw')
      assert.equal(j.bytes, size, 'the journal holds every byte once')
      // big_writes,max_write=131072: 1 MiB writes arrive in 128 KiB pieces, not 4 KiB ones.
      assert.equal(j.maxLength, 128 * 1024)
      assert.equal(j.records, size / (128 * 1024), `${j.records} records for 48 MiB`)
      const rebuilt = await rebuildFromJournal(p, 'seq.raw')
      assert.equal(rebuilt.size, size)
      assert.equal(rebuilt.sha256, backing, 'the journal alone rebuilds the image byte for byte')
    })
  })

  describe('qemu-img and qemu-io', () => {
    it('creates a qcow2 image that checks clean, holds written data, and matches the backing file', async () => {
      const img = path.join(p.mnt, 'new.qcow2')
      await runOk('qemu-img', ['create', '-f', 'qcow2', img, '1G'], { timeoutMs: 30_000 })
      await runOk('qemu-img', ['check', img], { timeoutMs: 30_000 })
      const info = JSON.parse((await runOk('qemu-img', ['info', '--output=json', img], { timeoutMs: 30_000 })).stdout) as { format: string, 'virtual-size': number }
      assert.equal(info.format, 'qcow2')
      assert.equal(info['virtual-size'], 1 << 30)

      const w = await runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 1M', img], { timeoutMs: 30_000 })
      assert.match(w.stdout, /wrote 1048576\/1048576 bytes/)
      await runOk('qemu-img', ['check', img], { timeoutMs: 30_000 })
      const r = await runOk('qemu-io', ['-f', 'qcow2', '-r', '-c', 'read -P 0x5a 0 1M', img], { timeoutMs: 30_000 })
      assert.match(r.stdout, /read 1048576\/1048576 bytes/)
      assert.doesNotMatch(r.stdout + r.stderr, /verification failed/i)
      // A pattern that was not written must fail to verify: the check above can fail.
      const bad = await run('qemu-io', ['-f', 'qcow2', '-r', '-c', 'read -P 0x5b 0 1M', img], { timeoutMs: 30_000 })
      assert.match(bad.stdout + bad.stderr, /verification failed/i)

      // The backing file is the same image: it checks clean, reads the data, compares equal.
      const backing = path.join(p.images, 'new.qcow2')
      assert.ok((await stat(backing)).isFile())
      await runOk('qemu-img', ['check', backing], { timeoutMs: 30_000 })
      const rb = await runOk('qemu-io', ['-f', 'qcow2', '-r', '-c', 'read -P 0x5a 0 1M', backing], { timeoutMs: 30_000 })
      assert.match(rb.stdout, /read 1048576\/1048576 bytes/)
      const [a, b] = await sha256(img, backing)
      assert.equal(a, b)

      const j = await writesTo(p, 'new.qcow2')
      assert.ok(j.bytes >= 1 << 20, `journal holds ${j.bytes} bytes of writes to new.qcow2`)
      await p.node.journal.indexed()
      const created = (await p.node.journal.entries(0)).filter(e => e.volume === 'new.qcow2' && e.op === 'create')
      assert.equal(created.length, 1, 'the create went through the journal')
      const rebuilt = await rebuildFromJournal(p, 'new.qcow2')
      assert.equal(rebuilt.sha256, b, 'the journal alone rebuilds the qcow2 file byte for byte')
    })

    it('creates a raw image of the right size that holds written data', async () => {
      const img = path.join(p.mnt, 'new.raw')
      await runOk('qemu-img', ['create', '-f', 'raw', img, '256M'], { timeoutMs: 30_000 })
      const info = JSON.parse((await runOk('qemu-img', ['info', '-f', 'raw', '--output=json', img], { timeoutMs: 30_000 })).stdout) as { format: string, 'virtual-size': number }
      assert.equal(info.format, 'raw')
      assert.equal(info['virtual-size'], 256 << 20)
      const backing = path.join(p.images, 'new.raw')
      assert.equal((await stat(backing)).size, 256 << 20)

      const w = await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 1M 1M', img], { timeoutMs: 30_000 })
      assert.match(w.stdout, /wrote 1048576\/1048576 bytes/)
      // The data (and the zeros around it) read back through the mount and from the backing file.
      for (const file of [img, backing]) {
        const r = await runOk('qemu-io', ['-f', 'raw', '-r', '-c', 'read -P 0x5a 1M 1M', '-c', 'read -P 0 0 1M', '-c', 'read -P 0 2M 1M', file], { timeoutMs: 30_000 })
        assert.doesNotMatch(r.stdout + r.stderr, /verification failed/i, file)
        assert.equal((r.stdout.match(/read 1048576\/1048576 bytes/g) ?? []).length, 3, file)
      }
      const [a, b] = await sha256(img, backing)
      assert.equal(a, b)
      const j = await writesTo(p, 'new.raw')
      assert.ok(j.bytes >= 1 << 20, `journal holds ${j.bytes} bytes of writes to new.raw`)
      const rebuilt = await rebuildFromJournal(p, 'new.raw')
      assert.equal(rebuilt.size, 256 << 20)
      assert.equal(rebuilt.sha256, b, 'the journal alone rebuilds the raw file byte for byte')
    })
  })
})
