/**
 * PrimaryService conformance: one suite, written once, run against every
 * implementation a DR may talk to: the primary's in-process
 * ReplicationSource, and PrimaryClient -> HTTP on 127.0.0.1 ->
 * PrimaryHttpServer -> the same ReplicationSource. If the HTTP edge loses,
 * reorders or reinterprets anything, the second run disagrees with the first.
 *
 * Every test starts a real primary (LevelDB, FUSE mount) on fresh
 * directories; writes go through the mount from a child process.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { lstat, mkdir, open, symlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { crc32 } from 'node:zlib'
import { PrimaryClient } from '../../lib/http/client.js'
import { generateToken } from '../../lib/http/auth.js'
import { PrimaryHttpServer } from '../../lib/http/server.js'
import { LIMITS, type GroupBatch, type PrimaryService } from '../../lib/replication/protocol.js'
import type { DecodedRecord } from '../../lib/core/record.js'
import { defer } from '../helpers/cleanup.js'
import { fsops } from '../helpers/fsop.js'
import { pattern } from '../helpers/pattern.js'
import { startPrimary, type TestPrimary } from '../helpers/primary.js'
import { runOk } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'

const RS = 64 * 1024
const VM1_SIZE = 3 * RS + 1000

/** ServiceFactory makes the implementation under test for a running primary (teardown via defer). */
export type ServiceFactory = (p: TestPrimary) => Promise<PrimaryService>

/** codeOf resolves to the code a promise rejects with ('resolved' if it does not). */
async function codeOf (p: Promise<unknown>): Promise<string> {
  try { await p } catch (err) { return (err as { code?: string }).code ?? String(err) }
  return 'resolved'
}

interface Fetched { asOf: number, size: number, birth?: number, began: boolean, chunks: Array<{ offset: number, data: Buffer }>, crc?: number }

async function fetchAll (svc: PrimaryService, volume: string, region: number, first?: number): Promise<Fetched> {
  const f: Fetched = { asOf: -1, size: -1, began: false, chunks: [] }
  await svc.fetchRegion(volume, region, {
    begin: (asOf: number, size: number, birth?: number) => {
      assert.equal(f.began, false, 'begin twice')
      Object.assign(f, { began: true, asOf, size }, birth !== undefined ? { birth } : {})
    },
    data: (offset, chunk) => {
      assert.ok(f.began, 'data before begin')
      if (chunk.length > 0) f.chunks.push({ offset, data: Buffer.from(chunk) }) // copy: the chunk may be reused
    },
    end: (crc) => {
      assert.equal(f.crc, undefined, 'end twice')
      f.crc = crc
    },
  }, first === undefined ? {} : { first })
  // The CRC covers the body in the order it came.
  assert.equal(f.crc, f.chunks.reduce((c, x) => crc32(x.data, c), 0), 'the region\'s CRC')
  return f
}

/** assemble checks that the chunks tile [start, end) exactly once and returns the bytes. */
function assemble (f: Fetched, start: number, end: number): Buffer {
  const out = Buffer.alloc(end - start)
  const seen = new Uint8Array(end - start)
  for (const c of f.chunks) {
    assert.ok(c.offset >= start && c.offset + c.data.length <= end, `chunk [${c.offset}, +${c.data.length}) outside [${start}, ${end})`)
    for (let i = 0; i < c.data.length; i++) {
      assert.equal(seen[c.offset - start + i], 0, `byte ${c.offset + i} delivered twice`)
      seen[c.offset - start + i] = 1
    }
    c.data.copy(out, c.offset - start)
  }
  assert.ok(seen.every(b => b === 1), 'some byte of the region was not delivered')
  return out
}

/** pollUntil collects records after `after` until `count` arrived, checking every batch. */
async function pollUntil (svc: PrimaryService, nodeId: string, after: number, count: number, maxBytes?: number): Promise<{ records: DecodedRecord[], batches: GroupBatch[] }> {
  const records: DecodedRecord[] = []
  const batches: GroupBatch[] = []
  const deadline = Date.now() + 15_000
  while (records.length < count) {
    assert.ok(Date.now() < deadline, `only ${records.length} of ${count} records arrived`)
    const b = await svc.groups({ nodeId, after, waitMs: 2_000, ...(maxBytes ? { maxBytes } : {}) })
    assert.equal(b.after, after)
    b.records.forEach((r, i) => assert.equal(r.seq, after + i + 1, 'records are contiguous'))
    if (b.records.length > 0) assert.ok(b.groupEnd >= b.records.at(-1)!.seq, 'groupEnd covers the records')
    assert.ok(b.lastSeq >= b.groupEnd)
    records.push(...b.records)
    batches.push(b)
    after = b.records.length > 0 ? b.records.at(-1)!.seq : after
  }
  return { records, batches }
}

function sha256 (b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

/** primaryServiceSuite is the conformance suite; `factory` makes the implementation under test. */
export function primaryServiceSuite (label: string, factory: ServiceFactory): void {
  describe(`PrimaryService conformance: ${label}`, function () {
    this.timeout(30_000)
    let p: TestPrimary
    let svc: PrimaryService
    let vm1: Buffer

    beforeEach(async () => {
      const root = await tmpDir('svc')
      const images = path.join(root, 'images')
      await mkdir(path.join(images, 'pool'), { recursive: true })
      vm1 = pattern(1, VM1_SIZE)
      await writeFile(path.join(images, 'vm1.raw'), vm1)
      await writeFile(path.join(images, 'pool', 'b.raw'), pattern(2, 5000))
      // sparse.raw: region 0 a hole, 1 data, 2 written zeros, 3 a hole.
      await runOk('truncate', ['-s', String(4 * RS), path.join(images, 'sparse.raw')])
      const fh = await open(path.join(images, 'sparse.raw'), 'r+')
      await fh.write(pattern(3, RS), 0, RS, RS)
      await fh.write(Buffer.alloc(RS), 0, RS, 2 * RS)
      await fh.close()
      p = await startPrimary({ root, regionSize: RS, groupMs: 20 })
      svc = await factory(p)
    })

    const writeThroughMount = async (writes: Array<{ offset: number, seed: number, length: number }>, file = 'vm1.raw'): Promise<void> => {
      const res = await fsops(writes.map(w => ({ op: 'write', path: path.join(p.mnt, file), ...w })))
      for (const r of res) assert.ok(r.ok, `write through the mount failed: ${r.code} ${r.message}`)
    }

    it('info describes the primary', async () => {
      await writeThroughMount([{ offset: 0, seed: 5, length: 4096 }])
      const i = await svc.info()
      const id = p.node.store.identity
      assert.equal(i.nodeId, id.nodeId)
      assert.equal(i.epoch, id.epoch)
      assert.equal(i.role, 'primary')
      assert.equal(i.regionSize, RS)
      assert.equal(i.lastSeq, p.node.journal.lastSeq)
      assert.ok(i.lastSeq >= 1)
      assert.ok(i.groupEnd <= i.indexedSeq && i.indexedSeq <= i.lastSeq)
      assert.ok(Math.abs(i.time - Date.now()) < 5_000)
      assert.equal(typeof i.journalBytes, 'number')
    })

    it('lists volumes, nested ones included, with size and mode', async () => {
      const l = await svc.volumes()
      assert.deepEqual(l.volumes.map(v => v.name), ['pool/b.raw', 'sparse.raw', 'vm1.raw'])
      for (const v of l.volumes) {
        const st = await lstat(path.join(p.images, v.name))
        assert.equal(v.size, st.size, v.name)
        assert.equal(v.mode, st.mode & 0o7777, v.name)
      }
      assert.ok(Number.isSafeInteger(l.asOf) && l.asOf <= p.node.journal.lastSeq)
    })

    it('readRange returns the backing bytes as of a seq, short at end of file', async () => {
      const r = await svc.readRange('vm1.raw', 1000, 70_000)
      assert.deepEqual(r.data, vm1.subarray(1000, 71_000))
      assert.equal(r.size, VM1_SIZE)
      assert.ok(Number.isSafeInteger(r.asOf) && r.asOf >= 0 && r.asOf <= p.node.journal.lastSeq)

      const tail = await svc.readRange('vm1.raw', VM1_SIZE - 100, 4096)
      assert.deepEqual(tail.data, vm1.subarray(VM1_SIZE - 100))
      const past = await svc.readRange('vm1.raw', VM1_SIZE + 10, 10)
      assert.equal(past.data.length, 0)
      assert.equal(past.size, VM1_SIZE)
      const none = await svc.readRange('vm1.raw', 0, 0)
      assert.equal(none.data.length, 0)
      assert.equal(none.size, VM1_SIZE)
      assert.deepEqual((await svc.readRange('pool/b.raw', 0, 5000)).data, pattern(2, 5000))

      await writeThroughMount([{ offset: 4096, seed: 9, length: 8192 }])
      const seq = p.node.journal.lastSeq
      const after = await svc.readRange('vm1.raw', 4096, 8192)
      assert.deepEqual(after.data, pattern(9, 8192))
      assert.ok(after.asOf >= seq && after.asOf <= p.node.journal.lastSeq, `asOf ${after.asOf} must cover seq ${seq}`)

      assert.equal(await codeOf(svc.readRange('missing.raw', 0, 10)), 'NOT_FOUND')
      assert.equal(await codeOf(svc.readRange('vm1.raw', 0, LIMITS.maxRangeBytes + 1)), 'TOO_LARGE')
      assert.equal(await codeOf(svc.readRange('vm1.raw', -1, 10)), 'BAD_REQUEST')
    })

    it('fetchRegion delivers exactly the region, begin first, rotated to `first` when asked', async () => {
      for (let i = 0; i < 4; i++) {
        const start = i * RS
        const end = Math.min(start + RS, VM1_SIZE)
        const plain = await fetchAll(svc, 'vm1.raw', i)
        assert.equal(plain.size, VM1_SIZE)
        assert.ok(plain.asOf >= 0 && plain.asOf <= p.node.journal.lastSeq)
        assert.equal(plain.chunks[0]!.offset, start)
        assert.deepEqual(assemble(plain, start, end), vm1.subarray(start, end), `region ${i}`)

        const first = start + Math.min(12_345, end - start - 1)
        const rotated = await fetchAll(svc, 'vm1.raw', i, first)
        assert.equal(rotated.chunks[0]!.offset, first, 'the bytes at `first` come first')
        assert.deepEqual(assemble(rotated, start, end), vm1.subarray(start, end), `region ${i} from ${first}`)
      }
      // `first` outside the region is ignored; a region past the end is empty.
      const outside = await fetchAll(svc, 'vm1.raw', 1, 5)
      assert.equal(outside.chunks[0]!.offset, RS)
      assert.deepEqual(assemble(outside, RS, 2 * RS), vm1.subarray(RS, 2 * RS))
      const beyond = await fetchAll(svc, 'vm1.raw', 10)
      assert.ok(beyond.began)
      assert.equal(beyond.chunks.length, 0)
      assert.equal(await codeOf(fetchAll(svc, 'missing.raw', 0)), 'NOT_FOUND')
    })

    it('fetchRegion asOf covers the writes made before it', async () => {
      await writeThroughMount([{ offset: RS + 100, seed: 77, length: 8192 }, { offset: 2 * RS - 10, seed: 78, length: 20 }])
      const seq = p.node.journal.lastSeq
      const f = await fetchAll(svc, 'vm1.raw', 1, RS + 5000)
      assert.ok(f.asOf >= seq, `asOf ${f.asOf} must cover seq ${seq}`)
      const bytes = assemble(f, RS, 2 * RS)
      assert.deepEqual(bytes.subarray(100, 100 + 8192), pattern(77, 8192))
      assert.deepEqual(bytes.subarray(RS - 10), pattern(78, 20).subarray(0, 10))
      const next = await fetchAll(svc, 'vm1.raw', 2)
      assert.deepEqual(assemble(next, 2 * RS, 3 * RS).subarray(0, 10), pattern(78, 20).subarray(10))
    })

    it('reports which volume a name meant (its birth) exactly as the primary does', async () => {
      // Whatever the primary tells about a name's identity must reach the DR unchanged.
      await fsops([{ op: 'rename', from: path.join(p.mnt, 'pool', 'b.raw'), to: path.join(p.mnt, 'moved.raw') }])
      const direct = p.node.source
      for (const name of ['vm1.raw', 'moved.raw']) {
        const want = (await direct.readRange(name, 0, 1) as { birth?: number }).birth
        for (const [offset, length] of [[0, 1], [0, 0], [1 << 30, 10]]) {
          assert.equal((await svc.readRange(name, offset!, length!) as { birth?: number }).birth, want, `readRange ${name} ${offset}+${length}`)
        }
        assert.equal((await fetchAll(svc, name, 0)).birth, (await fetchAll(direct, name, 0)).birth, `fetchRegion ${name}`)
        assert.equal((await svc.regions(name, 0, 1, false) as { birth?: number }).birth, (await direct.regions(name, 0, 1, false) as { birth?: number }).birth, `regions ${name}`)
      }
      const byName = (l: Awaited<ReturnType<PrimaryService['volumes']>>): Record<string, unknown> => Object.fromEntries(l.volumes.map(v => [v.name, (v as { birth?: number }).birth]))
      assert.deepEqual(byName(await svc.volumes()), byName(await direct.volumes()))
    })

    it('regions reports holes and zeros as not realized, data with its SHA-256, within from/count', async () => {
      const all = await svc.regions('sparse.raw', 0, 10, true)
      assert.equal(all.volume, 'sparse.raw')
      assert.equal(all.size, 4 * RS)
      assert.deepEqual(all.regions.map(r => [r.index, r.realized]), [[0, false], [1, true], [2, false], [3, false]])
      assert.equal(all.regions[1]!.sha256, sha256(pattern(3, RS)))
      for (const r of all.regions) {
        assert.ok(Number.isSafeInteger(r.asOf) && r.asOf <= p.node.journal.lastSeq)
        if (!r.realized) assert.equal(r.sha256, undefined)
      }
      const some = await svc.regions('sparse.raw', 1, 2, false)
      assert.deepEqual(some.regions.map(r => [r.index, r.realized, r.sha256]), [[1, true, undefined], [2, false, undefined]])
      const vm = await svc.regions('vm1.raw', 3, 1, true)
      assert.equal(vm.regions[0]!.sha256, sha256(vm1.subarray(3 * RS)), 'the last, partial region')
      assert.deepEqual((await svc.regions('vm1.raw', 4, 5, false)).regions, [])
      assert.equal(await codeOf(svc.regions('vm1.raw', 0, 0, false)), 'BAD_REQUEST')
      assert.equal(await codeOf(svc.regions('vm1.raw', 0, LIMITS.maxRegionsPerCall + 1, false)), 'BAD_REQUEST')
      assert.equal(await codeOf(svc.regions('missing.raw', 0, 1, false)), 'NOT_FOUND')
    })

    it('register starts a new DR at the current seq with a full sync, and resumes a known one', async () => {
      await writeThroughMount([{ offset: 0, seed: 11, length: 4096 }, { offset: 8192, seed: 12, length: 4096 }])
      const epoch = (await svc.info()).epoch
      const fresh = await svc.register({ nodeId: 'dr-a', epoch, regionSize: RS })
      assert.equal(fresh.fullSync, true)
      assert.equal(fresh.startSeq, p.node.journal.lastSeq)
      assert.ok(fresh.startSeq >= 2)
      assert.equal(fresh.primaryId, p.node.store.identity.nodeId)
      assert.equal(fresh.regionSize, RS)
      assert.equal(p.node.source.trimLimit(), fresh.startSeq)

      const resumed = await svc.register({ nodeId: 'dr-a', epoch, regionSize: RS, appliedSeq: fresh.startSeq })
      assert.deepEqual([resumed.fullSync, resumed.startSeq], [false, fresh.startSeq])
      const ahead = await svc.register({ nodeId: 'dr-a', epoch, regionSize: RS, appliedSeq: fresh.startSeq + 1000 })
      assert.equal(ahead.fullSync, true, 'a DR ahead of its primary cannot resume')
      const stranger = await svc.register({ nodeId: 'dr-b', epoch, regionSize: RS, appliedSeq: 1 })
      assert.equal(stranger.fullSync, true, 'an unknown DR cannot resume')

      assert.equal(await codeOf(svc.register({ nodeId: 'dr-a', epoch, regionSize: RS * 2 })), 'BAD_REQUEST')
      assert.equal(await codeOf(svc.register({ nodeId: 'bad id', epoch, regionSize: RS })), 'BAD_REQUEST')
    })

    it('groups returns the records written after startSeq, contiguous, with their payloads', async () => {
      const reg = await svc.register({ nodeId: 'dr-a', epoch: 0, regionSize: RS })
      // Page-aligned: the kernel splits writes at page boundaries, one record per piece.
      const writes = Array.from({ length: 6 }, (_, i) => ({ offset: i * 16_384, seed: 100 + i, length: 4096 }))
      await writeThroughMount(writes)
      const { records } = await pollUntil(svc, 'dr-a', reg.startSeq, writes.length)
      assert.deepEqual(records.map(r => r.seq), writes.map((_, i) => reg.startSeq + i + 1))
      records.forEach((r, i) => {
        assert.equal(r.op, 'write')
        assert.equal(r.volume, 'vm1.raw')
        assert.equal(r.offset, writes[i]!.offset)
        assert.deepEqual(Buffer.from(r.data!), pattern(100 + i, 4096))
      })
      // A tiny byte budget still makes progress, one record at a time.
      const small = await pollUntil(svc, 'dr-a', reg.startSeq, 3, 1)
      assert.ok(small.batches.every(b => b.records.length <= 1))
      assert.deepEqual(small.records.map(r => r.seq), [1, 2, 3].map(i => reg.startSeq + i))
    })

    it('a long poll waits (at most a heartbeat, then says where the primary is), and returns as soon as a write arrives', async () => {
      const reg = await svc.register({ nodeId: 'dr-a', epoch: 0, regionSize: RS })
      const heartbeat = p.node.source.heartbeatMs
      const t = Date.now()
      const idle = await svc.groups({ nodeId: 'dr-a', after: reg.startSeq, waitMs: 20_000 })
      const waited = Date.now() - t
      assert.equal(idle.records.length, 0)
      assert.equal(idle.lastSeq, p.node.journal.lastSeq, 'an idle answer says the primary\'s position')
      assert.ok(waited >= heartbeat - 20 && waited < heartbeat + 2000, `an idle poll waits one heartbeat (${heartbeat} ms): returned after ${waited} ms`)

      // Without heartbeats, the poll returns when the write arrives.
      p.node.source.heartbeatMs = 60_000
      try {
        const t0 = Date.now()
        let settled = false
        const poll = svc.groups({ nodeId: 'dr-a', after: reg.startSeq, waitMs: 20_000 }).finally(() => { settled = true })
        assert.equal(settled, false)
        await writeThroughMount([{ offset: 0, seed: 42, length: 4096 }])
        const b = await poll
        const elapsed = Date.now() - t0
        assert.ok(b.records.length >= 1, 'the poll returned the new write')
        assert.deepEqual(Buffer.from(b.records[0]!.data!), pattern(42, 4096))
        assert.ok(b.records[0]!.ts >= t0 - 5, 'the record was written after the poll started')
        assert.ok(elapsed < 10_000, `returned after ${elapsed} ms, long before its 20 s wait`)
      } finally {
        p.node.source.heartbeatMs = heartbeat
      }
    })

    it('acknowledgements advance the trim limit, never backwards; polling does not acknowledge', async () => {
      const a = await svc.register({ nodeId: 'dr-a', epoch: 0, regionSize: RS })
      assert.equal(p.node.source.trimLimit(), a.startSeq)
      await writeThroughMount([{ offset: 0, seed: 1, length: 4096 }, { offset: 4096, seed: 2, length: 4096 }, { offset: 8192, seed: 3, length: 4096 }])
      const { records } = await pollUntil(svc, 'dr-a', a.startSeq, 3)
      const last = records.at(-1)!.seq
      await svc.ack('dr-a', last - 1)
      assert.equal(p.node.source.trimLimit(), last - 1)
      await svc.groups({ nodeId: 'dr-a', after: last, waitMs: 0 })
      assert.equal(p.node.source.trimLimit(), last - 1, 'a poll says what the DR stored, not what it applied (DESIGN: acknowledged after applying)')
      await svc.ack('dr-a', last)
      assert.equal(p.node.source.trimLimit(), last)
      await svc.ack('dr-a', a.startSeq)
      assert.equal(p.node.source.trimLimit(), last, 'an older ack does not move it back')

      const b = await svc.register({ nodeId: 'dr-b', epoch: 0, regionSize: RS })
      assert.equal(b.startSeq, last)
      await writeThroughMount([{ offset: 0, seed: 4, length: 4096 }])
      await pollUntil(svc, 'dr-a', last, 1)
      await svc.ack('dr-a', last + 1)
      assert.equal(p.node.source.trimLimit(), last, 'the slowest DR bounds trimming')

      assert.equal(await codeOf(svc.ack('dr-a', p.node.source.currentGroupEnd + 5)), 'BAD_REQUEST')
      assert.equal(await codeOf(svc.ack('nobody', 1)), 'NOT_REGISTERED')
      assert.equal(await codeOf(svc.groups({ nodeId: 'nobody', after: 0 })), 'NOT_REGISTERED')
      assert.equal(await codeOf(svc.groups({ nodeId: 'dr-a', after: p.node.source.currentGroupEnd + 5 })), 'PEER_PROTOCOL')
    })

    it('a DR whose records were trimmed must resync', async () => {
      const a = await svc.register({ nodeId: 'dr-a', epoch: 0, regionSize: RS })
      await writeThroughMount([{ offset: 0, seed: 1, length: 4096 }, { offset: 4096, seed: 2, length: 4096 }])
      await p.node.journal.indexed()
      await p.node.journal.trim(p.node.journal.indexedSeq)
      assert.equal(await codeOf(svc.groups({ nodeId: 'dr-a', after: a.startSeq })), 'RESYNC_REQUIRED')
    })

    it('does not follow symlinks, of files or of directories, out of the image directory', async () => {
      const outside = path.join(p.root, 'outside')
      await mkdir(outside)
      await writeFile(path.join(outside, 'secret.raw'), pattern(9, 5000))
      await symlink(path.join(outside, 'secret.raw'), path.join(p.images, 'link.raw'))
      await symlink(outside, path.join(p.images, 'dirlink'))
      const sink = { begin: () => {}, data: () => {} }
      for (const name of ['link.raw', 'dirlink/secret.raw']) {
        assert.equal(await codeOf(svc.readRange(name, 0, 10)), 'NOT_FOUND', `readRange ${name}`)
        assert.equal(await codeOf(svc.fetchRegion(name, 0, sink)), 'NOT_FOUND', `fetchRegion ${name}`)
        assert.equal(await codeOf(svc.regions(name, 0, 1, true)), 'NOT_FOUND', `regions ${name}`)
      }
      assert.deepEqual((await svc.volumes()).volumes.map(v => v.name), ['pool/b.raw', 'sparse.raw', 'vm1.raw'])
    })

    it('rejects names that could leave the image directory with INVALID_VOLUME_NAME', async () => {
      const sink = { begin: () => {}, data: () => {} }
      for (const name of ['../x', '/etc/passwd', 'a/../../x', '..', 'a\0b', '', '.volmirror/x', 'a//b', 'a\\..\\b']) {
        assert.equal(await codeOf(svc.readRange(name, 0, 10)), 'INVALID_VOLUME_NAME', `readRange ${JSON.stringify(name)}`)
        assert.equal(await codeOf(svc.fetchRegion(name, 0, sink)), 'INVALID_VOLUME_NAME', `fetchRegion ${JSON.stringify(name)}`)
        assert.equal(await codeOf(svc.regions(name, 0, 1, false)), 'INVALID_VOLUME_NAME', `regions ${JSON.stringify(name)}`)
      }
    })
  })
}

primaryServiceSuite('in process', async p => p.node.source)

primaryServiceSuite('over HTTP', async (p) => {
  const token = generateToken()
  const server = new PrimaryHttpServer(p.node.source, { token })
  await server.listen('127.0.0.1', 0)
  defer(() => server.close())
  const client = new PrimaryClient(server.url, { token })
  defer(() => client.close())
  return client
})
