/**
 * A slowloris flood against the primary's peer port (primary and DR
 * processes): 1,500 unauthenticated connections that each send half a
 * request and hold it. Replication goes on (the DR applies what is written
 * meanwhile and ends byte-equal), an authenticated request is answered
 * promptly, `status` answers, and the flood's connections are closed
 * within their budget instead of holding slots.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import path from 'node:path'
import { readFile } from 'node:fs/promises'
import { defer } from '../helpers/cleanup.js'
import { startLoopWriter } from '../helpers/loop-writer.js'
import { cmpFiles, inSync, MiB } from '../helpers/mirror.js'
import { startPair } from '../helpers/pair.js'
import { pattern } from '../helpers/pattern.js'
import { cli } from '../helpers/proc.js'
import { waitFor } from '../helpers/wait.js'

const FLOOD = 1500

describe('slowloris: unauthenticated connections cannot lock out the peers (processes)', function () {
  this.timeout(3 * 60_000)

  it('replication, authenticated requests and status go on through a flood of half-sent requests; the flood is closed within its budget', async () => {
    const pair = await startPair({ images: { 'vm.raw': pattern(1, 16 * MiB) } })
    await pair.consistent()
    const { port } = new URL(pair.url)
    const token = (await readFile(path.join(pair.dirs.state, 'token'), 'utf8')).trim()

    // The flood: connect, send half a request, hold.
    const sockets: net.Socket[] = []
    let closedByServer = 0
    defer(() => { for (const s of sockets) s.destroy() })
    await Promise.all(Array.from({ length: FLOOD }, () => new Promise<void>(resolve => {
      const s = net.connect(Number(port), '127.0.0.1', () => { s.write('GET /v1/info HTTP/1.1\r\nHost: primary\r\nX-Slow: '); resolve() })
      s.on('error', () => resolve())
      s.on('close', () => { closedByServer++; resolve() })
      sockets.push(s)
    })))
    const floodAt = Date.now()

    const w = await startLoopWriter(pair.dirs.root, 'w', { file: path.join(pair.dirs.mnt, 'vm.raw'), offset: 0, length: 16 * 1024, slots: 512, seed: 9, group: 4 })
    await w.waitAcks(100, 60_000)

    // An authenticated request from a new connection is answered at once.
    const t0 = Date.now()
    const res = await fetch(`${pair.url}/v1/info`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) })
    const infoMs = Date.now() - t0
    assert.equal(res.status, 200)
    assert.ok(infoMs < 2000, `GET /v1/info answered in ${infoMs} ms during the flood`)
    const st = await cli(['status', '--state', pair.dirs.state])
    assert.equal(st.code, 0, st.stderr)

    await w.stop()
    await inSync(pair.dirs.state, pair.dirs.drState, 60_000)
    await cmpFiles(path.join(pair.dirs.images, 'vm.raw'), path.join(pair.dirs.drImages, 'vm.raw'))

    // Every flood connection is closed: beyond the limits at once, the rest at the end of their budget (5 s).
    await waitFor('the flood to be closed by the server', () => closedByServer >= FLOOD, 15_000, 100)
    const s = Date.now() - floodAt
    console.log(`      ${FLOOD} half-sent requests: GET /v1/info in ${infoMs} ms, DR in sync and byte-equal, all closed by the server after ${(s / 1000).toFixed(1)} s`)
  })
})
