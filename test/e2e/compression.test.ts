/**
 * Compression on the wire (primary and DR processes, the DR through a TCP
 * proxy that counts what crosses):
 *
 *   - with --compress zstd, a DR's initial sync (region bodies) and its
 *     replication (group frames) of text take far fewer bytes on the link
 *     than the data, and the copy is byte-equal; random data costs nothing
 *     extra; status and metrics say both figures;
 *   - auto asks only once the primary is a round trip of 5 ms or more away;
 *   - a primary started with --compress none sends plain bytes to a DR
 *     that asks.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { fsop } from '../helpers/fsop.js'
import { cmpFiles, drOf, freePort, inSync, MiB, primaryOf } from '../helpers/mirror.js'
import { startPair } from '../helpers/pair.js'
import { startProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../helpers/wait.js'

/** text makes `n` bytes of log-like text. */
function text (n: number, seed: number): Buffer {
  const words = ['volume', 'region', 'journal', 'replica', 'primary', 'the', 'a', 'of', 'write', 'read', 'seq', 'group', 'lag', 'consistent']
  let x = seed
  const parts: string[] = []
  let len = 0
  while (len < n) {
    x = (x * 1103515245 + 12345) % 2 ** 31
    const w = words[x % words.length] + (x % 13 === 0 ? '\n' : ' ')
    parts.push(w)
    len += w.length
  }
  return Buffer.from(parts.join('').slice(0, n))
}

describe('compression: zstd on the wire (processes, through a proxy)', function () {
  this.timeout(3 * 60_000)

  it('--compress zstd: text crosses in a fraction of its size, random data at its size, and the copy is byte-equal', async () => {
    const port = await freePort()
    const proxy = await startProxy(`127.0.0.1:${port}`)
    const pair = await startPair({
      images: { 'text.raw': text(16 * MiB, 1), 'random.raw': randomBytes(8 * MiB) },
      primaryArgs: ['--listen', `127.0.0.1:${port}`],
      drArgs: ['--primary', proxy.url, '--compress', 'zstd'],
    })
    await pair.consistent()
    const synced = proxy.snapshot()
    const d0 = await drOf(pair.dirs.drState)
    assert.equal(d0.wire?.asking, true)
    const raw0 = d0.wire!.regions.raw
    assert.ok(raw0 >= 24 * MiB, `the DR fetched the regions (${raw0} bytes)`)
    assert.ok(synced.fromTarget < 8 * MiB + 16 * MiB / 2, `initial sync: ${synced.fromTarget} bytes crossed for 24 MiB of data (8 MiB random)`)
    assert.ok(d0.wire!.regions.wire < raw0 / 1.4, `region bodies: ${d0.wire!.regions.wire} on the wire for ${raw0}`)

    // Replication of text writes: group frames are compressed too.
    for (let i = 0; i < 8; i++) {
      await fsop({ op: 'write', path: path.join(pair.dirs.mnt, 'text.raw'), offset: i * MiB, data: text(MiB, 100 + i).toString('base64') })
    }
    await fsop({ op: 'write', path: path.join(pair.dirs.mnt, 'random.raw'), offset: 0, data: randomBytes(2 * MiB).toString('base64') })
    const { d } = await inSync(pair.dirs.state, pair.dirs.drState)
    const g = d.wire!.groups
    assert.ok(g.raw >= 10 * MiB, `group frames carried the writes (${g.raw} bytes)`)
    assert.ok(g.wire < g.raw * 0.6, `group frames: ${g.wire} on the wire for ${g.raw} of data`)
    const p = await primaryOf(pair.dirs.state)
    assert.equal(p.wire?.direction, 'sent')
    assert.equal(p.wire?.groups.wire, g.wire, 'what the primary sent is what the DR received')
    for (const f of ['text.raw', 'random.raw']) await cmpFiles(path.join(pair.dirs.images, f), path.join(pair.dirs.drImages, f))
    console.log(`      initial sync: ${(synced.fromTarget / MiB).toFixed(1)} MiB crossed for ${(raw0 / MiB).toFixed(1)} MiB; groups: ${(g.wire / MiB).toFixed(1)} MiB for ${(g.raw / MiB).toFixed(1)} MiB`)
  })

  it('auto asks once the primary is 5 ms or more away; a primary with --compress none sends plain bytes anyway', async () => {
    const port = await freePort()
    const proxy = await startProxy(`127.0.0.1:${port}`)
    const pair = await startPair({
      images: { 'text.raw': text(4 * MiB, 2) },
      primaryArgs: ['--listen', `127.0.0.1:${port}`, '--compress', 'none'],
      drArgs: ['--primary', proxy.url],
    })
    await pair.consistent()
    // Auto decides on the quickest of 4 round trips (one every 2 s).
    const near = await waitFor('the DR to measure its round trip 4 times', async () => { const d = await drOf(pair.dirs.drState); return (d.wire?.rttSamples ?? 0) >= 4 ? d : undefined }, 30_000, 200)
    assert.equal(near.wire?.compress, 'auto')
    assert.equal(near.wire?.asking, false, `loopback (${near.wire?.rttMs} ms): no compression asked`)
    proxy.shape({ rttMs: 10 })
    await waitFor('the DR to measure the longer round trip and ask', async () => (await drOf(pair.dirs.drState)).wire?.asking === true, 20_000, 100)
    await fsop({ op: 'write', path: path.join(pair.dirs.mnt, 'text.raw'), offset: 0, data: text(2 * MiB, 3).toString('base64') })
    const { d } = await inSync(pair.dirs.state, pair.dirs.drState)
    assert.ok(d.wire!.groups.raw >= 2 * MiB)
    assert.equal(d.wire!.groups.wire, d.wire!.groups.raw, 'the primary said no: plain bytes')
    await cmpFiles(path.join(pair.dirs.images, 'text.raw'), path.join(pair.dirs.drImages, 'text.raw'))
  })
})
