/**
 * Damaged journal segments (primary and DR processes): 16 bytes
 * overwritten in the middle of a segment, inside record payloads.
 *
 *   - records the images already have: the primary says at start what is
 *     damaged (log and status), and the DR that still needed them gets no
 *     bad bytes: it resyncs the regions they touched and ends byte-equal;
 *   - records the images may not have (a crash before the checkpoint): the
 *     primary refuses to start, saying which records, RECORD_CORRUPT.
 */
import assert from 'node:assert/strict'
import { open, readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import { fsops } from '../helpers/fsop.js'
import { cmpFiles, MiB } from '../helpers/mirror.js'
import { startPair } from '../helpers/pair.js'
import { pattern } from '../helpers/pattern.js'
import { startNode } from '../helpers/proc.js'
import { waitFor } from '../helpers/wait.js'

/** damage overwrites 16 bytes in the middle of the largest journal segment; returns the segment's name. */
async function damage (state: string): Promise<string> {
  const dir = path.join(state, 'journal')
  const files = await Promise.all((await readdir(dir)).map(async f => ({ f, size: (await stat(path.join(dir, f))).size })))
  const seg = files.filter(x => x.size > 0).sort((a, b) => b.size - a.size)[0]!
  const fh = await open(path.join(dir, seg.f), 'r+')
  try {
    await fh.write(Buffer.alloc(16, 0xa5), 0, 16, Math.floor(seg.size / 2))
  } finally {
    await fh.close()
  }
  return seg.f
}

const writes = (file: string, seed: number): Array<Record<string, unknown> & { op: string }> =>
  Array.from({ length: 8 }, (_, i) => ({ op: 'write', path: file, offset: i * 512 * 1024, seed: seed + i, length: 256 * 1024 }))

describe('damaged journal segments (processes)', function () {
  this.timeout(3 * 60_000)

  it('found at start: said in the log and status; the DR that needed the records resyncs their regions and ends byte-equal', async () => {
    const pair = await startPair({ images: { 'vm.raw': pattern(1, 8 * MiB) } })
    await pair.consistent()
    await pair.dr.stop()
    // Written while the DR is away: the journal keeps these records for it.
    await fsops(writes(path.join(pair.dirs.mnt, 'vm.raw'), 10))
    await pair.primary.stop() // a clean stop: the images have every record
    const seg = await damage(pair.dirs.state)
    await pair.restartPrimary()
    assert.match(pair.primary.stderr, /journal\.damaged/, `the primary says what is damaged at start (segment ${seg})`)
    const p = await pair.primaryStatus()
    assert.ok(p.journalDamage && p.journalDamage.through > 0, 'status says so')
    await pair.startDr()
    const d = await pair.consistent(60_000)
    assert.ok(d.moved.resyncBytes > 0 || d.moved.fetchedBytes > 0, 'the DR fetched the regions instead of applying the damaged records')
    await cmpFiles(path.join(pair.dirs.images, 'vm.raw'), path.join(pair.dirs.drImages, 'vm.raw'))
  })

  it('not in the images yet (a crash before the checkpoint): the primary refuses to start and names the records', async () => {
    const pair = await startPair({ images: { 'vm.raw': pattern(2, 8 * MiB) }, dr: false, primaryArgs: ['--checkpoint-interval', '10m'] })
    await fsops(writes(path.join(pair.dirs.mnt, 'vm.raw'), 20))
    const before = await pair.primaryStatus()
    assert.ok(before.seq.durableInImages < before.seq.last, 'the writes are not checkpointed yet')
    await pair.primary.kill9()
    await damage(pair.dirs.state)
    const again = await startNode(['primary', '--images', pair.dirs.images, '--state', pair.dirs.state, '--mount', pair.dirs.mnt], { state: pair.dirs.state, mount: pair.dirs.mnt })
      .then(() => undefined, (err: Error) => err)
    assert.ok(again instanceof Error, 'the primary must not start')
    assert.match(again.message, /journal records [\d.]+(, [\d.]+)* are damaged on disk and not in the images yet.*\[RECORD_CORRUPT\]/s)
    await waitFor('no node on the state directory', async () => await pair.primaryStatus().then(() => false, () => true), 5000)
  })
})

