/**
 * The native writers (native/src/journal.c) on a real journal: LevelDB and
 * segment files, real image files, no mount. Many native threads call the
 * write hook at once, as libfuse's workers do (test/helpers/native-hammer.ts).
 *
 * Covered: seqs are contiguous and image order is journal order (replaying
 * the journal in seq order rebuilds every image exactly); segments rotate
 * through spares; a writer process killed with SIGKILL mid-append leaves a
 * journal that opens gap-free, whose records rebuild the image it left.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import type { DecodedRecord } from '../../lib/core/record.js'
import { silentLogger } from '../../lib/log.js'
import { Journal } from '../../lib/store/journal.js'
import { StateStore } from '../../lib/store/state-store.js'
import { defer, trackPid, untrackPid } from '../helpers/cleanup.js'
import { NATIVE_HAMMER, startHammer, volumeName, type HammerArgs } from '../helpers/native-hammer.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

const MiB = 1024 * 1024

async function dirs (): Promise<{ state: string, images: string }> {
  const root = await tmpDir('native-journal')
  const images = path.join(root, 'images')
  await mkdir(images)
  return { state: path.join(root, 'state'), images }
}

/** allRecords opens STATE's journal afresh (tail scan included) and reads every record. */
async function allRecords (state: string): Promise<DecodedRecord[]> {
  const store = await StateStore.open(state, { role: 'primary' })
  const journal = new Journal(store, silentLogger)
  try {
    await journal.open()
    await journal.indexed()
    const out: DecodedRecord[] = []
    for (let after = journal.firstSeq - 1; after < journal.indexedSeq;) {
      const batch = await journal.read(after, { maxBytes: 16 * MiB })
      out.push(...batch)
      after = batch[batch.length - 1]!.seq
    }
    return out
  } finally {
    await journal.close()
    await store.close()
  }
}

/** replay applies records, in order, to in-memory images of `span` bytes (starting from `base` if given). */
function replay (records: DecodedRecord[], volumes: number, span: number, base?: Buffer[]): Buffer[] {
  const images = Array.from({ length: volumes }, (_, i) => {
    const b = Buffer.alloc(span)
    base?.[i]?.copy(b)
    return b
  })
  for (const r of records) {
    const img = images[Number(r.volume.slice(1, r.volume.indexOf('.')))]!
    if (r.op === 'write') img.set(r.data!, r.offset)
    else if (r.op === 'zero') img.fill(0, r.offset, r.offset + r.length)
  }
  return images
}

async function imagesOf (dir: string, volumes: number, span: number): Promise<Buffer[]> {
  const out: Buffer[] = []
  for (let i = 0; i < volumes; i++) {
    const b = Buffer.alloc(span)
    const f = await readFile(path.join(dir, volumeName(i))).catch(() => Buffer.alloc(0))
    f.copy(b)
    out.push(b)
  }
  return out
}

function assertContiguous (records: DecodedRecord[]): void {
  records.forEach((r, i) => { if (r.seq !== i + 1) assert.fail(`record ${i} has seq ${r.seq}, expected ${i + 1}`) })
}

describe('native writers on a real journal', function () {
  this.timeout(120_000)

  it('keep seqs contiguous and image order = journal order under 8 threads at once, across segment rotations', async () => {
    const d = await dirs()
    const args: HammerArgs = { ...d, volumes: 3, span: 4 * MiB, threads: 8, writesPerThread: 1500, maxLength: 8192, seed: 11, segmentSize: 2 * MiB }
    const h = await startHammer(args)
    let stopped = false
    defer(async () => { if (!stopped) await h.stop() })
    assert.equal(await h.round(args.seed), 0, 'every write succeeded')
    const state = h.native.journal!.state()
    assert.ok(state.rotations >= 5, `rotated through spares (${state.rotations} rotations)`)
    assert.equal(state.writes, args.threads * args.writesPerThread)
    stopped = true
    await h.stop()
    const records = await allRecords(d.state)
    assert.equal(records.length, args.threads * args.writesPerThread)
    assertContiguous(records)
    assert.ok(records.some(r => r.op === 'zero') && records.some(r => r.op === 'write'), 'zero and write records')
    const want = replay(records, args.volumes, args.span)
    const got = await imagesOf(d.images, args.volumes, args.span)
    for (let i = 0; i < args.volumes; i++) assert.ok(want[i]!.equals(got[i]!), `image ${i} equals its journal replayed in seq order`)
  })

  const kills = process.env.SOAK ? 20 : 3
  it(`leaves a gap-free journal that rebuilds the image when killed -9 mid-append (${kills} kills)`, async () => {
    for (let k = 0; k < kills; k++) {
      const d = await dirs()
      const args: HammerArgs = { ...d, volumes: 2, span: 2 * MiB, threads: 6, writesPerThread: 400, maxLength: 32768, seed: 100 + k, segmentSize: 4 * MiB }
      const child = spawn(process.execPath, [NATIVE_HAMMER, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] })
      trackPid(child.pid)
      let out = ''
      let err = ''
      child.stdout.on('data', (c: Buffer) => { out += c })
      child.stderr.on('data', (c: Buffer) => { err += c })
      const exited = new Promise(resolve => child.on('exit', resolve))
      await waitFor('the hammer to be ready', async () => out.includes('ready') || (child.exitCode !== null && assert.fail(`hammer exited: ${err}`)), 30_000, 5)
      await new Promise(resolve => setTimeout(resolve, 10 + Math.floor(Math.random() * 150)))
      child.kill('SIGKILL')
      await exited
      untrackPid(child.pid)
      const records = await allRecords(d.state)
      assert.ok(records.length >= args.threads * args.writesPerThread, `kill ${k}: at least the first round is in (${records.length} records)`)
      assertContiguous(records)
      const left = await imagesOf(d.images, args.volumes, args.span)
      const rebuilt = replay(records, args.volumes, args.span, left)
      const fromScratch = replay(records, args.volumes, args.span)
      for (let i = 0; i < args.volumes; i++) {
        assert.ok(rebuilt[i]!.equals(fromScratch[i]!), `kill ${k}: image ${i} is the journal's prefix (replay over it = replay from zeros)`)
      }
    }
  })
})
