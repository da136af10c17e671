import assert from 'node:assert/strict'
import { GroupCommit } from '../../lib/core/group-commit.js'
import { waitFor } from '../helpers/wait.js'

/** A flush whose completion the test controls. */
function controlledFlush () {
  const calls: Array<{ items: number[], resolve: () => void, reject: (e: Error) => void }> = []
  const flush = (items: number[]): Promise<void> => new Promise((resolve, reject) => { calls.push({ items, resolve, reject }) })
  return { calls, flush }
}

const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

describe('group commit', () => {
  it('flushes the first item at once and batches the ones that arrive meanwhile', async () => {
    const { calls, flush } = controlledFlush()
    const gc = new GroupCommit(flush)
    gc.push(1)
    assert.equal(calls.length, 1)
    assert.deepEqual(calls[0]!.items, [1])
    for (let i = 2; i <= 50; i++) gc.push(i)
    assert.equal(calls.length, 1, 'no second flush while one is in flight')
    calls[0]!.resolve()
    await tick()
    assert.equal(calls.length, 2)
    assert.deepEqual(calls[1]!.items, Array.from({ length: 49 }, (_, i) => i + 2))
    calls[1]!.resolve()
    await gc.flushed()
    assert.deepEqual(gc.counters, { flushes: 2, items: 50, failures: 0 })
  })

  it('respects maxItems and maxBytes', async () => {
    const { calls, flush } = controlledFlush()
    const gc = new GroupCommit(flush, { maxItems: 3, maxBytes: 10, sizeOf: (n: number) => n })
    gc.push(1)
    for (const n of [2, 3, 4, 5, 6]) gc.push(n)
    calls[0]!.resolve(); await tick()
    assert.deepEqual(calls[1]!.items, [2, 3, 4], 'stops at 3 items (9 bytes)')
    calls[1]!.resolve(); await tick()
    assert.deepEqual(calls[2]!.items, [5], '5 + 6 would exceed 10 bytes')
    calls[2]!.resolve(); await tick()
    assert.deepEqual(calls[3]!.items, [6])
    calls[3]!.resolve()
    await gc.flushed()
  })

  it('waits up to delayMs for company, then flushes', async () => {
    const { calls, flush } = controlledFlush()
    const gc = new GroupCommit(flush, { delayMs: 20 })
    gc.push(1)
    gc.push(2)
    assert.equal(calls.length, 0)
    const started = Date.now()
    const done = gc.flushed()
    assert.equal(calls.length, 1, 'flushed() does not wait out the delay')
    calls[0]!.resolve()
    await done
    gc.push(3)
    assert.equal(calls.length, 1, 'item 3 waits for company')
    await waitFor('the delay timer to flush item 3', () => calls.length === 2, 2000, 2)
    assert.deepEqual(calls[1]!.items, [3])
    calls[1]!.resolve()
    await gc.flushed()
    assert.ok(Date.now() - started < 1000)
  })

  it('retries a failed flush with the same items first, and never loses one', async () => {
    const { calls, flush } = controlledFlush()
    const errors: Error[] = []
    const gc = new GroupCommit(flush, { retryMs: 10, onError: e => errors.push(e) })
    gc.push(1)
    gc.push(2)
    let flushedResolved = false
    const done = gc.flushed().then(() => { flushedResolved = true })
    calls[0]!.reject(new Error('disk full'))
    await tick()
    assert.equal(errors.length, 1)
    assert.equal(gc.lastError?.message, 'disk full')
    gc.push(3)
    assert.equal(calls.length, 1, 'no flush before the retry delay')
    await waitFor('the retry', () => calls.length === 2, 2000, 2)
    assert.deepEqual(calls[1]!.items, [1, 2, 3])
    assert.equal(flushedResolved, false)
    calls[1]!.resolve()
    await done
    assert.equal(gc.lastError, undefined)
    assert.equal(gc.pending, 0)
  })
})
