/**
 * Metrics and the operator's JSON routes on a real pair (processes, mounts,
 * HTTP on 127.0.0.1): `/metrics` parses as Prometheus text (a parser from
 * npm), the expected families are there, values move as writes and fetches
 * happen, and nothing is served without the peer token.
 */
import assert from 'node:assert/strict'
import path from 'node:path'
import { decodeRegionPicture, type RegionPicture } from '../../lib/core/region-picture.js'
import { fsop } from '../helpers/fsop.js'
import { curl, makeTestCa } from '../helpers/http.js'
import { cli } from '../helpers/proc.js'
import { freePort, get, pairToken, scrape } from '../helpers/observe.js'
import { startPair } from '../helpers/pair.js'
import { pattern } from '../helpers/pattern.js'
import { waitFor } from '../helpers/wait.js'

const MiB = 1 << 20

describe('metrics', function () {
  this.timeout(120_000)

  it('exports the primary\'s and the DR\'s metrics, which move as writes are replicated', async () => {
    const port = await freePort()
    const pair = await startPair({ images: { 'vm1.raw': pattern(1, 8 * MiB) }, drArgs: ['--listen', `127.0.0.1:${port}`] })
    const token = await pairToken(pair.dirs.state)
    const drUrl = `http://127.0.0.1:${port}`
    await pair.consistent()

    const p1 = await scrape(pair.url, token)
    for (const [name, type] of [
      ['volmirror_role', 'GAUGE'], ['volmirror_epoch', 'GAUGE'], ['volmirror_seq_last', 'GAUGE'], ['volmirror_seq_applied', 'GAUGE'],
      ['volmirror_journal_bytes', 'GAUGE'], ['volmirror_journal_records', 'GAUGE'], ['volmirror_journal_indexed_records_total', 'COUNTER'],
      ['volmirror_drs', 'GAUGE'], ['volmirror_dr_lag_seq', 'GAUGE'], ['volmirror_dr_dirty_bytes', 'GAUGE'], ['volmirror_dr_mode', 'GAUGE'],
      ['volmirror_errors_total', 'COUNTER'], ['volmirror_volume_size_bytes', 'GAUGE'],
    ] as const) {
      assert.equal(p1.family(name).type, type, name)
      assert.ok(p1.family(name).help.length > 10, `${name} has help text`)
    }
    for (const name of p1.families.keys()) assert.match(name, /^volmirror_/)
    assert.equal(p1.value('volmirror_role', { role: 'primary' }), 1)
    assert.equal(p1.value('volmirror_role', { role: 'dr' }), 0)
    assert.equal(p1.value('volmirror_drs'), 1)
    const drId = (await pair.drStatus()).nodeId
    assert.equal(p1.value('volmirror_dr_mode', { dr: drId, mode: 'journaling' }), 1)
    assert.equal(p1.value('volmirror_dr_dirty_bytes', { dr: drId }), 0)
    assert.equal(p1.value('volmirror_volume_size_bytes', { volume: 'vm1.raw' }), 8 * MiB)

    const d1 = await scrape(drUrl, token)
    for (const [name, type] of [
      ['volmirror_role', 'GAUGE'], ['volmirror_seq_applied', 'GAUGE'], ['volmirror_lag_seconds', 'GAUGE'], ['volmirror_lag_seq', 'GAUGE'],
      ['volmirror_groups_applied_total', 'COUNTER'], ['volmirror_records_received_total', 'COUNTER'], ['volmirror_bytes_received_total', 'COUNTER'],
      ['volmirror_regions', 'GAUGE'], ['volmirror_fetched_bytes_total', 'COUNTER'], ['volmirror_fetch_duration_seconds', 'HISTOGRAM'],
      ['volmirror_errors_total', 'COUNTER'], ['volmirror_consistent', 'GAUGE'],
    ] as const) assert.equal(d1.family(name).type, type, name)
    assert.equal(d1.value('volmirror_role', { role: 'dr' }), 1)
    assert.equal(d1.value('volmirror_consistent'), 1)
    assert.equal(d1.value('volmirror_regions', { volume: 'vm1.raw', state: 'present' }), 8)
    assert.equal(d1.value('volmirror_regions', { volume: 'vm1.raw', state: 'absent' }), 0)
    // The whole volume came by hydration, region by region.
    assert.equal(d1.value('volmirror_fetched_bytes_total', { cause: 'hydration' }), 8 * MiB)
    assert.equal(d1.value('volmirror_fetched_bytes_total', { cause: 'on_demand' }), 0)
    assert.equal(d1.value('volmirror_sync_fetched_bytes_total', { reason: 'initial_sync' }), 8 * MiB, 'the initial sync\'s cost')
    assert.equal(d1.value('volmirror_sync_fetched_bytes_total', { reason: 'failback' }), 0)
    assert.equal(d1.histogramCount('volmirror_fetch_duration_seconds'), 8)

    // Writes through the primary's mount (a child process: the test hosts no mount).
    await fsop({ op: 'write', path: path.join(pair.dirs.mnt, 'vm1.raw'), offset: 3 * MiB + 100, seed: 7, length: MiB, fsync: true })
    await fsop({ op: 'write', path: path.join(pair.dirs.mnt, 'vm1.raw'), offset: 100, seed: 8, length: 4096, fsync: true })
    await pair.caughtUp()

    const p2 = await scrape(pair.url, token)
    assert.ok(p2.value('volmirror_seq_last') >= p1.value('volmirror_seq_last') + 2)
    assert.ok(p2.value('volmirror_journal_indexed_records_total') >= p1.value('volmirror_journal_indexed_records_total') + 2)
    const d2 = await scrape(drUrl, token)
    assert.ok(d2.value('volmirror_seq_applied') >= d1.value('volmirror_seq_applied') + 2)
    assert.equal(d2.value('volmirror_seq_applied'), p2.value('volmirror_seq_last'))
    assert.ok(d2.value('volmirror_records_received_total') >= d1.value('volmirror_records_received_total') + 2)
    assert.ok(d2.value('volmirror_bytes_received_total') >= d1.value('volmirror_bytes_received_total') + MiB + 4096)
    assert.ok(d2.value('volmirror_groups_applied_total') > d1.value('volmirror_groups_applied_total'))
    assert.equal(d2.value('volmirror_lag_seq'), 0)

    // Nothing without the token, on either node; the page explains how to open it.
    for (const base of [pair.url, drUrl]) {
      for (const route of ['/metrics', '/v1/status', '/v1/regionmap?volume=vm1.raw']) {
        assert.equal((await get(base + route, undefined)).status, 401, `${base}${route} without a token`)
        assert.equal((await get(base + route, 'x'.repeat(43))).status, 401, `${base}${route} with a wrong token`)
      }
      const page = await get(`${base}/?token=${'y'.repeat(43)}`, undefined)
      assert.equal(page.status, 401)
      assert.match(await page.text(), /\?token=TOKEN/)
      assert.equal((await get(`${base}/?token=${encodeURIComponent(token)}`, undefined)).status, 200)
    }
  })

  it('records fetch latency and on-demand bytes for a copy-on-read; serves region pictures', async () => {
    const port = await freePort()
    const pair = await startPair({ images: { 'vm1.raw': pattern(2, 16 * MiB) }, hydrateRate: '0', drArgs: ['--listen', `127.0.0.1:${port}`, '--read-ahead', '0'] })
    const token = await pairToken(pair.dirs.state)
    const drUrl = `http://127.0.0.1:${port}`
    await waitFor('the DR to know the volume', async () => (await pair.drStatus()).volumes.length === 1, 30_000)

    const before = await scrape(drUrl, token)
    assert.equal(before.histogramCount('volmirror_fetch_duration_seconds'), 0)
    assert.equal(before.value('volmirror_regions', { volume: 'vm1.raw', state: 'absent' }), 16)
    const pic0 = await (await get(`${drUrl}/v1/regionmap?volume=vm1.raw`, token)).json() as RegionPicture
    assert.deepEqual(pic0.counts, { absent: 16, present: 0, dirty: 0, fetching: 0 })
    assert.ok(decodeRegionPicture(pic0).every(s => s === 'absent'))

    // One small read in region 5 fetches that region (read-ahead 0).
    const r = await fsop({ op: 'read', path: path.join(pair.dirs.drMnt, 'vm1.raw'), offset: 5 * MiB + 4096, length: 4096 })
    assert.equal(Buffer.from(r.data, 'base64').compare(pattern(2, 16 * MiB).subarray(5 * MiB + 4096, 5 * MiB + 8192)), 0)

    const after = await waitFor('the fetch to finish', async () => {
      const m = await scrape(drUrl, token)
      return m.value('volmirror_regions', { volume: 'vm1.raw', state: 'present' }) === 1 ? m : undefined
    })
    assert.equal(after.histogramCount('volmirror_fetch_duration_seconds'), 1)
    assert.equal(after.value('volmirror_fetched_bytes_total', { cause: 'on_demand' }), MiB)
    assert.equal(after.value('volmirror_fetched_bytes_total', { cause: 'hydration' }), 0)
    assert.equal(after.value('volmirror_fetches_total'), 1)
    assert.equal(after.value('volmirror_consistent'), 0)
    const pic1 = await (await get(`${drUrl}/v1/regionmap?volume=vm1.raw`, token)).json() as RegionPicture
    assert.equal(pic1.regions, 16)
    assert.equal(pic1.regionSize, MiB)
    assert.deepEqual(decodeRegionPicture(pic1).map((s, i) => s === 'present' ? i : -1).filter(i => i >= 0), [5])

    // The primary's picture: every region present (no DR in bitmap mode).
    const pp = await (await get(`${pair.url}/v1/regionmap?volume=vm1.raw`, token)).json() as RegionPicture
    assert.deepEqual(pp.counts, { absent: 0, present: 16, dirty: 0, fetching: 0 })

    // Status JSON is the node's status; unknown volumes and routes are errors, not empty answers.
    const st = await (await get(`${drUrl}/v1/status`, token)).json() as { role: string, volumes: Array<{ regions: { present: number } }> }
    assert.equal(st.role, 'dr')
    assert.equal(st.volumes[0]!.regions.present, 1)
    assert.equal((await get(`${drUrl}/v1/regionmap?volume=nope.raw`, token)).status, 404)
    assert.equal((await get(`${pair.url}/v1/regionmap?volume=nope.raw`, token)).status, 404)
    assert.equal((await get(`${drUrl}/v1/regionmap?volume=..%2Fx`, token)).status, 400)
    assert.equal((await get(`${drUrl}/v1/regionmap`, token)).status, 400)
    assert.equal((await get(`${drUrl}/v1/nope`, token)).status, 404)
    // A DR's --listen also serves DRs of its own (cascade): its info is the DR's position.
    const info = await (await get(`${drUrl}/v1/info`, token)).json() as { role?: string }
    assert.equal(info.role, 'dr')
    assert.equal((await fetch(`${drUrl}/metrics`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status, 405)
  })

  it('serves a DR\'s routes on its --listen address until a promotion, then the primary\'s there', async () => {
    const port = await freePort()
    const pair = await startPair({ images: { 'vm1.raw': pattern(4, 4 * MiB) }, drArgs: ['--listen', `127.0.0.1:${port}`] })
    const token = await pairToken(pair.dirs.state)
    const drUrl = `http://127.0.0.1:${port}`
    await pair.consistent()
    assert.equal((await scrape(drUrl, token)).value('volmirror_role', { role: 'dr' }), 1)
    // A failover: the primary is gone, the DR is promoted in its process and serves DRs on the same address.
    await pair.primary.stop()
    const r = await cli(['promote', '--state', pair.dirs.drState, '--json'], { timeoutMs: 60_000 })
    assert.equal(r.code, 0, r.stderr)
    const m = await waitFor('the promoted node to serve on the DR\'s address', async () => {
      const m = await scrape(drUrl, token).catch(() => undefined)
      return m && m.value('volmirror_role', { role: 'primary' }) === 1 ? m : undefined
    }, 30_000, 100)
    assert.equal(m.value('volmirror_epoch'), 1)
    assert.equal(m.value('volmirror_volume_size_bytes', { volume: 'vm1.raw' }), 4 * MiB)
    assert.equal((await get(`${drUrl}/v1/info`, token)).status, 200, 'the replication routes are there now')
  })

  it('runs a pair over TLS from the CLI flags: the DR\'s --listen is HTTPS, and the promoted node serves DRs there', async () => {
    const ca = await makeTestCa()
    const port = await freePort()
    const tls = ['--tls-cert', ca.cert, '--tls-key', ca.key]
    const pair = await startPair({
      images: { 'vm1.raw': pattern(5, 2 * MiB) },
      primaryArgs: tls,
      drArgs: ['--ca', ca.ca, '--listen', `127.0.0.1:${port}`, ...tls],
    })
    assert.match(pair.url, /^https:/)
    const token = await pairToken(pair.dirs.state)
    await pair.consistent()
    const auth = ['--cacert', ca.ca, '-H', `Authorization: Bearer ${token}`]
    const m = await curl([...auth, `https://127.0.0.1:${port}/metrics`])
    assert.equal(m.status, 200)
    assert.match(m.body.toString(), /^volmirror_role\{role="dr"\} 1$/m)
    await pair.primary.stop()
    const r = await cli(['promote', '--state', pair.dirs.drState, '--json'], { timeoutMs: 60_000 })
    assert.equal(r.code, 0, r.stderr)
    const info = await waitFor('the promoted node to serve DRs over HTTPS', async () => {
      const c = await curl([...auth, `https://127.0.0.1:${port}/v1/info`]).catch(() => undefined)
      return c?.status === 200 ? JSON.parse(c.body.toString()) as { epoch?: number } : undefined
    }, 30_000, 100)
    assert.ok(info)
  })
})
