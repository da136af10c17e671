/**
 * group-frame: the v1 wire frame of a GroupBatch, pinned by
 * fixtures/group-frame-v1.bin (the two journal record fixtures, seq 4242
 * and 4243, after 4241), and its rejection of anything damaged.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { encodeRecord, encodedBytes, decodeRecord } from '../../lib/core/record.js'
import { isVolmirrorError } from '../../lib/errors.js'
import { decodeGroupFrame, encodeGroupFrame, FRAME_HEADER } from '../../lib/replication/group-frame.js'
import type { GroupBatch } from '../../lib/replication/protocol.js'
import { ROOT } from '../helpers/proc.js'

const fixture = (name: string): Promise<Buffer> => readFile(path.join(ROOT, 'fixtures', name))

function frame (b: GroupBatch): Buffer {
  return Buffer.concat(encodeGroupFrame(b))
}

function batchOf (after: number, n: number): GroupBatch {
  const records = Array.from({ length: n }, (_, i) => decodeRecord(encodedBytes(encodeRecord(after + i + 1, 1000 + i, { op: 'write', volume: 'v.raw', offset: i * 4096, data: Buffer.alloc(100, i + 1) }))))
  return { after, records, groupEnd: after + n, lastSeq: after + n + 2, time: 5000, oldestPendingTs: 1000 }
}

describe('group frame', () => {
  it('matches the v1 fixture: decode gives the fields, encode gives the same bytes', async () => {
    const bytes = await fixture('group-frame-v1.bin')
    const b = decodeGroupFrame(bytes)
    assert.equal(b.after, 4241)
    assert.equal(b.groupEnd, 4243)
    assert.equal(b.lastSeq, 4250)
    assert.equal(b.time, 1763800000500)
    assert.equal(b.oldestPendingTs, 1763800000123)
    assert.deepEqual(b.records.map(r => [r.seq, r.op, r.volume]), [[4242, 'write', 'pool/vm1.raw'], [4243, 'rename', 'pool/vm1.raw']])
    assert.equal(Buffer.from(b.records[0]!.data!).toString(), 'volmirror record format v1\n')
    assert.equal(b.records[1]!.target, 'pool/vm2.raw')
    assert.deepEqual(b.records[0]!.bytes, await fixture('record-v1-write.bin'))
    assert.deepEqual(b.records[1]!.bytes, await fixture('record-v1-rename.bin'))
    assert.deepEqual(frame(b), bytes)
  })

  it('sends records without copying them', () => {
    const b = batchOf(10, 2)
    const pieces = encodeGroupFrame(b)
    assert.equal(pieces.length, 3)
    assert.equal(pieces[1], b.records[0]!.bytes)
  })

  it('rejects a flipped byte anywhere: header by its CRC, records by theirs', () => {
    const good = frame(batchOf(10, 2))
    for (let i = 0; i < good.length; i++) {
      const bad = Buffer.from(good)
      bad[i]! ^= 0x10
      assert.throws(() => decodeGroupFrame(bad), (e: unknown) => isVolmirrorError(e, 'RECORD_CORRUPT') || isVolmirrorError(e, 'PEER_PROTOCOL') || isVolmirrorError(e, 'RECORD_VERSION'),
        `a flip in byte ${i} went unnoticed`)
    }
    const header = Buffer.from(good)
    header[12]! ^= 1 // inside `after`
    assert.throws(() => decodeGroupFrame(header), (e: unknown) => isVolmirrorError(e, 'RECORD_CORRUPT'))
    const record = Buffer.from(good)
    record[FRAME_HEADER + 60]! ^= 1 // inside the first record's payload
    assert.throws(() => decodeGroupFrame(record), (e: unknown) => isVolmirrorError(e, 'RECORD_CORRUPT'))
  })

  it('rejects truncation, trailing bytes, gaps and a group end before the records', () => {
    const good = frame(batchOf(10, 2))
    const is = (code: string) => (e: unknown) => isVolmirrorError(e, code as 'PEER_PROTOCOL')
    assert.throws(() => decodeGroupFrame(good.subarray(0, good.length - 1)), is('PEER_PROTOCOL'))
    assert.throws(() => decodeGroupFrame(good.subarray(0, 20)), is('PEER_PROTOCOL'))
    assert.throws(() => decodeGroupFrame(Buffer.concat([good, Buffer.from([0])])), is('PEER_PROTOCOL'))
    const gap = batchOf(10, 2)
    gap.after = 9
    assert.throws(() => decodeGroupFrame(frame(gap)), is('PEER_PROTOCOL'))
    const early = batchOf(10, 2)
    early.groupEnd = 11
    assert.throws(() => decodeGroupFrame(frame(early)), is('PEER_PROTOCOL'))
    const empty = decodeGroupFrame(frame({ after: 7, records: [], groupEnd: 7, lastSeq: 9, time: 1, oldestPendingTs: 0 }))
    assert.deepEqual([empty.after, empty.records.length, empty.groupEnd], [7, 0, 7])
  })
})
