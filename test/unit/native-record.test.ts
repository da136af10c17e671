/**
 * The C side of the record format (native/src/record.c) against the
 * TypeScript encoder, which defines it: the same header bytes for every
 * shape of write and zero record, and whole records written by the native
 * write hook that decode, and equal encodeRecord's bytes, byte for byte.
 * (Files in a temporary directory; no mount.)
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { decodeRecord, encodedBytes, encodeHead, encodeRecord } from '../../lib/core/record.js'
import { encodeHeadNative, NativeMount } from '../../lib/fuse/native-path.js'
import { defer } from '../helpers/cleanup.js'
import { tmpDir } from '../helpers/tmp.js'

describe('native record encoding (C) = TypeScript encoding', () => {
  it('writes the same header bytes for writes and zeros of every shape', () => {
    const names = ['v', 'vm1.raw', 'a/b/c/disk.qcow2', 'ünïcödé/диск.img', 'x'.repeat(255), `${'d/'.repeat(100)}f`]
    const numbers = [0, 1, 4095, 4096, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12345, 2 ** 53 - 1]
    let checked = 0
    for (const op of ['write', 'zero'] as const) {
      for (const name of names) {
        for (const n of numbers) {
          const ts = 1_700_000_000_000 + n % 1000
          const length = (n % 131072) + 1
          const c = encodeHeadNative(op, n === 0 ? 1 : n, ts, n, length, name)
          const js = encodeHead(n === 0 ? 1 : n, ts, { op, volume: name, offset: n, length })
          assert.deepEqual(c, js, `${op} ${name} ${n}`)
          checked++
        }
      }
    }
    assert.equal(checked, 2 * names.length * numbers.length)
  })

  it('journals whole records through the write hook that equal encodeRecord, payload and CRC included', async () => {
    const dir = await tmpDir('native-record')
    const img = fs.openSync(path.join(dir, 'img'), 'w+')
    const seg = fs.openSync(path.join(dir, 'seg-00000001.log'), 'w+')
    defer(() => { fs.closeSync(img); fs.closeSync(seg) })
    const m = new NativeMount('primary', 1 << 20)
    defer(() => m.close())
    const fh = m.bind(m.openVolume(img, 'dir/vm disk.raw'))
    m.startJournal({ dir, segmentSize: 64 << 20, segment: 1, segmentFd: seg, segmentOffset: 0, nextSegment: 2, lastSeq: 2 ** 32 + 5 }, () => {})
    const writes: Array<{ offset: number, data: Buffer }> = [
      { offset: 0, data: Buffer.from('hello') },
      { offset: 4096, data: Buffer.alloc(4096, 0) }, // all zeros: a zero record, no payload
      { offset: 2 ** 33, data: Buffer.alloc(131072, 0xab) },
      { offset: 1, data: Buffer.from([0, 0, 0, 1]) }, // not all zeros
    ]
    for (const w of writes) assert.equal(m.testWrite(fh, w.data, w.offset), w.data.length)
    const entries = m.journal!.drain()
    assert.equal(entries.length, writes.length)
    entries.forEach((e, i) => {
      const w = writes[i]!
      assert.equal(e.seq, 2 ** 32 + 6 + i)
      const bytes = Buffer.alloc(e.size)
      fs.readSync(seg, bytes, 0, e.size, e.segOffset)
      const zero = w.data.every(b => b === 0)
      const js = encodeRecord(e.seq, e.ts, zero
        ? { op: 'zero', volume: 'dir/vm disk.raw', offset: w.offset, length: w.data.length }
        : { op: 'write', volume: 'dir/vm disk.raw', offset: w.offset, data: w.data })
      assert.deepEqual(bytes, encodedBytes(js), `record ${i}`)
      const r = decodeRecord(bytes)
      assert.equal(r.op, zero ? 'zero' : 'write')
      assert.equal(e.op, r.op)
      // And the image got the bytes (zeros written as zeros on a primary).
      const back = Buffer.alloc(w.data.length)
      fs.readSync(img, back, 0, back.length, w.offset)
      if (i !== 0) assert.deepEqual(back, w.data)
    })
  })
})
