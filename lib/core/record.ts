/**
 * record: one journaled mutation and its binary form.
 *
 * A record is what the primary journals for every mutation of every volume,
 * what it ships to DR nodes, and what a DR stores before applying. The binary
 * form is the same in journal segments and on the wire, so a record is
 * checked by CRC and never re-encoded between the two (LevelDB holds each
 * record's header and where its bytes are: lib/store/journal.ts).
 *
 * Format version 1 (all integers big-endian):
 *
 *   off  size  field
 *   0    1     version (1)
 *   1    1     op (see OP_CODES)
 *   2    2     flags (reserved, 0)
 *   4    8     seq
 *   12   8     ts, milliseconds since the epoch
 *   20   8     offset  (write/zero: byte offset; truncate: new size)
 *   28   8     length  (write: payload bytes; zero: bytes zeroed; else 0)
 *   36   4     mode    (create, mkdir, chmod; else 0)
 *   40   2     volume name length n (UTF-8 bytes)
 *   42   2     target name length m (rename destination; else 0)
 *   44   n     volume name
 *   44+n m     target name
 *   ...  len   payload (write only)
 *   end  4     CRC-32 (IEEE) of every byte before it
 *
 * `fixtures/record-v1.bin` pins this layout; change it only with a new version.
 */
import { crc32 } from '@node-rs/crc32'
import { VolmirrorError } from '../errors.js'

/** RECORD_VERSION is the format version this build writes. */
export const RECORD_VERSION = 1
/** HEADER_SIZE is the fixed part before the names. */
export const HEADER_SIZE = 44
/** CRC_SIZE is the trailing checksum. */
export const CRC_SIZE = 4

/** Op is the kind of mutation a record holds. */
export type Op = 'write' | 'zero' | 'truncate' | 'create' | 'rename' | 'delete' | 'mkdir' | 'rmdir' | 'chmod'

/** OP_CODES are the on-disk op numbers; never reuse one. */
export const OP_CODES: Readonly<Record<Op, number>> = {
  write: 1, zero: 2, truncate: 3, create: 4, rename: 5, delete: 6, mkdir: 7, rmdir: 8, chmod: 9,
}
const OPS_BY_CODE: Op[] = []
for (const [op, code] of Object.entries(OP_CODES)) OPS_BY_CODE[code] = op as Op

/** NAMESPACE_OPS change which names exist; they are barriers in the write path. */
export const NAMESPACE_OPS: ReadonlySet<Op> = new Set(['create', 'rename', 'delete', 'mkdir', 'rmdir'])

/** RecordFields is what a caller supplies to make a record; seq and ts are assigned by the journal. */
export interface RecordFields {
  op: Op
  volume: string
  offset?: number
  length?: number
  mode?: number
  target?: string
  /** The payload of a write. Not copied: it must stay unchanged until the record is stored. */
  data?: Uint8Array
}

/** RecordHeader is where and when a record belongs: what the journal's index keeps of it. */
export interface RecordHeader {
  seq: number
  ts: number
  op: Op
  volume: string
  offset: number
  length: number
}

/** JournalRecord is a decoded record. */
export interface JournalRecord extends RecordHeader {
  mode: number
  target: string
  /** The payload of a write (a view, never a copy). */
  data: Uint8Array | undefined
}

/**
 * EncodedRecord is a record in its binary form, as the pieces to write
 * (header and names, payload, CRC) rather than one copied buffer: the
 * payload is written to disk straight from where it is.
 */
export interface EncodedRecord extends JournalRecord {
  /** Header and names: bytes [0, HEADER_SIZE + n + m). */
  head: Buffer
  /** The trailing CRC-32. */
  tail: Buffer
  /** Total encoded size (head + payload + tail). */
  size: number
}

/** DecodedRecord is a record read back from its bytes; `bytes` is the whole encoding. */
export interface DecodedRecord extends JournalRecord {
  bytes: Buffer
}

/** recordParts lists the pieces of an encoded record in order, for writev. */
export function recordParts (r: EncodedRecord): Uint8Array[] {
  return r.op === 'write' && r.data && r.data.length > 0 ? [r.head, r.data, r.tail] : [r.head, r.tail]
}

/**
 * encodeHead builds a record's header and names (bytes [0, HEADER_SIZE + n + m)):
 * for a write, `length` is its payload's size. The native write path writes
 * the same bytes in C (native/src/record.c; a unit test pins them to these).
 */
export function encodeHead (seq: number, ts: number, f: Omit<RecordFields, 'data'> & { length: number }): Buffer {
  const code = OP_CODES[f.op]
  if (code === undefined) throw new VolmirrorError('INVALID_ARGUMENT', `unknown record op ${String(f.op)}`)
  const vol = Buffer.from(f.volume, 'utf8')
  const target = Buffer.from(f.target ?? '', 'utf8')
  if (vol.length > 0xffff || target.length > 0xffff) throw new VolmirrorError('NAME_TOO_LONG', 'volume name too long for a record')
  const head = Buffer.allocUnsafe(HEADER_SIZE + vol.length + target.length)
  head[0] = RECORD_VERSION
  head[1] = code
  head.writeUInt16BE(0, 2)
  writeU64(head, 4, seq)
  writeU64(head, 12, ts)
  writeU64(head, 20, f.offset ?? 0)
  writeU64(head, 28, f.length)
  head.writeUInt32BE((f.mode ?? 0) >>> 0, 36)
  head.writeUInt16BE(vol.length, 40)
  head.writeUInt16BE(target.length, 42)
  vol.copy(head, HEADER_SIZE)
  target.copy(head, HEADER_SIZE + vol.length)
  return head
}

/**
 * encodeRecord builds the binary record around `f.data` without copying
 * it; the CRC covers header, names and payload.
 */
export function encodeRecord (seq: number, ts: number, f: RecordFields): EncodedRecord {
  const data = f.op === 'write' ? (f.data ?? new Uint8Array(0)) : undefined
  const length = data ? data.length : (f.length ?? 0)
  const head = encodeHead(seq, ts, { ...f, length })
  let crc = crc32(head)
  if (data && data.length > 0) crc = crc32(data, crc)
  const tail = Buffer.allocUnsafe(CRC_SIZE)
  tail.writeUInt32BE(crc, 0)
  return {
    seq, ts, op: f.op, volume: f.volume, offset: f.offset ?? 0, length, mode: f.mode ?? 0, target: f.target ?? '',
    data, head, tail, size: head.length + (data?.length ?? 0) + CRC_SIZE,
  }
}

/** encodedBytes joins an encoded record into one buffer (the wire and test form; copies the payload). */
export function encodedBytes (r: EncodedRecord): Buffer {
  return Buffer.concat(recordParts(r), r.size)
}

/**
 * decodeRecord parses and verifies one encoded record. Throws RECORD_CORRUPT
 * for a bad CRC or a truncated record, RECORD_VERSION for a version this
 * build cannot read. The returned `data` is a view into `bytes`.
 */
export function decodeRecord (bytes: Buffer): DecodedRecord {
  if (bytes.length < HEADER_SIZE + CRC_SIZE) throw corrupt(`record of ${bytes.length} bytes is shorter than its header`)
  if (bytes[0] === 0) throw corrupt('record has version 0 (zeroed bytes: never written)')
  if (bytes[0] !== RECORD_VERSION) {
    throw new VolmirrorError('RECORD_VERSION', `record format version ${bytes[0]} is not supported (this build reads ${RECORD_VERSION})`)
  }
  const op = OPS_BY_CODE[bytes[1]!]
  if (!op) throw corrupt(`unknown op code ${bytes[1]}`)
  const n = bytes.readUInt16BE(40)
  const m = bytes.readUInt16BE(42)
  const length = readU64(bytes, 28)
  const payloadLen = op === 'write' ? length : 0
  const end = HEADER_SIZE + n + m + payloadLen
  if (end + CRC_SIZE !== bytes.length) throw corrupt(`record length ${bytes.length} does not match its header (${end + CRC_SIZE})`)
  const want = bytes.readUInt32BE(end)
  const got = crc32(bytes.subarray(0, end))
  if (want !== got) throw corrupt(`record CRC mismatch (stored ${hex(want)}, computed ${hex(got)})`)
  const seq = readU64(bytes, 4)
  return {
    seq,
    ts: readU64(bytes, 12),
    op,
    volume: bytes.toString('utf8', HEADER_SIZE, HEADER_SIZE + n),
    offset: readU64(bytes, 20),
    length,
    mode: bytes.readUInt32BE(36),
    target: bytes.toString('utf8', HEADER_SIZE + n, HEADER_SIZE + n + m),
    data: op === 'write' ? bytes.subarray(HEADER_SIZE + n + m, end) : undefined,
    bytes,
  }
}

/** peekSeq reads the seq of an encoded record without verifying it. */
export function peekSeq (bytes: Buffer): number {
  return readU64(bytes, 4)
}

/** peekSize reads the total encoded size from a record's first HEADER_SIZE bytes (for scanning). */
export function peekSize (header: Buffer): number {
  const op = OPS_BY_CODE[header[1]!]
  const payload = op === 'write' ? readU64(header, 28) : 0
  return HEADER_SIZE + header.readUInt16BE(40) + header.readUInt16BE(42) + payload + CRC_SIZE
}

/** seqKey is the 8-byte big-endian LevelDB key of a seq: keys sort in seq order. */
export function seqKey (seq: number): Buffer {
  const k = Buffer.allocUnsafe(8)
  writeU64(k, 0, seq)
  return k
}

/** keySeq reads a key made by {@link seqKey}. */
export function keySeq (key: Uint8Array): number {
  return readU64(Buffer.from(key.buffer, key.byteOffset, key.byteLength), 0)
}

/** recordEnd is the byte just after a record's range (offset + length), for writes and zeroes. */
export function recordEnd (r: Pick<JournalRecord, 'offset' | 'length'>): number {
  return r.offset + r.length
}

// Seqs, offsets and timestamps stay below 2^53 and are handled as numbers.
function writeU64 (b: Buffer, at: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new VolmirrorError('INVALID_ARGUMENT', `not a valid 64-bit field: ${v}`)
  b.writeUInt32BE(Math.floor(v / 0x100000000), at)
  b.writeUInt32BE(v >>> 0, at + 4)
}

function readU64 (b: Buffer, at: number): number {
  const hi = b.readUInt32BE(at)
  if (hi > 0x1fffff) throw corrupt(`64-bit field at ${at} exceeds 2^53`)
  return hi * 0x100000000 + b.readUInt32BE(at + 4)
}

function corrupt (msg: string): VolmirrorError {
  return new VolmirrorError('RECORD_CORRUPT', msg)
}

function hex (n: number): string {
  return n.toString(16).padStart(8, '0')
}
