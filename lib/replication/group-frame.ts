/**
 * group-frame: a GroupBatch on the wire.
 *
 * Version 1 (integers big-endian):
 *
 *   off size field
 *   0   4    magic "VMG1"
 *   4   1    version (1)
 *   5   1    flags: bit 0 = sync wanted (GroupBatch.syncWanted); others 0
 *   6   2    reserved (0)
 *   8   8    after
 *   16  8    groupEnd
 *   24  8    lastSeq
 *   32  8    time (ms)
 *   40  8    oldestPendingTs (ms, 0 = none)
 *   48  4    record count
 *   52  4    CRC-32 of bytes [0, 52)
 *   56  ...  the records, encoded as in the journal (each with its own CRC)
 *
 * The decoder checks the header CRC, every record's CRC, the count, and
 * that seqs run on from `after` without a gap; anything else is rejected
 * (PEER_PROTOCOL or RECORD_CORRUPT) and never applied.
 * `fixtures/group-frame-v1.bin` pins the layout.
 */
import { crc32 } from '@node-rs/crc32'
import { decodeRecord, HEADER_SIZE, peekSize, type DecodedRecord } from '../core/record.js'
import { VolmirrorError } from '../errors.js'
import type { GroupBatch } from './protocol.js'

const MAGIC = Buffer.from('VMG1')
const VERSION = 1
const FLAG_SYNC = 1
/** FRAME_HEADER is the fixed header size. */
export const FRAME_HEADER = 56

/** encodeGroupFrame returns the pieces to send (header, then each record's bytes, not copied). */
export function encodeGroupFrame (b: GroupBatch): Buffer[] {
  const h = Buffer.alloc(FRAME_HEADER)
  MAGIC.copy(h, 0)
  h[4] = VERSION
  h[5] = b.syncWanted ? FLAG_SYNC : 0
  writeU64(h, 8, b.after)
  writeU64(h, 16, b.groupEnd)
  writeU64(h, 24, b.lastSeq)
  writeU64(h, 32, b.time)
  writeU64(h, 40, b.oldestPendingTs)
  h.writeUInt32BE(b.records.length, 48)
  h.writeUInt32BE(crc32(h.subarray(0, 52)), 52)
  return [h, ...b.records.map(r => r.bytes)]
}

/** decodeGroupFrame parses and verifies a whole frame. */
export function decodeGroupFrame (buf: Buffer): GroupBatch {
  if (buf.length < FRAME_HEADER) throw protocol(`group frame of ${buf.length} bytes is shorter than its header`)
  if (!buf.subarray(0, 4).equals(MAGIC)) throw protocol('group frame has a bad magic number')
  if (buf[4] !== VERSION) throw protocol(`group frame version ${buf[4]} is not supported`)
  if (buf.readUInt32BE(52) !== crc32(buf.subarray(0, 52))) throw new VolmirrorError('RECORD_CORRUPT', 'group frame header CRC mismatch')
  const after = readU64(buf, 8)
  const count = buf.readUInt32BE(48)
  const records: DecodedRecord[] = []
  let at = FRAME_HEADER
  for (let i = 0; i < count; i++) {
    if (at + HEADER_SIZE > buf.length) throw protocol(`group frame ends inside record ${i + 1} of ${count}`)
    const size = peekSize(buf.subarray(at, at + HEADER_SIZE))
    if (at + size > buf.length) throw protocol(`group frame ends inside record ${i + 1} of ${count}`)
    const rec = decodeRecord(buf.subarray(at, at + size))
    if (rec.seq !== after + i + 1) throw protocol(`group frame record ${i + 1} has seq ${rec.seq}, expected ${after + i + 1}`)
    records.push(rec)
    at += size
  }
  if (at !== buf.length) throw protocol(`group frame has ${buf.length - at} bytes after its last record`)
  const groupEnd = readU64(buf, 16)
  if (groupEnd < after + count) throw protocol(`group frame ends its group at ${groupEnd}, before its last record ${after + count}`)
  return {
    after, records, groupEnd, lastSeq: readU64(buf, 24), time: readU64(buf, 32), oldestPendingTs: readU64(buf, 40),
    ...((buf[5]! & FLAG_SYNC) !== 0 ? { syncWanted: true } : {}),
  }
}

function protocol (msg: string): VolmirrorError {
  return new VolmirrorError('PEER_PROTOCOL', msg)
}

function writeU64 (b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 0x100000000), at)
  b.writeUInt32BE(v >>> 0, at + 4)
}

function readU64 (b: Buffer, at: number): number {
  const hi = b.readUInt32BE(at)
  if (hi > 0x1fffff) throw protocol(`group frame field at ${at} exceeds 2^53`)
  return hi * 0x100000000 + b.readUInt32BE(at + 4)
}
