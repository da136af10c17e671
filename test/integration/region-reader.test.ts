/**
 * The primary's streamed region reads (lib/primary/region-reader.ts) on
 * real files: the piece a reader waits for comes first, the CRC covers the
 * body in the order it was sent, and a write that lands in the region after
 * the first piece went out ends the stream with REGION_CHANGED (never bytes
 * from two moments). Writes are simulated by the seam a real write uses:
 * RegionVersions.wrote, called by the apply path after every write.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { crc32 } from 'node:zlib'
import { isVolmirrorError } from '../../lib/errors.js'
import { RegionReader, RegionVersions } from '../../lib/primary/region-reader.js'
import type { RegionSink } from '../../lib/replication/protocol.js'
import { ImageDir } from '../../lib/store/image-dir.js'
import { VolumeFiles } from '../../lib/store/volume-files.js'
import { pattern } from '../helpers/pattern.js'
import { tmpDir } from '../helpers/tmp.js'

const RS = 1 << 20
const SIZE = 3 * RS + 12_345

interface Received { asOf: number, chunks: Array<{ offset: number, data: Buffer }>, crc?: number }

function collect (onData?: (offset: number, n: number) => void): { sink: RegionSink, got: Received } {
  const got: Received = { asOf: -1, chunks: [] }
  const sink: RegionSink = {
    begin: (asOf) => { got.asOf = asOf },
    data: (offset, chunk) => {
      got.chunks.push({ offset, data: Buffer.from(chunk) })
      onData?.(offset, chunk.length)
    },
    end: (crc) => { if (crc !== undefined) got.crc = crc },
  }
  return { sink, got }
}

describe('region reader: streamed region reads', function () {
  let reader: RegionReader
  let versions: RegionVersions
  let bytes: Buffer
  let applied = 7

  beforeEach(async () => {
    const root = await tmpDir('reader')
    bytes = pattern(11, SIZE)
    await writeFile(path.join(root, 'v.raw'), bytes)
    const images = new ImageDir(root)
    versions = new RegionVersions(RS)
    reader = new RegionReader(images, new VolumeFiles(images), versions, () => applied, () => 3)
  })

  it('sends the bytes a reader waits for first, then the rest in body order, with a CRC of the body', async () => {
    const first = RS + 300_000
    const { sink, got } = collect()
    await reader.stream('v.raw', RS, RS, { at: first, length: 4096 }, sink)
    assert.equal(got.asOf, applied)
    assert.deepEqual(got.chunks[0], { offset: first, data: bytes.subarray(first, first + 4096) }, 'the reader\'s 4 KiB alone, first')
    let at = first
    for (const c of got.chunks) {
      assert.equal(c.offset, at, 'contiguous in body order')
      at = c.offset + c.data.length === 2 * RS ? RS : c.offset + c.data.length
    }
    assert.equal(at, first, 'the body wraps around to where it began')
    assert.ok(got.chunks.every(c => c.data.length <= 256 * 1024), 'the rest comes in bounded pieces')
    assert.equal(got.crc, got.chunks.reduce((c, x) => crc32(x.data, c), 0))
    for (const c of got.chunks) assert.deepEqual(c.data, bytes.subarray(c.offset, c.offset + c.data.length))
  })

  it('reads a region in one piece when no reader waits (hydration), short at end of file', async () => {
    const { sink, got } = collect()
    await reader.stream('v.raw', 3 * RS, RS, undefined, sink)
    assert.equal(got.chunks.length, 1)
    assert.deepEqual(got.chunks[0], { offset: 3 * RS, data: bytes.subarray(3 * RS) })
    assert.equal(got.crc, crc32(bytes.subarray(3 * RS)))
  })

  it('ends with REGION_CHANGED when a write lands in the region after the first piece went out', async () => {
    let wrote = false
    const { sink, got } = collect(() => {
      if (wrote) return
      wrote = true
      applied++
      versions.wrote('v.raw', RS + 10, 100, applied)
    })
    await assert.rejects(reader.stream('v.raw', RS, RS, { at: RS + 8192, length: 4096 }, sink), (e: unknown) => isVolmirrorError(e, 'REGION_CHANGED'))
    assert.equal(got.chunks.length, 1, 'nothing after the write')
    assert.equal(got.crc, undefined, 'no CRC: the body is not complete')
    // A write to another region does not disturb it.
    const other = collect(() => { versions.wrote('v.raw', 0, 100, ++applied) })
    await reader.stream('v.raw', RS, RS, { at: RS + 8192, length: 4096 }, other.sink)
    assert.equal(other.got.chunks.reduce((n, c) => n + c.data.length, 0), RS)
  })

  it('holds the rest of a region back while another reader\'s first piece goes out (readers first)', async () => {
    const order: string[] = []
    const tag = (name: string): RegionSink => ({
      begin: () => {},
      data: (offset, chunk) => { order.push(`${name}${chunk.length === 4096 ? ' first' : ' rest'}`) },
    })
    // Two readers one after the other, as a VM reading untouched places does:
    // the second one's first piece must not wait for the first one's rest.
    const a = reader.stream('v.raw', 0, RS, { at: 8192, length: 4096 }, tag('a'))
    await new Promise(resolve => setImmediate(resolve))
    const b = reader.stream('v.raw', RS, RS, { at: RS + 8192, length: 4096 }, tag('b'))
    await Promise.all([a, b])
    assert.deepEqual(order.slice(0, 2), ['a first', 'b first'], order.join(', '))
    assert.ok(reader.counters.deferred > 0, 'rest pieces were held back')
    // Hydration (no reader waiting) is never held back.
    const before = reader.counters.deferred
    const { sink } = collect()
    await reader.stream('v.raw', 2 * RS, RS, undefined, sink)
    assert.equal(reader.counters.deferred, before)
  })
})
