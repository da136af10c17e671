import assert from 'node:assert/strict'
import { FlightWindow } from '../../lib/core/flight-window.js'

const MiB = 2 ** 20

/**
 * simulate keeps `window.window` fetches of 1 MiB in flight over a link of
 * `bytesPerMs` that adds `rttMs` (served one after another, as a link
 * serialises them) for `ms` of simulated time; returns the bytes delivered
 * in the last second and the largest window used.
 */
function simulate (w: FlightWindow, bytesPerMs: number, rttMs: number, ms: number): { lastSecondBytes: number, maxWindow: number } {
  let now = 0
  let linkFree = 0
  const flights: Array<{ start: number, done: number }> = []
  let maxWindow = 0
  let lastSecondBytes = 0
  while (now < ms) {
    while (flights.length < w.window) {
      w.started(now)
      // The request reaches the primary after half the RTT; its bytes go out when the link is free.
      const sendAt = Math.max(now + rttMs / 2, linkFree)
      linkFree = sendAt + MiB / bytesPerMs
      flights.push({ start: now, done: linkFree + rttMs / 2 })
    }
    maxWindow = Math.max(maxWindow, w.window)
    flights.sort((a, b) => a.done - b.done)
    const f = flights.shift()!
    now = f.done
    w.completed(MiB, f.start, now)
    if (now > ms - 1000) lastSecondBytes += MiB
  }
  return { lastSecondBytes, maxWindow }
}

describe('flight window: fetches in flight sized to the bandwidth-delay product', () => {
  it('starts at the minimum', () => {
    assert.equal(new FlightWindow({ min: 16, max: 128, unit: MiB }).window, 16)
  })

  for (const rtt of [20, 80, 200]) {
    it(`fills a 1 Gbit/s link at ${rtt} ms RTT`, () => {
      const w = new FlightWindow({ min: 16, max: 256, unit: MiB })
      const bw = 125e6 / 1000
      const r = simulate(w, bw, rtt, 20_000)
      assert.ok(r.lastSecondBytes >= 0.9 * bw * 1000, `delivered ${(r.lastSecondBytes / 1e6).toFixed(1)} MB in the last second, link 125 MB/s`)
      if (rtt >= 200) {
        const fixed = simulate(new FlightWindow({ min: 16, max: 16, unit: MiB }), bw, rtt, 20_000)
        assert.ok(fixed.lastSecondBytes < 0.7 * bw * 1000, `a fixed window of 16 delivers ${(fixed.lastSecondBytes / 1e6).toFixed(1)} MB/s`)
      }
      const bdp = bw * rtt / MiB
      assert.ok(w.window <= Math.max(16, 3 * (bdp + 1)) + 1, `window ${w.window} regions for a BDP of ${bdp.toFixed(1)}`)
    })
  }

  it('stays at the minimum on a short fast link, and never passes the maximum', () => {
    const near = new FlightWindow({ min: 16, max: 128, unit: MiB })
    simulate(near, 1e9 / 1000, 0.2, 5_000)
    assert.equal(near.window, 16)
    const far = new FlightWindow({ min: 4, max: 32, unit: MiB })
    const r = simulate(far, 10e9 / 8 / 1000, 200, 20_000)
    assert.equal(r.maxWindow, 32)
  })

  it('shrinks again when the link gets slower', () => {
    const w = new FlightWindow({ min: 4, max: 256, unit: MiB, baseTtlMs: 2_000 })
    simulate(w, 125e6 / 1000, 80, 20_000)
    const fast = w.window
    simulate(w, 12.5e6 / 1000, 80, 30_000)
    assert.ok(w.window < fast / 2, `window ${fast} -> ${w.window} after the link went from 1 Gbit/s to 100 Mbit/s`)
  })

  it('rejects nonsense bounds', () => {
    assert.throws(() => new FlightWindow({ min: 0, max: 4, unit: MiB }), RangeError)
    assert.throws(() => new FlightWindow({ min: 8, max: 4, unit: MiB }), RangeError)
  })
})
