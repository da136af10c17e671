/**
 * The pure parts of the HTTP edge: Range parsing, the code <-> status
 * table, and bearer-token parsing and comparison.
 */
import assert from 'node:assert/strict'
import { bearerToken, generateToken, tokenMatches } from '../../lib/http/auth.js'
import { parseContentRange, parseRange, rangeHeader } from '../../lib/http/range.js'
import { codeForStatus, errorFromResponse, httpStatus, toWireError } from '../../lib/http/status.js'
import { ErrorCodes, isVolmirrorError, VolmirrorError } from '../../lib/errors.js'

describe('http edge parts', () => {
  it('parses the three Range forms and clamps to the volume', () => {
    assert.equal(parseRange(undefined, 100), undefined)
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 })
    assert.deepEqual(parseRange('bytes=90-200', 100), { start: 90, end: 99 })
    assert.deepEqual(parseRange('bytes=10-', 100), { start: 10, end: 99 })
    assert.deepEqual(parseRange('bytes=-30', 100), { start: 70, end: 99 })
    assert.deepEqual(parseRange('bytes=-300', 100), { start: 0, end: 99 })
    assert.deepEqual(parseRange('Bytes = 5 - 6', 100), { start: 5, end: 6 })
    for (const u of ['bytes=100-', 'bytes=100-200', 'bytes=-0']) assert.equal(parseRange(u, 100), 'unsatisfiable', u)
    assert.equal(parseRange('bytes=0-', 0), 'unsatisfiable')
    assert.equal(parseRange('bytes=-5', 0), 'unsatisfiable')
  })

  it('rejects malformed and multiple ranges with BAD_REQUEST', () => {
    for (const h of ['bytes=', 'bytes=-', 'bytes=a-b', 'bytes=5-3', 'items=0-1', 'bytes=0-1,3-4', '0-1', 'bytes=1.5-2', 'bytes=99999999999999999-', 'bytes=--1']) {
      assert.throws(() => parseRange(h, 100), (e: unknown) => isVolmirrorError(e, 'BAD_REQUEST'), h)
    }
  })

  it('writes and reads range headers', () => {
    assert.equal(rangeHeader(10, 5), 'bytes=10-14')
    assert.deepEqual(parseContentRange('bytes 10-14/100'), { start: 10, end: 14, size: 100 })
    assert.deepEqual(parseContentRange('bytes */100'), { size: 100 })
    assert.equal(parseContentRange('bytes 1-2'), undefined)
    assert.equal(parseContentRange(undefined), undefined)
  })

  it('maps codes to statuses and error bodies back to the same code', () => {
    assert.equal(httpStatus('INVALID_VOLUME_NAME'), 400)
    assert.equal(httpStatus('UNAUTHORIZED'), 401)
    assert.equal(httpStatus('NOT_FOUND'), 404)
    assert.equal(httpStatus('RESYNC_REQUIRED'), 410)
    assert.equal(httpStatus('TOO_LARGE'), 413)
    assert.equal(httpStatus('RANGE_NOT_SATISFIABLE'), 416)
    assert.equal(httpStatus('RECORD_CORRUPT'), 500)
    for (const code of ErrorCodes) {
      const e = new VolmirrorError(code, `m ${code}`, { details: { a: 1 } })
      const back = errorFromResponse(httpStatus(code), JSON.stringify({ error: e.toJSON() }), 'GET /x')
      assert.equal(back.code, code)
      assert.equal(back.message, `m ${code}`)
      assert.equal(back.details?.a, 1)
    }
    assert.equal(errorFromResponse(416, '', 'HEAD /x').code, 'RANGE_NOT_SATISFIABLE')
    assert.equal(errorFromResponse(502, '<html>bad gateway</html>', 'GET /x').code, 'PEER_UNREACHABLE')
    assert.equal(errorFromResponse(400, '{"error":{"code":"NO_SUCH_CODE","message":"x"}}', 'GET /x').code, 'BAD_REQUEST')
    assert.equal(codeForStatus(418), 'PEER_PROTOCOL')
    const hidden = toWireError(new Error('secret stack /etc/x'))
    assert.equal(hidden.code, 'IO_ERROR')
    assert.doesNotMatch(hidden.message, /secret/)
  })

  it('parses bearer tokens and compares them in constant time', () => {
    const t = generateToken()
    assert.match(t, /^[A-Za-z0-9_-]{43}$/)
    assert.notEqual(generateToken(), t)
    assert.equal(bearerToken(`Bearer ${t}`), t)
    assert.equal(bearerToken(`bearer ${t}`), t)
    for (const h of [undefined, '', 'Bearer', 'Bearer ', `Basic ${t}`, `Bearer ${t} extra`, t]) assert.equal(bearerToken(h), undefined, String(h))
    assert.equal(tokenMatches(t, t), true)
    assert.equal(tokenMatches(t.slice(0, -1), t), false)
    assert.equal(tokenMatches(t + 'x', t), false)
    assert.equal(tokenMatches(undefined, t), false)
    assert.equal(tokenMatches('', ''), false, 'an empty expected token matches nothing')
  })
})
