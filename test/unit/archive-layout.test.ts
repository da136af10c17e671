/**
 * The archive's layout (lib/archive/layout.ts): chunks keep records byte
 * for byte and refuse damage; names sort and parse; spans stop at gaps;
 * a restore target picks the right base and chunks or says what exists;
 * retention keeps every point inside the window restorable.
 */
import assert from 'node:assert/strict'
import { encodedBytes, encodeRecord } from '../../lib/core/record.js'
import { isVolmirrorError } from '../../lib/errors.js'
import {
  baseKey, chunkKey, decodeChunk, encodeChunk, parseBaseKey, parseChunkKey, pickSpan, retained, spans, type BaseInfo, type ChunkInfo,
} from '../../lib/archive/layout.js'
import { compressBody, decompressInto } from '../../lib/http/compression.js'

function records (first: number, n: number): Buffer[] {
  return Array.from({ length: n }, (_, i) => encodedBytes(encodeRecord(first + i, 1_700_000_000_000 + i, { op: 'write', volume: 'vm.raw', offset: i * 4096, data: Buffer.alloc(4096, i) })))
}

const chunk = (first: number, last: number, lastTs: number): ChunkInfo => parseChunkKey(chunkKey(first, last, lastTs), 100)!
const base = (seq: number, complete: number, ts: number): BaseInfo => parseBaseKey(baseKey(seq, complete, ts))!

describe('archive layout', () => {
  it('a chunk holds its records byte for byte, with its group boundaries', () => {
    const rs = records(11, 5)
    const c = decodeChunk(encodeChunk(rs, 11, 15, [[13, 5], [15, 7]]), 'test')
    assert.deepEqual(c.header.ends, [[13, 5], [15, 7]])
    assert.deepEqual(c.records.map(r => r.seq), [11, 12, 13, 14, 15])
    for (const [i, r] of c.records.entries()) assert.ok(r.bytes.equals(rs[i]!))
  })

  it('a damaged chunk is refused with ARCHIVE_CORRUPT, never half applied', () => {
    const body = encodeChunk(records(1, 3), 1, 3, [[3, 1]])
    const raw = Buffer.alloc(1 << 20)
    const n = decompressInto(body, raw, 't')
    raw[n - 10]! ^= 0xff // inside the last record
    assert.throws(() => decodeChunk(compressBody([raw.subarray(0, n)]), 't'), (e: unknown) => isVolmirrorError(e, 'ARCHIVE_CORRUPT'))
    assert.throws(() => decodeChunk(body.subarray(0, body.length - 5), 't'), (e: unknown) => isVolmirrorError(e, 'ARCHIVE_CORRUPT'))
    assert.throws(() => decodeChunk(encodeChunk(records(1, 3), 1, 4, [[4, 1]]), 't'), (e: unknown) => isVolmirrorError(e, 'ARCHIVE_CORRUPT'))
  })

  it('names sort in seq order and parse back; other names are not taken for ours', () => {
    assert.ok(chunkKey(9, 10, 1) < chunkKey(10, 11, 1))
    assert.deepEqual(parseChunkKey(chunkKey(5, 9, 123), 7), { key: chunkKey(5, 9, 123), first: 5, last: 9, lastTs: 123, size: 7 })
    assert.equal(parseChunkKey('journal/../../etc'), undefined)
    assert.equal(parseBaseKey('bases/x.json'), undefined)
  })

  it('a span runs from its base over contiguous chunks and stops at a gap', () => {
    const s = spans([base(10, 12, 1000)], [chunk(1, 10, 900), chunk(11, 20, 1100), chunk(21, 30, 1200), chunk(41, 50, 1400)])
    assert.equal(s[0]!.last, 30)
    assert.deepEqual(s[0]!.chunks.map(c => c.first), [11, 21])
  })

  it('a target picks the latest base that reaches it, the chunks up to it, or says what is restorable', () => {
    const all = spans([base(0, 0, 1000), base(20, 25, 2000)], [chunk(1, 10, 1100), chunk(11, 20, 1500), chunk(21, 30, 2100), chunk(31, 40, 2500)])
    assert.equal(pickSpan(all, {}).span.base.seq, 20)
    assert.deepEqual(pickSpan(all, { seq: 15 }).chunks.map(c => c.first), [1, 11])
    assert.equal(pickSpan(all, { seq: 30 }).span.base.seq, 20)
    assert.deepEqual(pickSpan(all, { atMs: 2200 }).chunks.map(c => c.first), [21, 31])
    assert.equal(pickSpan(all, { atMs: 1600 }).span.base.seq, 0)
    assert.throws(() => pickSpan(all, { atMs: 500 }), (e: unknown) => isVolmirrorError(e, 'ARCHIVE_NO_POINT') && /restorable: seq 0\.\.40/.test(e.message))
    assert.throws(() => pickSpan(all, { seq: 99 }), (e: unknown) => isVolmirrorError(e, 'ARCHIVE_NO_POINT'))
  })

  it('retention keeps the bases in the window and the newest before it, and the chunks from there on', () => {
    const bases = [base(0, 0, 1000), base(20, 20, 2000), base(40, 40, 3000), base(60, 60, 4000)]
    const chunks = [chunk(1, 19, 1900), chunk(20, 39, 2900), chunk(40, 59, 3900), chunk(60, 70, 4100)]
    const r = retained(bases, chunks, 3500)
    assert.deepEqual(r.bases.map(b => b.seq), [40, 60])
    assert.deepEqual(r.dropBases.map(b => b.seq), [0, 20])
    assert.deepEqual(r.dropChunks.map(c => c.first), [1, 20])
    // A window past every base still keeps the newest.
    assert.deepEqual(retained(bases, chunks, 9999).bases.map(b => b.seq), [60])
  })
})
