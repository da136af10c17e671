import assert from 'node:assert/strict'
import { formatBytes, parseDuration, parseSize } from '../../lib/cli/parse.js'
import { isVolmirrorError } from '../../lib/errors.js'

describe('option parsing', () => {
  it('reads sizes with binary units', () => {
    assert.equal(parseSize('1048576'), 1048576)
    assert.equal(parseSize('1M'), 1048576)
    assert.equal(parseSize('64KiB'), 65536)
    assert.equal(parseSize('1.5g'), 1.5 * 1024 ** 3)
    assert.throws(() => parseSize('12 parsecs'), (e: unknown) => isVolmirrorError(e, 'USAGE'))
  })

  it('reads durations', () => {
    assert.equal(parseDuration('100ms'), 100)
    assert.equal(parseDuration('2s'), 2000)
    assert.equal(parseDuration('3'), 3000)
    assert.equal(parseDuration('1m'), 60000)
    assert.throws(() => parseDuration('soon'), (e: unknown) => isVolmirrorError(e, 'USAGE'))
  })

  it('formats bytes', () => {
    assert.equal(formatBytes(512), '512 B')
    assert.equal(formatBytes(1536), '1.50 KiB')
    assert.equal(formatBytes(10 * 1024 ** 3), '10.0 GiB')
  })
})
