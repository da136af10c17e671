/**
 * The sync-mode gate (lib/primary/sync-gate.ts): fsyncs wait until every DR
 * in sync holds their seq, share the DRs' confirmations, and the fallback
 * applies after the timeout: async lets writers go on (and takes the DR
 * back once it caught up), block keeps them waiting.
 */
import assert from 'node:assert/strict'
import { SyncGate } from '../../lib/primary/sync-gate.js'
import { captureLog } from '../helpers/primary.js'
import { waitFor } from '../helpers/wait.js'

function gate (fallback: 'async' | 'block', timeoutMs: number, last: { seq: number }): { g: SyncGate, events: ReturnType<typeof captureLog>['events'] } {
  const { log, events } = captureLog()
  return { g: new SyncGate({ fallback, timeoutMs }, log, () => last.seq), events }
}

/** settled tells whether a promise has settled (after the current microtasks). */
async function settled (p: Promise<unknown>): Promise<boolean> {
  let done = false
  p.then(() => { done = true }, () => { done = true })
  await new Promise(resolve => setImmediate(resolve))
  return done
}

describe('sync gate (unit)', () => {
  it('lets fsyncs through at once without DRs, and says nobody protects them', async () => {
    const { g } = gate('block', 1000, { seq: 10 })
    await g.wait(10)
    assert.equal(g.status().state, 'no-dr')
  })

  it('holds an fsync until every DR stored its seq; one confirmation releases all it covers', async () => {
    const last = { seq: 0 }
    const { g } = gate('block', 60_000, last)
    g.register('a', 0)
    g.register('b', 0)
    last.seq = 7
    const w5 = g.wait(5)
    const w7 = g.wait(7)
    assert.equal(g.wanted, true)
    g.stored('a', 7)
    assert.equal(await settled(w5), false, 'b has not confirmed')
    g.stored('b', 6)
    assert.equal(await settled(w5), true)
    assert.equal(await settled(w7), false)
    g.stored('b', 7)
    assert.equal(await settled(w7), true)
    assert.equal(g.wanted, false)
    const s = g.status()
    assert.equal(s.released, 2)
    assert.equal(s.state, 'in-sync')
    g.close()
  })

  it('async fallback: after the timeout the silent DR drops out, writers go on, and it is back once it stored what it was offered', async () => {
    const last = { seq: 3 }
    const { g, events } = gate('async', 50, last)
    g.register('a', 3)
    const t0 = performance.now()
    await g.wait(4)
    const waited = performance.now() - t0
    assert.ok(waited >= 45 && waited < 1000, `waited ${waited} ms`)
    assert.equal(g.status().state, 'degraded')
    assert.equal(g.status().degradations, 1)
    assert.ok(events.some(e => e.event === 'sync.degraded' && e.level === 'error'))
    last.seq = 9
    await g.wait(9) // no waiting for a DR out of sync
    g.offered('a', 8)
    g.stored('a', 7)
    assert.equal(g.status().state, 'degraded', 'not yet: it has not stored what it was sent')
    g.stored('a', 8)
    assert.equal(g.status().state, 'in-sync')
    assert.ok(events.some(e => e.event === 'sync.resumed'))
    const w = g.wait(9)
    assert.equal(await settled(w), false, 'in sync again: fsyncs wait for it')
    g.stored('a', 9)
    await w
    g.close()
  })

  it('block fallback: writers wait past the timeout (state blocked) until the DR confirms', async () => {
    const { g, events } = gate('block', 30, { seq: 5 })
    g.register('a', 1)
    const w = g.wait(5)
    await waitFor('blocked', () => g.status().state === 'blocked', 2000, 5)
    assert.equal(await settled(w), false)
    assert.equal(g.status().degradations, 0)
    assert.ok(events.some(e => e.event === 'sync.blocked'))
    g.stored('a', 5)
    await w
    assert.equal(g.status().state, 'in-sync')
    g.close()
  })

  it('forgetting a DR releases what waited for it; closing fails the waiters', async () => {
    const { g } = gate('block', 60_000, { seq: 5 })
    g.register('a', 0)
    const w = g.wait(5)
    g.forget('a')
    await w
    g.register('b', 0)
    const w2 = g.wait(5)
    g.close()
    await assert.rejects(w2, (e: { code?: string }) => e.code === 'CLOSED')
  })
})
