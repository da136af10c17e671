/**
 * The HTTP edge itself, beyond what the conformance suite covers: the peer
 * token, Range semantics as curl sees them, names that try to leave the
 * image directory, bounds on everything a peer sends, long-poll lifecycle,
 * what the client does with broken servers, and TLS with a private CA.
 */
import assert from 'node:assert/strict'
import { chmod, mkdir, stat, symlink, writeFile } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { encodeRecord, encodedBytes, decodeRecord } from '../../lib/core/record.js'
import { ensureToken, readToken } from '../../lib/http/auth.js'
import { PrimaryClient } from '../../lib/http/client.js'
import { GROUP_FRAME_TYPE } from '../../lib/http/wire.js'
import { decodeGroupFrame, encodeGroupFrame, FRAME_HEADER } from '../../lib/replication/group-frame.js'
import { LIMITS, type GroupBatch } from '../../lib/replication/protocol.js'
import { defer } from '../helpers/cleanup.js'
import { curl, makeTestCa, rawRequest, startHttpPrimary, type HttpPrimary, type RawReply } from '../helpers/http.js'
import { pattern } from '../helpers/pattern.js'
import { runOk } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

const RS = 64 * 1024
const VM1 = pattern(1, 200_000)
const CANARY = pattern(666, 8192)

async function codeOf (p: Promise<unknown>): Promise<string> {
  try { await p } catch (err) { return (err as { code?: string }).code ?? String(err) }
  return 'resolved'
}

interface CaughtError { code?: string, message: string, cause?: unknown, details?: Record<string, unknown> }

/** errOf resolves to the error a promise rejects with (fails the test if it resolves). */
async function errOf (p: Promise<unknown>): Promise<CaughtError> {
  try { await p } catch (err) { return err as CaughtError }
  assert.fail('expected a rejection')
}

/** expectError checks a JSON error reply: status, code, no stack trace. */
function expectError (r: RawReply, status: number, code: string, what: string): void {
  assert.equal(r.status, status, `${what}: status (body ${r.body.toString().slice(0, 200)})`)
  assert.match(String(r.headers['content-type']), /^application\/json/, `${what}: JSON`)
  const body = JSON.parse(r.body.toString()) as { error: { code: string, message: string } }
  assert.equal(body.error.code, code, `${what}: code (${body.error.message})`)
  assert.doesNotMatch(r.body.toString(), /\n\s+at |\.js:\d+/, `${what}: no stack trace`)
}

/** edge starts a primary with vm1.raw, pool/vm2.raw, a 64 MiB sparse big.raw, and a canary file next to the image directory. */
async function edge (server: Parameters<typeof startHttpPrimary>[0] = {}): Promise<HttpPrimary & { canary: string }> {
  const root = await tmpDir('edge')
  const images = path.join(root, 'images')
  await mkdir(path.join(images, 'pool'), { recursive: true })
  await writeFile(path.join(images, 'vm1.raw'), VM1)
  await writeFile(path.join(images, 'pool', 'vm2.raw'), pattern(2, 3000))
  await runOk('truncate', ['-s', String(64 * 1024 * 1024), path.join(images, 'big.raw')])
  const canary = path.join(root, 'canary.bin')
  await writeFile(canary, CANARY)
  const h = await startHttpPrimary({ ...server, primary: { root, regionSize: RS, groupMs: 20, ...server.primary } })
  return { ...h, canary }
}

const auth = (h: HttpPrimary): Record<string, string> => ({ authorization: `Bearer ${h.token}` })

describe('HTTP edge', function () {
  this.timeout(30_000)

  it('every route but health needs the token: 401 with a JSON error otherwise', async () => {
    const h = await edge()
    const routes: Array<[string, string]> = [
      ['GET', '/v1/info'], ['GET', '/v1/volumes'], ['GET', '/v1/volumes/vm1.raw'], ['HEAD', '/v1/volumes/vm1.raw'],
      ['GET', '/v1/volumes/vm1.raw/regions?from=0&count=1'], ['GET', '/v1/volumes/vm1.raw/regions/0'],
      ['POST', '/v1/register'], ['GET', '/v1/groups?node=a&after=0'], ['POST', '/v1/ack'],
      ['GET', '/v1/nope'], ['GET', '/'], ['GET', '/v2/info'], ['DELETE', '/v1/info'],
    ]
    const wrong = [undefined, 'Bearer', 'Bearer wrong', `Bearer ${h.token}x`, `Bearer ${h.token.slice(0, -1)}`, `Basic ${h.token}`, h.token, `Bearer  ${h.token} x`]
    for (const [method, target] of routes) {
      for (const a of wrong) {
        const r = await rawRequest(h.url, target, { method, headers: a === undefined ? {} : { authorization: a }, ...(method === 'POST' ? { body: '{}' } : {}) })
        const what = `${method} ${target} with ${a === undefined ? 'no token' : 'a wrong token'}`
        if (method === 'HEAD') assert.equal(r.status, 401, what)
        else expectError(r, 401, 'UNAUTHORIZED', what)
        assert.match(String(r.headers['www-authenticate']), /^Bearer/, what)
      }
    }
    const health = await rawRequest(h.url, '/v1/health')
    assert.equal(health.status, 200)
    assert.deepEqual(JSON.parse(health.body.toString()), { ok: true })
    const ok = await rawRequest(h.url, '/v1/info', { headers: auth(h) })
    assert.equal(ok.status, 200)
    assert.equal(JSON.parse(ok.body.toString()).regionSize, RS)
    const wrongClient = new PrimaryClient(h.url, { token: 'not-the-token-at-all' })
    defer(() => wrongClient.close())
    assert.equal(await codeOf(wrongClient.info()), 'UNAUTHORIZED')
    for (const e of [...h.serverEvents, ...h.p.events]) assert.doesNotMatch(JSON.stringify(e.fields), new RegExp(h.token), `token in log event ${e.event}`)
  })

  it('keeps the token in a 0600 file and refuses a file others can read', async () => {
    const dir = await tmpDir('token')
    const file = path.join(dir, 'peer.token')
    const t = await ensureToken(file)
    assert.match(t, /^[A-Za-z0-9_-]{43}$/)
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    assert.equal(await ensureToken(file), t, 'an existing token is kept')
    assert.equal(await readToken(file), t)
    for (const mode of [0o644, 0o640, 0o604, 0o620]) {
      await chmod(file, mode)
      for (const fn of [readToken, ensureToken]) {
        const err = await fn(file).then(() => undefined, (e: unknown) => e as { code: string, message: string })
        assert.equal(err?.code, 'PERMISSION_DENIED', `mode ${mode.toString(8)}`)
        assert.match(err!.message, /chmod 600/)
        assert.doesNotMatch(err!.message, new RegExp(t))
      }
    }
    await chmod(file, 0o600)
    await writeFile(path.join(dir, 'short'), 'abc\n', { mode: 0o600 })
    assert.equal(await codeOf(readToken(path.join(dir, 'short'))), 'INVALID_ARGUMENT')
    assert.equal(await codeOf(readToken(path.join(dir, 'missing'))), 'NOT_FOUND')
  })

  it('answers curl Range requests: a-b, a-, -n, past the end, 416, HEAD, whole small volumes', async () => {
    const h = await edge()
    const H = ['-H', `Authorization: Bearer ${h.token}`]
    const url = `${h.url}/v1/volumes/vm1.raw`
    const [a, b, c, d, e, whole, head, enc, seg] = await Promise.all([
      curl([...H, '-r', '0-1023', url]),
      curl([...H, '-r', '199000-', url]),
      curl([...H, '-r', '-500', url]),
      curl([...H, '-r', '150000-999999', url]),
      curl([...H, '-r', '300000-300010', url]),
      curl([...H, url]),
      curl([...H, '-I', url]),
      curl([...H, '-r', '10-19', `${h.url}/v1/volumes/pool%2Fvm2.raw`]),
      curl([...H, '-r', '10-19', `${h.url}/v1/volumes/pool/vm2.raw`]),
    ])
    const expect206 = (r: typeof a, start: number, end: number, what: string): void => {
      assert.equal(r.status, 206, what)
      assert.equal(r.headers['content-range'], `bytes ${start}-${end - 1}/${VM1.length}`, what)
      assert.equal(r.headers['accept-ranges'], 'bytes', what)
      assert.match(r.headers['x-volmirror-as-of'] ?? '', /^\d+$/, what)
      assert.deepEqual(r.body, VM1.subarray(start, end), what)
    }
    expect206(a, 0, 1024, '0-1023')
    expect206(b, 199_000, 200_000, '199000-')
    expect206(c, 199_500, 200_000, '-500')
    expect206(d, 150_000, 200_000, 'past the end')
    assert.equal(e.status, 416)
    assert.equal(e.headers['content-range'], `bytes */${VM1.length}`)
    assert.equal(JSON.parse(e.body.toString()).error.code, 'RANGE_NOT_SATISFIABLE')
    assert.equal(whole.status, 200)
    assert.deepEqual(whole.body, VM1)
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-length'], String(VM1.length))
    assert.equal(head.headers['accept-ranges'], 'bytes')
    assert.deepEqual(enc.body, pattern(2, 3000).subarray(10, 20))
    assert.deepEqual(seg.body, pattern(2, 3000).subarray(10, 20))

    const big = `${h.url}/v1/volumes/big.raw`
    const [bigWhole, bigOpen, bigSmall, bigHead] = await Promise.all([curl([...H, big]), curl([...H, '-r', '0-', big]), curl([...H, '-r', '0-1023', big]), curl([...H, '-I', big])])
    assert.equal(bigWhole.status, 413)
    assert.equal(JSON.parse(bigWhole.body.toString()).error.code, 'TOO_LARGE')
    assert.equal(bigOpen.status, 413, 'a range longer than the limit')
    assert.equal(bigSmall.status, 206)
    assert.deepEqual(bigSmall.body, Buffer.alloc(1024))
    assert.equal(bigHead.status, 200, 'HEAD tells the size of any volume')
    assert.equal(bigHead.headers['content-length'], String(64 * 1024 * 1024))
  })

  it('never serves a file outside the image directory', async () => {
    const h = await edge()
    await symlink(h.canary, path.join(h.p.images, 'link.raw'))
    const abs = encodeURIComponent(h.canary)
    const names = [
      '..%2Fcanary.bin', '../canary.bin', '%2E%2E%2Fcanary.bin', '%2E%2E/canary.bin', abs, `%2F${abs}`, `/${h.canary}`,
      'a/../../canary.bin', 'pool/..%2F..%2Fcanary.bin', 'x%00y', '..%00', '..%5C..%5Ccanary.bin', '.volmirror%2Fx', '%zz',
    ]
    const seen: RawReply[] = []
    for (const n of names) {
      for (const [target, method] of [[`/v1/volumes/${n}`, 'GET'], [`/v1/volumes/${n}`, 'HEAD'], [`/v1/volumes/${n}/regions/0`, 'GET'], [`/v1/volumes/${n}/regions?from=0&count=1&checksums=1`, 'GET']] as const) {
        const r = await rawRequest(h.url, target, { method, headers: { ...auth(h), range: 'bytes=0-8191' } })
        seen.push(r)
        if (method === 'HEAD') assert.equal(r.status, 400, `${method} ${target}`)
        else expectError(r, 400, 'INVALID_VOLUME_NAME', `${method} ${target}`)
      }
    }
    const link = await rawRequest(h.url, '/v1/volumes/link.raw', { headers: { ...auth(h), range: 'bytes=0-8191' } })
    seen.push(link)
    expectError(link, 404, 'NOT_FOUND', 'a symlink out of the image directory')
    await symlink(path.dirname(h.canary), path.join(h.p.images, 'dirlink'))
    for (const target of ['/v1/volumes/dirlink/canary.bin', '/v1/volumes/dirlink%2Fcanary.bin', '/v1/volumes/dirlink/canary.bin/regions/0', '/v1/volumes/dirlink/canary.bin/regions?from=0&count=1&checksums=1']) {
      const r = await rawRequest(h.url, target, { headers: { ...auth(h), range: 'bytes=0-8191' } })
      seen.push(r)
      expectError(r, 404, 'NOT_FOUND', `${target}: through a symlinked directory`)
    }
    const client = await codeOf(h.client.readRange('../canary.bin', 0, 100))
    assert.equal(client, 'INVALID_VOLUME_NAME')
    const needle = CANARY.subarray(1000, 1032)
    for (const r of seen) assert.equal(r.body.indexOf(needle), -1, 'canary bytes leaked')
  })

  it('bounds and checks everything a peer sends: 4xx with a JSON error, never a crash', async () => {
    const h = await edge()
    const A = auth(h)
    const get = (t: string, headers: Record<string, string> = {}): Promise<RawReply> => rawRequest(h.url, t, { headers: { ...A, ...headers } })
    const post = (t: string, body: string, chunked = false): Promise<RawReply> => rawRequest(h.url, t, { method: 'POST', headers: { ...A, 'content-type': 'application/json' }, body, chunked })
    const bad: Array<[string, Promise<RawReply>]> = [
      ['count over the limit', get(`/v1/volumes/vm1.raw/regions?from=0&count=${LIMITS.maxRegionsPerCall + 1}`)],
      ['count 0', get('/v1/volumes/vm1.raw/regions?from=0&count=0')],
      ['count missing', get('/v1/volumes/vm1.raw/regions?from=0')],
      ['from negative', get('/v1/volumes/vm1.raw/regions?from=-1&count=1')],
      ['from not a number', get('/v1/volumes/vm1.raw/regions?from=abc&count=1')],
      ['from twice', get('/v1/volumes/vm1.raw/regions?from=1&from=2&count=1')],
      ['checksums=2', get('/v1/volumes/vm1.raw/regions?from=0&count=1&checksums=2')],
      ['region index not a number', get('/v1/volumes/vm1.raw/regions/x')],
      ['region index too long', get('/v1/volumes/vm1.raw/regions/99999999999999999')],
      ['region index past 2^53 bytes', get('/v1/volumes/vm1.raw/regions/9007199254740991')],
      ['first negative', get('/v1/volumes/vm1.raw/regions/0?first=-1')],
      ['malformed range', get('/v1/volumes/vm1.raw', { range: 'bytes=abc' })],
      ['two ranges', get('/v1/volumes/vm1.raw', { range: 'bytes=0-1,5-6' })],
      ['groups without node', get('/v1/groups?after=0')],
      ['groups with a bad node', get('/v1/groups?node=a%20b&after=0')],
      ['groups without after', get('/v1/groups?node=a')],
      ['groups after -1', get('/v1/groups?node=a&after=-1')],
      ['groups max 0', get('/v1/groups?node=a&after=0&max=0')],
      ['groups wait abc', get('/v1/groups?node=a&after=0&wait=abc')],
      ['malformed JSON', post('/v1/register', '{')],
      ['JSON array', post('/v1/register', '[]')],
      ['JSON null', post('/v1/register', 'null')],
      ['no nodeId', post('/v1/register', '{"epoch":0,"regionSize":65536}')],
      ['epoch a string', post('/v1/register', '{"nodeId":"a","epoch":"0","regionSize":65536}')],
      ['regionSize 0', post('/v1/register', '{"nodeId":"a","epoch":0,"regionSize":0}')],
      ['appliedSeq -1', post('/v1/register', '{"nodeId":"a","epoch":0,"regionSize":65536,"appliedSeq":-1}')],
      ['ack seq 1.5', post('/v1/ack', '{"node":"a","seq":1.5}')],
      ['ack without node', post('/v1/ack', '{"seq":1}')],
    ]
    for (const [what, p] of bad) expectError(await p, 400, 'BAD_REQUEST', what)

    const huge = JSON.stringify({ nodeId: 'a', epoch: 0, regionSize: RS, pad: 'x'.repeat(LIMITS.maxBodyBytes) })
    expectError(await post('/v1/register', huge), 413, 'TOO_LARGE', 'a huge body')
    expectError(await post('/v1/register', huge, true), 413, 'TOO_LARGE', 'a huge chunked body')
    expectError(await rawRequest(h.url, '/v1/ack', { method: 'POST', headers: { ...A, 'content-length': String(1e9) } }), 413, 'TOO_LARGE', 'a declared 1 GB body')
    expectError(await rawRequest(h.url, '/v1/info', { method: 'DELETE', headers: A }), 405, 'BAD_REQUEST', 'DELETE /v1/info')
    expectError(await rawRequest(h.url, '/v1/volumes/vm1.raw', { method: 'POST', headers: A, body: '{}' }), 405, 'BAD_REQUEST', 'POST to a volume')
    expectError(await get('/v1/nope'), 404, 'NOT_FOUND', 'unknown route')
    expectError(await get('/v1/volumes/missing.raw'), 404, 'NOT_FOUND', 'missing volume')
    expectError(await rawRequest(h.url, '/v1/info', { headers: { ...A, 'x-pad': 'y'.repeat(20_000) } }), 431, 'TOO_LARGE', 'huge headers')

    // Garbage that is not HTTP at all gets a JSON 400 and the connection closed.
    const garbage = await new Promise<string>((resolve, reject) => {
      const s = net.connect(h.server.address.port, '127.0.0.1', () => s.write('BLAH\x00\x01 nonsense\r\n\r\n'))
      let text = ''
      s.on('data', (c: Buffer) => { text += c.toString() })
      s.on('end', () => resolve(text))
      s.on('error', reject)
    })
    assert.match(garbage, /^HTTP\/1\.1 400/)
    assert.match(garbage, /"code":"BAD_REQUEST"/)
    assert.equal((await get('/v1/info')).status, 200, 'the server is still serving')
  })

  it('clamps a long poll\'s wait to the server\'s limit', async () => {
    const h = await edge({ server: { maxWaitMs: 300 } })
    const reg = await h.client.register({ nodeId: 'dr-x', epoch: 0, regionSize: RS })
    const t = Date.now()
    const r = await rawRequest(h.url, `/v1/groups?node=dr-x&after=${reg.startSeq}&wait=999999999999`, { headers: auth(h) })
    const elapsed = Date.now() - t
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], GROUP_FRAME_TYPE)
    assert.equal(decodeGroupFrame(r.body).records.length, 0)
    assert.ok(elapsed >= 250 && elapsed < 5_000, `waited ${elapsed} ms`)
  })

  it('ends a long poll when its client goes away, when a newer one pushes it out, and on close', async () => {
    const h = await edge({ server: { maxPollsPerNode: 2 } })
    const reg = await h.client.register({ nodeId: 'dr-x', epoch: 0, regionSize: RS })
    const ac = new AbortController()
    const aborted = h.client.groups({ nodeId: 'dr-x', after: reg.startSeq, waitMs: 30_000, signal: ac.signal })
    await waitFor('the poll to wait on the server', () => h.server.activePolls === 1)
    ac.abort(new Error('DR stops'))
    await assert.rejects(aborted, /DR stops/)
    await waitFor('the server to drop the abandoned poll', () => h.server.activePolls === 0)

    const t = Date.now()
    const polls = []
    for (let i = 0; i < 3; i++) {
      polls.push(h.client.groups({ nodeId: 'dr-x', after: reg.startSeq, waitMs: 30_000 }))
      if (i < 2) await waitFor(`poll ${i + 1} to wait`, () => h.server.activePolls === i + 1)
    }
    let settled = 0
    polls.forEach(p => { void p.then(() => { settled++ }, () => {}) })
    const oldest = await polls[0]!
    assert.equal(settled, 1, 'only the oldest poll was pushed out')
    assert.equal(oldest.records.length, 0)
    assert.equal(h.server.activePolls, 2)
    await h.server.close()
    const rest = await Promise.all(polls.slice(1))
    assert.ok(rest.every(b => b.records.length === 0))
    assert.ok(Date.now() - t < 10_000, 'closing the server ended the polls')
  })

  describe('client against broken servers', () => {
    /** rawServer serves `handler` on 127.0.0.1:0 and returns a client for it. */
    async function rawServer (handler: http.RequestListener, clientOpts: { timeoutMs?: number } = {}): Promise<PrimaryClient> {
      const s = http.createServer(handler)
      await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
      defer(() => new Promise<void>(resolve => { s.closeAllConnections(); s.close(() => resolve()) }))
      const c = new PrimaryClient(`http://127.0.0.1:${(s.address() as net.AddressInfo).port}`, { token: 'x'.repeat(43), ...clientOpts })
      defer(() => c.close())
      return c
    }

    function frameOf (after: number): Buffer {
      const records = [1, 2].map(i => decodeRecord(encodedBytes(encodeRecord(after + i, 1000, { op: 'write', volume: 'v.raw', offset: i * 4096, data: Buffer.alloc(64, i) }))))
      const b: GroupBatch = { after, records, groupEnd: after + 2, lastSeq: after + 2, time: 2000, oldestPendingTs: 1000 }
      return Buffer.concat(encodeGroupFrame(b))
    }

    it('rejects a corrupted group frame by its CRC', async () => {
      const good = frameOf(10)
      const inRecord = Buffer.from(good)
      inRecord[FRAME_HEADER + 50]! ^= 0x01
      const inHeader = Buffer.from(good)
      inHeader[20]! ^= 0x01
      assert.equal(decodeGroupFrame(good).records.length, 2)
      assert.throws(() => decodeGroupFrame(inRecord), (e: unknown) => (e as { code?: string }).code === 'RECORD_CORRUPT')
      assert.throws(() => decodeGroupFrame(inHeader), (e: unknown) => (e as { code?: string }).code === 'RECORD_CORRUPT')

      let serve = good
      let type = GROUP_FRAME_TYPE
      const c = await rawServer((_req, res) => { res.writeHead(200, { 'content-type': type, 'content-length': serve.length }); res.end(serve) })
      assert.equal((await c.groups({ nodeId: 'a', after: 10 })).records.length, 2)
      serve = inRecord
      assert.equal(await codeOf(c.groups({ nodeId: 'a', after: 10 })), 'RECORD_CORRUPT')
      serve = inHeader
      assert.equal(await codeOf(c.groups({ nodeId: 'a', after: 10 })), 'RECORD_CORRUPT')
      serve = good
      assert.equal(await codeOf(c.groups({ nodeId: 'a', after: 9 })), 'PEER_PROTOCOL', 'a frame for another `after`')
      type = 'text/html'
      assert.equal(await codeOf(c.groups({ nodeId: 'a', after: 10 })), 'PEER_PROTOCOL', 'not a frame')
    })

    it('maps transport failures to PEER_UNREACHABLE and error pages by status', async () => {
      const dead = await rawServer((_req, res) => { res.writeHead(200, { 'content-length': 1000 }); res.write('partial'); setImmediate(() => res.destroy()) })
      assert.equal(await codeOf(dead.info()), 'PEER_UNREACHABLE', 'connection dropped mid-body')
      const silent = await rawServer(() => { /* never answers */ }, { timeoutMs: 300 })
      const t = Date.now()
      const err = await errOf(silent.info())
      assert.equal(err?.code, 'PEER_UNREACHABLE')
      assert.equal(err?.details?.timeoutMs, 300)
      assert.ok(Date.now() - t < 5_000)
      const page = await rawServer((_req, res) => { res.writeHead(503, { 'content-type': 'text/html' }); res.end('<h1>down</h1>') })
      assert.equal(await codeOf(page.info()), 'PEER_UNREACHABLE', 'a proxy saying the primary is down')
      const teapot = await rawServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('hello') })
      assert.equal(await codeOf(teapot.info()), 'PEER_PROTOCOL', 'not JSON')

      const port = await new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)) })
      })
      const refused = new PrimaryClient(`http://127.0.0.1:${port}`, { token: 'x'.repeat(43) })
      defer(() => refused.close())
      const e = await errOf(refused.info())
      assert.equal(e?.code, 'PEER_UNREACHABLE')
      assert.ok(e?.cause, 'the cause is kept')
    })

    it('streams a rotated region body to the sink at the right offsets, and passes sink errors through', async () => {
      const region = pattern(5, 1000)
      const start = 4096
      const first = start + 300
      const rotated = Buffer.concat([region.subarray(300), region.subarray(0, 300)])
      const c = await rawServer((_req, res) => {
        res.writeHead(200, {
          'content-type': 'application/octet-stream', 'content-length': rotated.length,
          'x-volmirror-as-of': 7, 'x-volmirror-size': 5096, 'x-volmirror-region-start': start, 'x-volmirror-region-end': start + 1000, 'x-volmirror-first': first,
        })
        res.end(rotated) // one write: the client must split it at the wrap point
      })
      const got = Buffer.alloc(1000)
      const calls: number[] = []
      let began: number[] = []
      await c.fetchRegion('v.raw', 1, { begin: (a, s) => { began = [a, s] }, data: (o, chunk) => { calls.push(o); Buffer.from(chunk).copy(got, o - start) } }, { first })
      assert.deepEqual(began, [7, 5096])
      assert.equal(calls[0], first)
      assert.ok(calls.includes(start), 'the wrapped part arrives at the region start')
      assert.deepEqual(got, region)
      const boom = new Error('sink full')
      await assert.rejects(c.fetchRegion('v.raw', 1, { begin: () => {}, data: () => { throw boom } }, { first }), (e: unknown) => e === boom)
    })

    it('reads the region trailers: the CRC goes to the sink\'s end, REGION_CHANGED ends the fetch with that code', async () => {
      const region = pattern(6, 1000)
      const headers = {
        'content-type': 'application/octet-stream', trailer: 'x-volmirror-crc32, x-volmirror-error',
        'x-volmirror-as-of': 7, 'x-volmirror-size': 1000, 'x-volmirror-region-start': 0, 'x-volmirror-region-end': 1000, 'x-volmirror-first': 0,
      }
      let changed = false
      const c = await rawServer((_req, res) => {
        res.writeHead(200, headers)
        if (changed) {
          res.write(region.subarray(0, 100))
          res.addTrailers({ 'x-volmirror-error': 'REGION_CHANGED' })
        } else {
          res.write(region)
          res.addTrailers({ 'x-volmirror-crc32': 12345 })
        }
        res.end()
      })
      let crc: number | undefined
      await c.fetchRegion('v.raw', 0, { begin: () => {}, data: () => {}, end: (sum) => { crc = sum } })
      assert.equal(crc, 12345)
      changed = true
      let ended = false
      assert.equal(await codeOf(c.fetchRegion('v.raw', 0, { begin: () => {}, data: () => {}, end: () => { ended = true } })), 'REGION_CHANGED')
      assert.equal(ended, false, 'a body cut short never ends')
    })
  })

  it('serves HTTPS with a private CA; a client without the CA refuses to talk', async () => {
    const ca = await makeTestCa()
    const h = await edge({ server: { tls: { cert: ca.cert, key: ca.key } } })
    assert.match(h.url, /^https:/)
    const trusting = new PrimaryClient(h.url, { token: h.token, ca: ca.ca })
    defer(() => trusting.close())
    assert.equal((await trusting.info()).regionSize, RS)
    assert.deepEqual((await trusting.readRange('vm1.raw', 100, 50)).data, VM1.subarray(100, 150))
    const r = await curl(['--cacert', ca.ca, '-H', `Authorization: Bearer ${h.token}`, '-r', '0-99', `${h.url}/v1/volumes/vm1.raw`])
    assert.equal(r.status, 206)
    assert.deepEqual(r.body, VM1.subarray(0, 100))

    // h.client was made without the CA.
    const err = await errOf(h.client.info())
    assert.equal(err?.code, 'PEER_UNREACHABLE')
    assert.match(String(err?.details?.cause), /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/)
  })
})
