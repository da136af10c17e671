import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { decodeRecord, encodeRecord, encodedBytes, keySeq, OP_CODES, peekSize, seqKey, type Op } from '../../lib/core/record.js'
import { decodeIndexEntry, encodeIndexEntry } from '../../lib/store/journal.js'
import { isVolmirrorError } from '../../lib/errors.js'
import { ROOT } from '../helpers/proc.js'

const fixture = (name: string): Promise<Buffer> => readFile(path.join(ROOT, 'fixtures', name))

describe('record', () => {
  it('round-trips every op', () => {
    const ops = Object.keys(OP_CODES) as Op[]
    for (const op of ops) {
      const data = op === 'write' ? Buffer.from('hello world') : undefined
      const rec = encodeRecord(7, 1000, { op, volume: 'a/b.raw', offset: 4096, length: op === 'zero' ? 512 : undefined, mode: 0o640, target: op === 'rename' ? 'c.raw' : undefined, data })
      const bytes = encodedBytes(rec)
      assert.equal(bytes.length, rec.size)
      assert.equal(peekSize(bytes.subarray(0, 44)), rec.size)
      const back = decodeRecord(bytes)
      assert.equal(back.op, op)
      assert.equal(back.seq, 7)
      assert.equal(back.ts, 1000)
      assert.equal(back.volume, 'a/b.raw')
      assert.equal(back.offset, 4096)
      assert.equal(back.mode, 0o640)
      if (op === 'write') assert.deepEqual(Buffer.from(back.data!), data)
      if (op === 'zero') { assert.equal(back.length, 512); assert.equal(back.data, undefined) }
      if (op === 'rename') assert.equal(back.target, 'c.raw')
    }
  })

  it('does not copy the payload when encoding', () => {
    const data = Buffer.alloc(8192, 1)
    const rec = encodeRecord(1, 1, { op: 'write', volume: 'v', data })
    assert.equal(rec.data, data)
  })

  it('rejects every single flipped bit with RECORD_CORRUPT (CRC)', () => {
    const bytes = encodedBytes(encodeRecord(99, 5, { op: 'write', volume: 'vm.raw', offset: 0, data: Buffer.from('abcdefgh') }))
    for (let i = 0; i < bytes.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(bytes)
        bad[i]! ^= 1 << bit
        assert.throws(() => decodeRecord(bad), (err: unknown) => isVolmirrorError(err, 'RECORD_CORRUPT') || isVolmirrorError(err, 'RECORD_VERSION'),
          `flip of bit ${bit} in byte ${i} went unnoticed`)
      }
    }
  })

  it('rejects truncated records and unknown versions', () => {
    const bytes = encodedBytes(encodeRecord(1, 1, { op: 'write', volume: 'v', data: Buffer.alloc(100) }))
    assert.throws(() => decodeRecord(bytes.subarray(0, bytes.length - 1)), (e: unknown) => isVolmirrorError(e, 'RECORD_CORRUPT'))
    assert.throws(() => decodeRecord(bytes.subarray(0, 10)), (e: unknown) => isVolmirrorError(e, 'RECORD_CORRUPT'))
    const v2 = Buffer.from(bytes)
    v2[0] = 2
    assert.throws(() => decodeRecord(v2), (e: unknown) => isVolmirrorError(e, 'RECORD_VERSION'))
  })

  it('keys sort in seq order', () => {
    const seqs = [0, 1, 255, 256, 65535, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]
    const keys = seqs.map(seqKey)
    const sorted = [...keys].sort(Buffer.compare)
    assert.deepEqual(sorted.map(keySeq), seqs)
  })

  it('matches the v1 fixtures byte for byte', async () => {
    const write = await fixture('record-v1-write.bin')
    const rec = decodeRecord(write)
    assert.equal(rec.seq, 4242)
    assert.equal(rec.ts, 1763800000123)
    assert.equal(rec.op, 'write')
    assert.equal(rec.volume, 'pool/vm1.raw')
    assert.equal(rec.offset, 1048576)
    assert.equal(Buffer.from(rec.data!).toString(), 'volmirror record format v1\n')
    assert.deepEqual(encodedBytes(encodeRecord(4242, 1763800000123, { op: 'write', volume: 'pool/vm1.raw', offset: 1048576, data: rec.data! })), write)

    const rename = await fixture('record-v1-rename.bin')
    const rn = decodeRecord(rename)
    assert.equal(rn.op, 'rename')
    assert.equal(rn.target, 'pool/vm2.raw')
    assert.deepEqual(encodedBytes(encodeRecord(4243, 1763800000124, { op: 'rename', volume: 'pool/vm1.raw', target: 'pool/vm2.raw' })), rename)

    const index = await fixture('journal-index-v1.bin')
    const e = decodeIndexEntry(index)
    assert.deepEqual(e.loc, { segment: 7, offset: 65536, size: write.length })
    assert.equal(e.seq, 4242)
    assert.equal(e.volume, 'pool/vm1.raw')
    assert.equal(e.offset, 1048576)
    assert.equal(e.length, 27)
    assert.deepEqual(encodeIndexEntry(e.loc, write.subarray(0, 44 + 12)), index)
  })
})
