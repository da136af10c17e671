/**
 * The journal with its real parts: LevelDB on disk and segment files
 * (lib/store/journal.ts, lib/store/journal-segments.ts), no mounts.
 *
 * Covered: records come back as appended (seqs, fields, bytes, CRC); records
 * appended but not yet indexed when the writer was SIGKILLed are found again
 * by the tail scan, also across segment rotations and in recycled segments;
 * trimming frees segments and rotations recycle them; a torn tail is dropped
 * by replay and the journal continues after it; a failed append (a full
 * tmpfs) gives its seq back.
 *
 * Crashes are real: test/helpers/journal-writer.ts appends in a child
 * process that kills itself with SIGKILL before the index is written.
 *
 * Several cases are regressions of bugs these tests found (noted at each).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, open as openFile, readdir, readFile, statfs, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { encodedBytes, type EncodedRecord, type RecordFields } from '../../lib/core/record.js'
import { isVolmirrorError } from '../../lib/errors.js'
import { RecordApplier } from '../../lib/store/applier.js'
import { ImageDir } from '../../lib/store/image-dir.js'
import { Journal } from '../../lib/store/journal.js'
import { replayJournal } from '../../lib/store/replay.js'
import { StateStore } from '../../lib/store/state-store.js'
import { VolumeFiles } from '../../lib/store/volume-files.js'
import { defer } from '../helpers/cleanup.js'
import { JOURNAL_WRITER, writerRecord, type JournalWriterArgs } from '../helpers/journal-writer.js'
import { pattern } from '../helpers/pattern.js'
import { captureLog, type LogEvent } from '../helpers/primary.js'
import { run } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'

const MiB = 1024 * 1024

/** Opened is a journal open in this process, with the store under it. */
interface Opened { store: StateStore, journal: Journal, events: LogEvent[], close: () => Promise<void> }

/** openJournal opens STATE's store and journal; teardown closes them if the test did not. */
async function openJournal (state: string, opts: { segmentSize?: number } = {}): Promise<Opened> {
  const { log, events } = captureLog()
  const store = await StateStore.open(state, { role: 'primary' })
  const journal = new Journal(store, log, opts)
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await journal.close().catch(() => {})
    await store.close()
  }
  defer(close)
  try {
    await journal.open()
  } catch (err) {
    await close()
    throw err
  }
  return { store, journal, events, close }
}

/** indexEntries counts the journal's LevelDB entries without opening a Journal (which would index the tail). */
async function indexEntries (state: string): Promise<number> {
  const store = await StateStore.open(state, { role: 'primary' })
  try {
    let n = 0
    for await (const _ of store.binary('journal').keys()) n++
    return n
  } finally {
    await store.close()
  }
}

/** runWriter runs journal-writer.ts and returns the seqs it appended; it must die by SIGKILL. */
async function runWriter (args: JournalWriterArgs): Promise<{ first: number, last: number }> {
  const r = await run(process.execPath, [JOURNAL_WRITER, JSON.stringify(args)], { timeoutMs: 60_000 })
  assert.equal(r.signal, 'SIGKILL', `journal writer should kill itself (exit ${r.code}): ${r.stderr}`)
  return JSON.parse(r.stdout) as { first: number, last: number }
}

/** segmentFiles lists STATE/journal/seg-*.log. */
async function segmentFiles (state: string): Promise<string[]> {
  return (await readdir(path.join(state, 'journal'))).filter(n => /^seg-\d{8}\.log$/.test(n)).sort()
}

function segmentPath (state: string, no: number): string {
  return path.join(state, 'journal', `seg-${String(no).padStart(8, '0')}.log`)
}

/**
 * expectJournal reads the whole journal (every record CRC-checked by `read`)
 * and checks it is gap-free from `first` and ends at `last`; returns the records.
 */
async function expectJournal (journal: Journal, first: number, last: number): Promise<Awaited<ReturnType<Journal['read']>>> {
  assert.equal(journal.firstSeq, first, 'first seq')
  assert.equal(journal.lastSeq, last, 'last seq')
  assert.equal(journal.indexedSeq, last, 'indexed seq')
  const recs = await journal.read(first - 1)
  assert.deepEqual(recs.map(r => r.seq), range(first, last), 'seqs are contiguous')
  return recs
}

/** expectWriterRecords checks that `recs` are, in order, the records journal-writer.ts appends for `seed`. */
function expectWriterRecords (recs: Awaited<ReturnType<Journal['read']>>, seed: number, size: number): void {
  recs.forEach((r, i) => {
    const want = writerRecord(seed, i, size)
    assert.equal(r.op, 'write')
    assert.equal(r.volume, 'v.raw')
    assert.equal(r.offset, want.offset, `offset of seq ${r.seq}`)
    assert.ok(Buffer.from(r.data!).equals(want.data), `payload of seq ${r.seq}`)
  })
}

function range (a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i)
}

function sh (cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile(cmd, args, err => err ? reject(err) : resolve()))
}

/** overwrite writes `data` at `offset` of `file`. */
async function overwrite (file: string, offset: number, data: Buffer): Promise<void> {
  const fh = await openFile(file, 'r+')
  try { await fh.write(data, 0, data.length, offset) } finally { await fh.close() }
}

describe('journal (LevelDB and segment files on disk)', function () {
  this.timeout(120_000)

  it('gives back appended records: contiguous seqs, same fields and bytes, CRC verified', async () => {
    const state = path.join(await tmpDir('journal'), 'state')
    const j = await openJournal(state)
    const fields: RecordFields[] = [
      { op: 'create', volume: 'pool/a.raw', mode: 0o640 },
      { op: 'write', volume: 'pool/a.raw', offset: 0, data: pattern(1, 4096) },
      { op: 'write', volume: 'pool/a.raw', offset: 2 ** 40, data: pattern(2, 131072) },
      { op: 'write', volume: 'pool/a.raw', offset: 17, data: pattern(3, 1) },
      { op: 'zero', volume: 'pool/a.raw', offset: 8192, length: 65536 },
      { op: 'truncate', volume: 'pool/a.raw', offset: 5 * MiB },
      { op: 'chmod', volume: 'pool/a.raw', mode: 0o600 },
      { op: 'mkdir', volume: 'dir', mode: 0o750 },
      { op: 'rename', volume: 'pool/a.raw', target: 'dir/b é.raw' },
      { op: 'delete', volume: 'dir/b é.raw' },
      { op: 'rmdir', volume: 'dir' },
    ]
    const appended: EncodedRecord[] = []
    for (let round = 0; round < 3; round++) {
      for (const f of fields) appended.push(j.journal.append(f, 1_700_000_000_000 + appended.length))
    }
    assert.deepEqual(appended.map(r => r.seq), range(1, appended.length), 'append assigns contiguous seqs')
    assert.equal(j.journal.lastSeq, appended.length)
    await j.journal.indexed()

    const check = async (journal: Journal): Promise<void> => {
      const recs = await expectJournal(journal, 1, appended.length)
      recs.forEach((r, i) => {
        const a = appended[i]!
        assert.deepEqual(
          { seq: r.seq, ts: r.ts, op: r.op, volume: r.volume, offset: r.offset, length: r.length, mode: r.mode, target: r.target },
          { seq: a.seq, ts: a.ts, op: a.op, volume: a.volume, offset: a.offset, length: a.length, mode: a.mode, target: a.target })
        assert.ok(r.bytes.equals(encodedBytes(a)), `bytes of seq ${r.seq}`)
        if (a.data) assert.ok(Buffer.from(r.data!).equals(Buffer.from(a.data)))
        else assert.equal(r.data, undefined)
      })
      // Paging by count, bytes and upper bound returns the same records.
      const paged: number[] = []
      for (let at = 0; ;) {
        const page = await journal.read(at, { maxRecords: 4, maxBytes: 64 * 1024 })
        if (page.length === 0) break
        assert.ok(page.length <= 4)
        paged.push(...page.map(r => r.seq))
        at = page[page.length - 1]!.seq
      }
      assert.deepEqual(paged, range(1, appended.length))
      assert.deepEqual((await journal.read(5, { upto: 9 })).map(r => r.seq), [6, 7, 8, 9])
      assert.deepEqual((await journal.entries(0)).map(e => [e.seq, e.op, e.volume]), appended.map(a => [a.seq, a.op, a.volume]))
    }
    await check(j.journal)
    await j.close()
    const again = await openJournal(state)
    await check(again.journal)

    // The CRC is checked on every read: flip one payload byte of seq 3 on disk.
    const e3 = (await again.journal.entries(2, 3))[0]!
    const seg = segmentPath(state, e3.loc.segment)
    const at = e3.loc.offset + 100
    const byte = (await readFile(seg)).subarray(at, at + 1)
    await overwrite(seg, at, Buffer.from([byte[0]! ^ 0x10]))
    await assert.rejects(again.journal.read(2, { upto: 3 }), (err: unknown) => isVolmirrorError(err, 'RECORD_CORRUPT'))
    assert.equal((await again.journal.read(0, { upto: 2 })).length, 2, 'records before it still read')
  })

  it('reads records whose index entries are not written yet when asked (unindexed), in order with the indexed ones', async () => {
    const state = path.join(await tmpDir('journal'), 'state')
    const j = await openJournal(state)
    for (let i = 0; i < 5; i++) j.journal.append({ op: 'write', volume: 'v.raw', offset: i * 4096, data: pattern(i, 4096) })
    await j.journal.indexed()
    // Appended now: their entries wait for the next index batch (a few ms).
    for (let i = 5; i < 9; i++) j.journal.append({ op: 'write', volume: 'v.raw', offset: i * 4096, data: pattern(i, 4096) })
    assert.equal(j.journal.indexedSeq, 5)
    assert.deepEqual((await j.journal.read(0)).map(r => r.seq), [1, 2, 3, 4, 5], 'without unindexed: the index only')
    const all = await j.journal.read(0, { unindexed: true })
    assert.deepEqual(all.map(r => r.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9])
    all.forEach((r, i) => assert.ok(Buffer.from(r.data!).equals(pattern(i, 4096)), `bytes of seq ${r.seq}`))
    assert.deepEqual((await j.journal.read(6, { unindexed: true, upto: 8 })).map(r => r.seq), [7, 8])
    assert.deepEqual((await j.journal.read(3, { unindexed: true, maxRecords: 4 })).map(r => r.seq), [4, 5, 6, 7], 'bounded across the two')
    await j.journal.indexed()
    assert.deepEqual((await j.journal.read(0, { unindexed: true })).map(r => r.seq), range(1, 9), 'the same once indexed')
  })

  it('finds records appended but not indexed when the writer was SIGKILLed (tail scan)', async () => {
    const state = path.join(await tmpDir('journal'), 'state')
    const size = 4096
    const a = await runWriter({ state, count: 300, seed: 1000, size })
    assert.deepEqual(a, { first: 1, last: 300 })
    assert.ok(await indexEntries(state) < 300, 'the writer died before its records were all indexed')

    const j = await openJournal(state)
    expectWriterRecords(await expectJournal(j.journal, 1, 300), 1000, size)
    assert.ok(j.events.some(e => e.event === 'journal.tail_indexed'), 'open indexed the tail')
    await j.close()
    assert.equal(await indexEntries(state), 300, 'open wrote the tail to the index')

    // Again, with part of the records indexed before the kill: the scan starts after them.
    const b = await runWriter({ state, count: 200, seed: 2000, size, indexFirst: 120 })
    assert.deepEqual(b, { first: 301, last: 500 })
    const indexed = await indexEntries(state)
    assert.ok(indexed >= 420 && indexed < 500, `${indexed} entries: the first 120 of the run and no more than some of the rest`)
    const k = await openJournal(state)
    const recs = await expectJournal(k.journal, 1, 500)
    expectWriterRecords(recs.slice(0, 300), 1000, size)
    expectWriterRecords(recs.slice(300), 2000, size)

    // New appends continue after the recovered tail.
    const next = k.journal.append({ op: 'write', volume: 'v.raw', offset: 0, data: pattern(7, 10) })
    assert.equal(next.seq, 501)
  })

  it('finds unindexed records in the segments the writer rotated into before it died', async () => {
    const state = path.join(await tmpDir('journal'), 'state')
    const size = 60_000
    const segmentSize = MiB
    const r = await runWriter({ state, count: 70, seed: 3000, size, segmentSize, indexFirst: 10 })
    assert.deepEqual(r, { first: 1, last: 70 })
    assert.ok((await segmentFiles(state)).length >= 4, 'the writer rotated into new segments')
    assert.ok(await indexEntries(state) < 70)

    const j = await openJournal(state, { segmentSize })
    expectWriterRecords(await expectJournal(j.journal, 1, 70), 3000, size)
    // And the journal goes on in the last of them.
    const more = Array.from({ length: 5 }, (_, i) => j.journal.append({ op: 'write', volume: 'v.raw', offset: (70 + i) * size, data: pattern(3070 + i, size) }))
    assert.deepEqual(more.map(m => m.seq), [71, 72, 73, 74, 75])
    await j.close()
    const k = await openJournal(state, { segmentSize })
    expectWriterRecords(await expectJournal(k.journal, 1, 75), 3000, size)
  })

  it('finds unindexed records in recycled segments after a trim (some records still indexed)', async () => {
    await recycledCrash(false)
  })

  // A trim of every indexed record keeps the last one: its entry anchors the
  // tail scan (without it, a writer that rotated more than once after the
  // trim lost every unindexed record; found by this test).
  it('finds unindexed records in recycled segments after a trim of every indexed record', async () => {
    await recycledCrash(true)
  })

  /**
   * recycledCrash: fill several segments, trim (all or all but the last
   * record) so that segments go to the free list, then let the writer
   * rotate through recycled files (holding stale records) and die.
   */
  async function recycledCrash (trimAll: boolean): Promise<void> {
    const state = path.join(await tmpDir('journal'), 'state')
    const size = 60_000
    const segmentSize = MiB
    const j = await openJournal(state, { segmentSize })
    for (let i = 0; i < 60; i++) j.journal.append({ op: 'write', volume: 'old.raw', offset: i * size, data: pattern(9000 + i, size) })
    await j.journal.indexed()
    await j.journal.trim(trimAll ? 60 : 59)
    await j.close()
    const before = await segmentFiles(state)

    const w = await runWriter({ state, count: 50, seed: 4000, size, segmentSize })
    assert.deepEqual(w, { first: 61, last: 110 })
    const after = await segmentFiles(state)
    assert.ok(after.some(f => !before.includes(f)), 'the writer rotated')
    assert.ok(after.length < before.length + 3, `the writer recycled free segments (${before.join(',')} -> ${after.join(',')})`)

    const k = await openJournal(state, { segmentSize })
    // trim(60) keeps record 60 (the anchor); trim(59) keeps it anyway.
    const recs = await expectJournal(k.journal, 60, 110)
    assert.ok(Buffer.from(recs[0]!.data!).equals(pattern(9059, size)))
    expectWriterRecords(recs.slice(1), 4000, size)
  }

  it('trimming frees segments and later rotations recycle them; the directory stays bounded', async () => {
    const state = path.join(await tmpDir('journal'), 'state')
    const size = 20_000
    const segmentSize = 256 * 1024
    const j = await openJournal(state, { segmentSize })
    const seeds = new Map<number, number>()
    let maxFiles = 0
    let highest = 0
    for (let round = 0; round < 25; round++) {
      for (let i = 0; i < 30; i++) {
        const seed = round * 1000 + i
        const r = j.journal.append({ op: 'write', volume: 'v.raw', offset: i * size, data: pattern(seed, size) })
        seeds.set(r.seq, seed)
      }
      await j.journal.indexed()
      // Keep the last 5 records (a DR that is a little behind).
      const dropped = await j.journal.trim(j.journal.lastSeq - 5)
      assert.equal(dropped, round === 0 ? 25 : 30)
      const files = await segmentFiles(state)
      maxFiles = Math.max(maxFiles, files.length)
      highest = Math.max(highest, ...files.map(f => Number(f.slice(4, 12))))
      // What is left reads back and verifies.
      const recs = await expectJournal(j.journal, j.journal.lastSeq - 4, j.journal.lastSeq)
      for (const r of recs) assert.ok(Buffer.from(r.data!).equals(pattern(seeds.get(r.seq)!, size)), `seq ${r.seq}`)
    }
    const rotations = j.events.filter(e => e.event === 'journal.segment_rotated')
    const recycled = rotations.filter(e => e.fields.recycled === true).length
    assert.ok(highest >= 50, `many rotations happened (highest segment ${highest})`)
    assert.ok(maxFiles <= 8, `segment files stay bounded: at most ${maxFiles} (live + 4 kept free)`)
    assert.ok(recycled >= rotations.length - 6, `rotations reuse freed files: ${recycled} of ${rotations.length} recycled`)
    assert.ok(j.journal.stats().segments <= 2, `live segments: ${j.journal.stats().segments}`)

    await j.close()
    const k = await openJournal(state, { segmentSize })
    const recs = await expectJournal(k.journal, 25 * 30 - 4, 25 * 30)
    for (const r of recs) assert.ok(Buffer.from(r.data!).equals(pattern(seeds.get(r.seq)!, size)))
    assert.ok((await segmentFiles(state)).length <= 8)
  })

  // Trims and index batches used to race on the journal's meta (each wrote
  // a position read before the other landed), and the journal then refused
  // to open (STATE_INVALID) or had a gap. They are serialised now, each
  // writing its deletions or entries and the meta in one batch.
  it('a trim while an index batch is being written leaves a journal that opens again', async () => {
    const state = path.join(await tmpDir('journal'), 'state')
    const j = await openJournal(state)
    j.journal.append({ op: 'write', volume: 'v.raw', offset: 0, data: pattern(1, 100) })
    await j.journal.indexed()
    for (let i = 0; i < 5000; i++) j.journal.append({ op: 'write', volume: 'v.raw', offset: 0, data: pattern(i, 100) })
    // The trim starts first; the index batch of 5000 entries follows it. The
    // trim then sees record 1 as the last indexed one and keeps it.
    await Promise.all([j.journal.trim(1), j.journal.indexed()])
    await j.journal.trim(1)
    await j.close()
    const k = await openJournal(state)
    await expectJournal(k.journal, 2, 5001)
  })

  describe('torn tail', () => {
    const size = 4096

    /**
     * How a power loss can leave the last record: never written (its pages
     * read as zeros), overwritten with garbage, or torn mid-record (its
     * second half never reached the disk: the CRC fails).
     */
    type Tear = 'zeros' | 'garbage' | 'half'
    function tear (kind: Tear, bytes: number): Buffer {
      if (kind === 'zeros') return Buffer.alloc(bytes)
      if (kind === 'garbage') return pattern(666, bytes)
      return Buffer.alloc(bytes - Math.floor(bytes / 2))
    }

    /** tornJournal journals 20 writes (indexed, closed cleanly), then tears record 20 in its segment file. */
    async function tornJournal (kind: Tear): Promise<{ state: string, images: string }> {
      const root = await tmpDir('journal')
      const state = path.join(root, 'state')
      const images = path.join(root, 'images')
      await mkdir(images)
      await writeFile(path.join(images, 'v.raw'), Buffer.alloc(0))
      const j = await openJournal(state)
      for (let i = 0; i < 20; i++) {
        const { offset, data } = writerRecord(500, i, size)
        j.journal.append({ op: 'write', volume: 'v.raw', offset, data })
      }
      await j.journal.indexed()
      const last = (await j.journal.entries(19))[0]!
      assert.equal(last.seq, 20)
      await j.close()
      const bad = tear(kind, last.loc.size)
      await overwrite(segmentPath(state, last.loc.segment), last.loc.offset + last.loc.size - bad.length, bad)
      return { state, images }
    }

    function replayer (images: string): RecordApplier {
      const dir = new ImageDir(images)
      return new RecordApplier(dir, new VolumeFiles(dir), { zeroes: 'write', deletes: 'unlink' })
    }

    /**
     * expectDropped replays from `afterSeq` and checks the result: records
     * 1..19 intact, applied and kept, the torn one dropped and never
     * applied, its seq given to the next append, gap-free after a reopen.
     */
    async function expectDropped (kind: Tear, afterSeq: number): Promise<void> {
      const { state, images } = await tornJournal(kind)
      const j = await openJournal(state)
      const { log, events } = captureLog()
      const applied = await replayJournal(j.journal, replayer(images), afterSeq, log)
      assert.equal(applied, 19, 'replay applied every intact record')
      assert.ok(events.some(e => e.event === 'replay.torn_tail'), 'replay reported the torn tail')
      expectWriterRecords(await expectJournal(j.journal, 1, 19), 500, size)
      const image = await readFile(path.join(images, 'v.raw'))
      for (let i = afterSeq; i < 19; i++) {
        const { offset, data } = writerRecord(500, i, size)
        assert.ok(image.subarray(offset, offset + size).equals(data), `record ${i + 1} is in the image`)
      }
      assert.equal(image.length, afterSeq < 19 ? 19 * size : 0, 'the torn record was not applied')

      const next = j.journal.append({ op: 'write', volume: 'v.raw', offset: 19 * size, data: pattern(777, size) })
      assert.equal(next.seq, 20, 'the dropped seq goes to the next append')
      await j.close()
      const k = await openJournal(state)
      const recs = await expectJournal(k.journal, 1, 20)
      expectWriterRecords(recs.slice(0, 19), 500, size)
      assert.ok(Buffer.from(recs[19]!.data!).equals(pattern(777, size)), 'seq 20 is the new record')
    }

    it('is dropped by replay when it is the first record after the watermark; appends continue from there', async () => {
      // Records 1..19 are already in the image (watermark 19): only the torn one is read.
      await expectDropped('half', 19)
    })

    // Regression: replay used to drop the intact records before the torn one
    // along with it (it truncated at the start of the failed read batch).
    it('is dropped by replay together with nothing before it (torn mid-record, CRC fails)', async () => {
      await expectDropped('half', 0)
    })

    // Regression: a torn record of zeros or garbage failed with
    // RECORD_VERSION, which replay did not take for a torn tail, and the node
    // could not start.
    it('is dropped by replay when its pages never reached the disk (zeros)', async () => {
      await expectDropped('zeros', 0)
    })

    it('is dropped by replay when it was overwritten with garbage', async () => {
      await expectDropped('garbage', 0)
    })

    // Regression: appends after a dropped tail used to land behind the torn
    // bytes, where the tail scan after a crash never reached them.
    it('keeps records appended after a dropped torn tail when the writer dies before indexing them', async () => {
      const { state, images } = await tornJournal('half')
      // As a node does at start: open, replay (drops the torn record), then new writes; then it dies.
      const w = await runWriter({ state, count: 30, seed: 8000, size, replayImages: images, replayAfter: 19 })
      assert.deepEqual(w, { first: 20, last: 49 })
      const k = await openJournal(state)
      const recs = await expectJournal(k.journal, 1, 49)
      expectWriterRecords(recs.slice(0, 19), 500, size)
      expectWriterRecords(recs.slice(19), 8000, size)
    })
  })

  it('gives a failed append\'s seq back (NO_SPACE on a full tmpfs), and continues after a trim', async () => {
    const root = await tmpDir('journal')
    const state = path.join(root, 'state')
    await mkdir(state)
    await sh('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', state])
    defer(() => sh('umount', ['-l', state]))
    const size = 32 * 1024
    const segmentSize = 128 * 1024
    const j = await openJournal(state, { segmentSize })
    const seeds = new Map<number, number>()
    const append = (seed: number): EncodedRecord => j.journal.append({ op: 'write', volume: 'v.raw', offset: 0, data: pattern(seed, size) })
    let failure: unknown
    let lastOk = 0
    for (let i = 0; i < 1000 && failure === undefined; i++) {
      let r: EncodedRecord
      try {
        r = append(i)
      } catch (err) {
        failure = err
        break
      }
      assert.equal(r.seq, lastOk + 1)
      lastOk = r.seq
      seeds.set(r.seq, i)
      await j.journal.indexed()
    }
    assert.ok(isVolmirrorError(failure, 'NO_SPACE'), `append failed with NO_SPACE: ${String(failure)}`)
    assert.ok(lastOk > 20, `${lastOk} appends fit`)
    assert.equal(j.journal.lastSeq, lastOk, 'the failed append took no seq')
    assert.throws(() => append(4241), (err: unknown) => isVolmirrorError(err, 'NO_SPACE'), 'still full')
    assert.equal(j.journal.lastSeq, lastOk, 'nor did the second one')
    assert.equal((await statfs(state)).bavail, 0)

    // Trimming frees the segments beyond the few kept for recycling.
    await j.journal.trim(lastOk - 2)
    assert.ok((await statfs(state)).bavail * 4096 > 4 * segmentSize, 'the trim freed space')
    const r = append(4242)
    assert.equal(r.seq, lastOk + 1, 'the next append gets the seq right after the last successful one')
    seeds.set(r.seq, 4242)
    await j.journal.indexed()
    await j.close()

    const k = await openJournal(state, { segmentSize })
    const recs = await expectJournal(k.journal, lastOk - 1, lastOk + 1)
    for (const rec of recs) assert.ok(Buffer.from(rec.data!).equals(pattern(seeds.get(rec.seq)!, size)), `seq ${rec.seq}`)
  })
})
