/**
 * Read-ahead of a DR mount (lib/dr/read-ahead.ts) against a fetcher whose
 * fetches the test completes by hand: the window starts small, grows while
 * the reader keeps coming, slides with the reader's position (which the
 * native side reports without JavaScript seeing the reads), never runs
 * more than `count` regions past it, and starts over when the reader goes
 * back.
 */
import assert from 'node:assert/strict'
import { ReadAhead } from '../../lib/dr/read-ahead.js'

const RS = 1024

/** FakeFetcher records prefetches; `finish(r)` completes the fetch of region r. */
class FakeFetcher {
  readonly asked: number[] = []
  private readonly pending = new Map<number, () => void>()
  constructor (private readonly count: number) {}
  prefetchOne (_volume: number, region: number): Promise<void> | undefined {
    if (this.asked.includes(region)) return undefined
    this.asked.push(region)
    return new Promise<void>(resolve => { this.pending.set(region, resolve) })
  }

  regions (): number { return this.count }
  async finish (region: number): Promise<void> {
    this.pending.get(region)?.()
    this.pending.delete(region)
    await new Promise(resolve => setImmediate(resolve))
  }
}

describe('read-ahead: regions fetched ahead of a sequential reader', () => {
  it('starts two regions deep and grows to count as the reader moves into it', async () => {
    const f = new FakeFetcher(1000)
    const ra = new ReadAhead(f, RS, 16)
    let pos = 10 * RS
    ra.follow(1, 7, 10, () => pos)
    assert.deepEqual(f.asked, [11, 12])
    // The reader reads region 11 natively (JavaScript does not see it): the window slides, same size.
    pos = 11 * RS + 100
    await f.finish(11)
    assert.deepEqual(f.asked, [11, 12, 13])
    // A whole window (2 regions) read since it began: it doubles.
    pos = 12 * RS
    await f.finish(12)
    assert.deepEqual(f.asked, [11, 12, 13, 14, 15, 16])
    pos = 16 * RS
    await f.finish(13)
    assert.equal(Math.max(...f.asked), 16 + 8)
    pos = 24 * RS
    await f.finish(14)
    assert.equal(Math.max(...f.asked), 24 + 16, 'the window reaches count and no further')
    pos = 30 * RS
    await f.finish(15)
    assert.equal(Math.max(...f.asked), 30 + 16, 'and slides with the reader')
    await f.finish(16)
    assert.equal(Math.max(...f.asked), 30 + 16, 'a reader that does not move does not move the window')
  })

  it('starts over when the reader goes back, and stops at the end of the volume', async () => {
    const f = new FakeFetcher(40)
    const ra = new ReadAhead(f, RS, 16)
    let pos = 30 * RS
    ra.follow(1, 7, 30, () => pos)
    pos = 32 * RS
    await f.finish(31)
    pos = 36 * RS
    await f.finish(32)
    assert.equal(Math.max(...f.asked), 39, 'never past the last region')
    pos = 2 * RS
    ra.follow(1, 7, 2, () => pos)
    assert.ok(f.asked.includes(3) && f.asked.includes(4), 'a new window after going back')
  })

  it('stops when the reader jumps elsewhere (no fetching of everything in between)', async () => {
    const f = new FakeFetcher(1000)
    const ra = new ReadAhead(f, RS, 16)
    let pos = 10 * RS
    ra.follow(1, 7, 10, () => pos)
    pos = 500 * RS
    await f.finish(11)
    assert.deepEqual(f.asked, [11, 12], 'nothing between 12 and 500')
    pos = 12 * RS
    await f.finish(12)
    assert.deepEqual(f.asked, [11, 12], 'the window was dropped')
  })

  it('keeps one window per reader, and none once the reader closes its file', async () => {
    const f = new FakeFetcher(1000)
    const ra = new ReadAhead(f, RS, 4)
    ra.follow(1, 7, 100, () => 100 * RS)
    ra.follow(2, 7, 500, () => 500 * RS)
    assert.deepEqual(f.asked, [101, 102, 501, 502])
    ra.forget(1)
    await f.finish(101)
    assert.deepEqual(f.asked, [101, 102, 501, 502], 'a forgotten window does not grow')
  })

  it('does nothing with count 0', () => {
    const f = new FakeFetcher(1000)
    new ReadAhead(f, RS, 0).follow(1, 7, 1, () => RS)
    assert.deepEqual(f.asked, [])
  })
})
