/**
 * The pure parts behind metrics and the status page: the region picture
 * encoding, the logger's observers, errors counted by code.
 */
import assert from 'node:assert/strict'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { decodeRegionPicture, RegionPictureBuilder, type RegionState } from '../../lib/core/region-picture.js'
import { VolmirrorError } from '../../lib/errors.js'
import { Logger, type LogLevel } from '../../lib/log.js'
import { NodeMetrics } from '../../lib/metrics/node-metrics.js'

describe('region picture', () => {
  it('encodes two bits per region and decodes to the same states and counts', () => {
    for (const n of [0, 1, 3, 4, 5, 131]) {
      const b = new RegionPictureBuilder(n, 'absent')
      const want: RegionState[] = Array.from({ length: n }, (_, i) => (['absent', 'present', 'dirty', 'fetching'] as const)[(i * 7) % 4]!)
      want.forEach((s, i) => b.set(i, s))
      b.set(n, 'present') // past the end: ignored
      const p = b.picture('v.raw', 65536)
      assert.equal(Buffer.from(p.data, 'base64').length, Math.ceil(n / 4))
      assert.deepEqual(decodeRegionPicture(p), want)
      for (const s of ['absent', 'present', 'dirty', 'fetching'] as const) assert.equal(p.counts[s], want.filter(x => x === s).length, `${n}: ${s}`)
    }
  })

  it('fills every region, and leaves the bits past the last region clear', () => {
    const p = new RegionPictureBuilder(5, 'fetching').picture('v.raw', 65536)
    assert.deepEqual([...Buffer.from(p.data, 'base64')], [0xff, 0x03])
    assert.deepEqual(p.counts, { absent: 0, present: 0, dirty: 0, fetching: 5 })
  })
})

describe('logger observers', () => {
  it('see every event of the family, below the printed level too, until stopped', () => {
    const lines: string[] = []
    const log = new Logger({ level: 'error', sink: line => lines.push(line) })
    const seen: Array<[LogLevel, string]> = []
    const stop = log.observe((level, event) => seen.push([level, event]))
    log.child({ node: 'dr' }).warn('a.warn')
    log.debug('a.debug')
    log.error('a.error')
    stop()
    log.error('b.error')
    assert.deepEqual(seen, [['warn', 'a.warn'], ['debug', 'a.debug'], ['error', 'a.error']])
    assert.equal(lines.length, 2, 'printing is unchanged: errors only')
  })

  it('cannot break logging by throwing', () => {
    const lines: string[] = []
    const log = new Logger({ sink: line => lines.push(line) })
    log.observe(() => { throw new Error('bad observer') })
    log.info('x.y')
    assert.equal(lines.length, 1)
  })
})

describe('errors by code', () => {
  it('counts warnings and errors that carry an error code, by code and level', async () => {
    const log = new Logger({ level: 'error', sink: () => {} })
    const m = new NodeMetrics(async () => ({ role: 'dr' as const, epoch: 3, startedAt: new Date(0).toISOString(), dataPath: { mount: 'native' as const } }), log.child({ node: 'dr' }))
    log.warn('fetch.retrying', { err: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) })
    log.warn('fetch.retrying', { err: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) })
    log.error('fetch.failed', { err: new VolmirrorError('PEER_UNREACHABLE', 'cannot fetch') })
    log.error('no.code', { err: new Error('plain') })
    log.info('not.an.error', { err: new VolmirrorError('CLOSED', 'closing') })
    const families = new Map(parsePrometheusTextFormat(await m.text()).map(f => [f.name, f]))
    const errors = families.get('volmirror_errors_total')!
    assert.equal(errors.type, 'COUNTER')
    const by = new Map(errors.metrics.map(s => [`${s.labels?.code}/${s.labels?.level}`, Number(s.value)]))
    assert.deepEqual([...by].sort(), [['ECONNREFUSED/warn', 2], ['PEER_UNREACHABLE/error', 1]])
    assert.equal(Number(families.get('volmirror_epoch')!.metrics[0]!.value), 3)
    assert.equal(Number(families.get('volmirror_role')!.metrics.find(s => s.labels?.role === 'dr')!.value), 1)
    m.close()
    log.error('after.close', { err: new VolmirrorError('IO_ERROR', 'x') })
    const again = parsePrometheusTextFormat(await m.text()).find(f => f.name === 'volmirror_errors_total')!
    assert.equal(again.metrics.length, 2, 'a closed registry counts nothing more')
  })
})
