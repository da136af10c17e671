import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { acceptsZstd, compressBody, CompressionPolicy, decompressInto, isZstd, parseCompressMode, ZstdDecoder, ZstdEncoder } from '../../lib/http/compression.js'
import { isVolmirrorError } from '../../lib/errors.js'

/** text makes `n` bytes of something like log files: words and newlines. */
function text (n: number, seed = 1): Buffer {
  const words = ['volume', 'region', 'journal', 'replica', 'primary', 'the', 'a', 'of', 'write', 'read', 'seq', 'group', 'lag']
  let x = seed
  let s = ''
  while (s.length < n) {
    x = (x * 1103515245 + 12345) % 2 ** 31
    s += words[x % words.length] + (x % 11 === 0 ? '\n' : ' ')
  }
  return Buffer.from(s.slice(0, n))
}

/** decodeInPieces feeds `wire` to a decoder `piece` bytes at a time, as a socket would. */
function decodeInPieces (wire: Buffer, piece: number): Buffer {
  const d = new ZstdDecoder('test', 4096)
  const out: Buffer[] = []
  for (let i = 0; i < wire.length; i += piece) d.push(wire.subarray(i, i + piece), p => out.push(p))
  d.finish()
  return Buffer.concat(out)
}

describe('compression: zstd on the wire', () => {
  it('a body encoded chunk by chunk decodes to the same bytes, however the wire splits it', () => {
    const chunks = [text(128 * 1024), randomBytes(300 * 1024), text(5), Buffer.alloc(0), text(700 * 1024, 7)]
    const e = new ZstdEncoder()
    const wire = Buffer.concat([...chunks.map(c => e.write(c)), e.end()])
    const raw = Buffer.concat(chunks)
    for (const piece of [1, 7, 4096, 65536, wire.length]) assert.ok(decodeInPieces(wire, piece).equals(raw), `pieces of ${piece}`)
  })

  it('each chunk is decodable as soon as it arrived (flushed): a reader\'s first piece does not wait for the rest', () => {
    const e = new ZstdEncoder()
    const first = text(4096)
    const w1 = e.write(first)
    const d = new ZstdDecoder('test')
    const got: Buffer[] = []
    d.push(w1, p => got.push(p))
    assert.ok(Buffer.concat(got).equals(first))
    assert.throws(() => d.finish(), /ended mid-frame/)
  })

  it('text shrinks; random bytes cost a few bytes per chunk at most', () => {
    const t = text(1 << 20)
    assert.ok(compressBody([t]).length < t.length / 3)
    const r = randomBytes(1 << 20)
    assert.ok(compressBody([r]).length < r.length + 256)
  })

  it('rejects corrupt, truncated and oversized bodies with PEER_PROTOCOL', () => {
    const wire = compressBody([text(100_000)])
    const code = (fn: () => unknown): string | undefined => { try { fn() } catch (err) { return isVolmirrorError(err) ? err.code : 'other' } }
    assert.equal(code(() => decompressInto(wire.subarray(0, wire.length - 10), Buffer.alloc(200_000), 'x')), 'PEER_PROTOCOL')
    const bad = Buffer.from(wire)
    bad[0] = bad[0]! ^ 0xff
    assert.equal(code(() => decompressInto(bad, Buffer.alloc(200_000), 'x')), 'PEER_PROTOCOL')
    assert.equal(code(() => decompressInto(wire, Buffer.alloc(50_000), 'x')), 'PEER_PROTOCOL')
    assert.equal(code(() => decompressInto(Buffer.concat([wire, Buffer.from('junk')]), Buffer.alloc(200_000), 'x')), 'PEER_PROTOCOL')
    assert.equal(decompressInto(wire, Buffer.alloc(200_000), 'x'), 100_000)
  })

  it('reads Accept-Encoding and Content-Encoding as HTTP says', () => {
    assert.equal(acceptsZstd('zstd'), true)
    assert.equal(acceptsZstd('gzip, zstd;q=0.5'), true)
    assert.equal(acceptsZstd('zstd;q=0'), false)
    assert.equal(acceptsZstd('gzip, br'), false)
    assert.equal(acceptsZstd(undefined), false)
    assert.equal(isZstd(undefined, 'x'), false)
    assert.equal(isZstd('identity', 'x'), false)
    assert.equal(isZstd('zstd', 'x'), true)
    assert.throws(() => isZstd('gzip', 'x'), /unexpected Content-Encoding gzip/)
  })

  it('--compress takes auto, zstd or none, and says why not lz4', () => {
    assert.equal(parseCompressMode('none'), 'none')
    assert.throws(() => parseCompressMode('lz4'), /not offered.*zstd/)
    assert.throws(() => parseCompressMode('fast'), /must be one of auto, zstd, none/)
  })

  it('the primary\'s auto policy stops compressing data that does not shrink, and tries again later', () => {
    const p = new CompressionPolicy('auto')
    assert.equal(p.wants(undefined), false, 'only when asked')
    assert.equal(p.wants('zstd'), true)
    // 16 MiB that did not shrink: plain for the next 256 MiB.
    for (let i = 0; i < 16; i++) p.sent('regions', 1 << 20, (1 << 20) + 20, true)
    assert.equal(p.wants('zstd'), false)
    for (let i = 0; i < 255; i++) p.sent('regions', 1 << 20, 1 << 20, false)
    assert.equal(p.wants('zstd'), false)
    p.sent('regions', 1 << 20, 1 << 20, false)
    assert.equal(p.wants('zstd'), true)
    // Data that shrinks keeps it on.
    for (let i = 0; i < 32; i++) p.sent('groups', 1 << 20, 1 << 18, true)
    assert.equal(p.wants('zstd'), true)
    assert.deepEqual(p.counters.groups, { raw: 32 << 20, wire: 32 << 18 })
    assert.equal(new CompressionPolicy('none').wants('zstd'), false)
    const always = new CompressionPolicy('zstd')
    for (let i = 0; i < 32; i++) always.sent('regions', 1 << 20, 1 << 20, true)
    assert.equal(always.wants('zstd'), true)
  })
})
