/**
 * The lag a DR shows is an upper bound of what a failover would lose
 * (primary and DR processes, the DR through a TCP proxy):
 *
 *   - a DR that has not heard from its primary says "unknown", not 0;
 *   - an idle DR hears the primary's heartbeat: its bound stays small and
 *     above zero, and its last contact keeps moving;
 *   - while the link is stalled and the primary keeps writing, the bound
 *     grows with the silence (never below it), and falls back once the
 *     DR has caught up.
 */
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { startLoopWriter } from '../helpers/loop-writer.js'
import { drOf, freePort, inSync, MiB } from '../helpers/mirror.js'
import { startPair } from '../helpers/pair.js'
import { pattern } from '../helpers/pattern.js'
import { cli, startNode } from '../helpers/proc.js'
import { startProxy } from '../helpers/tcp-proxy.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

describe('lag: an upper bound of what a failover would lose (processes)', function () {
  this.timeout(3 * 60_000)

  it('a DR that has not heard from its primary says unknown', async () => {
    const root = await tmpDir('lag')
    const d = { images: path.join(root, 'images'), state: path.join(root, 'state'), mnt: path.join(root, 'mnt') }
    await mkdir(d.mnt, { recursive: true })
    const token = path.join(root, 'token')
    await (await import('node:fs/promises')).writeFile(token, 'x'.repeat(43), { mode: 0o600 })
    const port = await freePort() // nothing listens there
    await startNode(['dr', '--images', d.images, '--state', d.state, '--mount', d.mnt, '--primary', `http://127.0.0.1:${port}`,
      '--token-file', token, '--region-size', '1M'], { state: d.state, mount: d.mnt })
    const s = await drOf(d.state)
    assert.equal(s.lag.seconds, null)
    assert.equal(s.seq.primaryLast, null)
    const text = await cli(['status', '--state', d.state])
    assert.match(text.stdout, /lag +unknown \(no word from the primary since this DR started\)/)
    assert.match(text.stdout, /primary last unknown/)
  })

  it('an idle DR hears the heartbeat; a stalled link makes the bound grow with the silence, and it falls back once caught up', async () => {
    const port = await freePort()
    const proxy = await startProxy(`127.0.0.1:${port}`)
    const pair = await startPair({ images: { 'vm1.raw': pattern(1, 8 * MiB) }, primaryArgs: ['--listen', `127.0.0.1:${port}`], drArgs: ['--primary', proxy.url] })
    await inSync(pair.dirs.state, pair.dirs.drState)
    // Idle: the bound is the silence since the last heartbeat, small but not zero.
    const contacts = new Set<number>()
    for (let i = 0; i < 10; i++) {
      const s = await drOf(pair.dirs.drState)
      assert.ok(s.lag.seconds !== null && s.lag.seconds >= 0 && s.lag.seconds < 1.5, `idle bound: ${s.lag.seconds}`)
      contacts.add(s.lag.lastContact)
      await new Promise(resolve => setTimeout(resolve, 100)) // sampling pace, not synchronisation
    }
    assert.ok(contacts.size >= 3, `the primary's heartbeat keeps the contact fresh while idle (${contacts.size} distinct contacts in 1 s)`)
    // Stalled while the primary writes: the bound grows at least as fast as the wall clock.
    const w = await startLoopWriter(pair.dirs.root, 'w', { file: path.join(pair.dirs.mnt, 'vm1.raw'), offset: 0, length: 4096, slots: 1000, seed: 3, group: 2 })
    await w.waitAcks(20, 30_000)
    proxy.stall()
    const stalledAt = Date.now()
    await w.waitAcks(200, 30_000)
    const grown = await waitFor('the bound to grow past 2 s', async () => { const s = await drOf(pair.dirs.drState); return (s.lag.seconds ?? 0) > 2 ? s : undefined }, 20_000, 100)
    assert.ok(grown.lag.seconds! * 1000 >= Date.now() - stalledAt - 1000, `never below the silence: ${grown.lag.seconds} s after ${(Date.now() - stalledAt) / 1000} s`)
    await w.stop()
    proxy.restore()
    await inSync(pair.dirs.state, pair.dirs.drState)
    const back = await waitFor('the bound to fall back', async () => { const s = await drOf(pair.dirs.drState); return (s.lag.seconds ?? 9) < 1 ? s : undefined }, 20_000, 100)
    console.log(`      idle bound < 1.5 s with ${contacts.size} heartbeats a second; stalled: ${grown.lag.seconds!.toFixed(1)} s; caught up: ${back.lag.seconds!.toFixed(2)} s`)
  })
})
