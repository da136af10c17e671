/**
 * The test TCP proxy (test/helpers/tcp-proxy.ts) against an echo server on
 * 127.0.0.1: it forwards and counts bytes each way, cut closes connections
 * and refuses new ones, stall holds bytes until restore.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { defer } from '../helpers/cleanup.js'
import { startProxy } from '../helpers/tcp-proxy.js'
import { waitFor } from '../helpers/wait.js'

/** echoServer answers every byte with itself and records when bytes arrived. */
async function echoServer (): Promise<{ port: number, arrivals: number[] }> {
  const arrivals: number[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer(s => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => {})
    s.on('data', c => { arrivals.push(Date.now()); s.write(c) })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  defer(async () => {
    for (const s of sockets) s.destroy()
    await new Promise(resolve => server.close(resolve))
  })
  return { port: (server.address() as net.AddressInfo).port, arrivals }
}

/** client connects to `port` and collects what comes back, and whether it was closed. */
async function client (port: number): Promise<{ socket: net.Socket, got: () => number, closed: () => boolean }> {
  const socket = net.connect(port, '127.0.0.1')
  let n = 0
  let closed = false
  socket.on('data', c => { n += c.length })
  socket.on('error', () => {})
  socket.on('close', () => { closed = true })
  defer(() => socket.destroy())
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  return { socket, got: () => n, closed: () => closed }
}

describe('test TCP proxy', () => {
  it('forwards and counts bytes each way', async () => {
    const echo = await echoServer()
    const proxy = await startProxy(`127.0.0.1:${echo.port}`)
    const c = await client(proxy.port)
    c.socket.write(Buffer.alloc(100_000, 1))
    await waitFor('the echo', () => c.got() === 100_000)
    assert.deepEqual(proxy.bytes, { toTarget: 100_000, fromTarget: 100_000 })
    assert.equal(proxy.connections, 1)
  })

  it('cut closes connections and closes new ones at once; restore accepts again', async () => {
    const echo = await echoServer()
    const proxy = await startProxy(`http://127.0.0.1:${echo.port}`)
    const c = await client(proxy.port)
    proxy.cut()
    await waitFor('the connection to be closed', () => c.closed())
    const d = net.connect(proxy.port, '127.0.0.1')
    d.on('error', () => {})
    await new Promise(resolve => d.on('close', resolve))
    assert.equal(proxy.counters.refused, 1)
    proxy.restore()
    const e = await client(proxy.port)
    e.socket.write('hello')
    await waitFor('the echo after restore', () => e.got() === 5)
  })

  it('stall holds bytes (of old and new connections) until restore', async () => {
    const echo = await echoServer()
    const proxy = await startProxy(`127.0.0.1:${echo.port}`)
    const c = await client(proxy.port)
    c.socket.write('a')
    await waitFor('the first echo', () => c.got() === 1)
    proxy.stall()
    c.socket.write('bb')
    const d = await client(proxy.port) // accepted, not connected onwards
    d.socket.write('ccc')
    // Let the bytes reach the proxy (counted only when forwarded: none yet).
    await waitFor('the proxy to hold both connections', () => proxy.connections === 2)
    const restoredAt = Date.now()
    assert.deepEqual(proxy.bytes, { toTarget: 1, fromTarget: 1 })
    proxy.restore()
    await waitFor('both echoes after restore', () => c.got() === 3 && d.got() === 3)
    assert.ok(echo.arrivals.slice(1).every(t => t >= restoredAt), 'nothing reached the server during the stall')
    assert.deepEqual(proxy.bytes, { toTarget: 6, fromTarget: 6 })
  })

  it('shape adds half the RTT each way and caps the bandwidth, keeping the order of the bytes', async () => {
    const echo = await echoServer()
    const proxy = await startProxy(`127.0.0.1:${echo.port}`)
    const c = await client(proxy.port)
    proxy.shape({ rttMs: 40 })
    let t0 = performance.now()
    c.socket.write('x')
    await waitFor('the echo', () => c.got() === 1, 5000, 1)
    const rtt = performance.now() - t0
    assert.ok(rtt >= 38 && rtt < 200, `one round trip took ${rtt.toFixed(1)} ms with 40 ms added`)
    proxy.shape({ bytesPerSecond: 2_000_000 })
    const got: Buffer[] = []
    c.socket.on('data', b => got.push(b))
    const payload = Buffer.from(Array.from({ length: 400_000 }, (_, i) => i % 251))
    t0 = performance.now()
    c.socket.write(payload)
    await waitFor('the echo of 400 kB', () => c.got() === 1 + payload.length, 10_000, 5)
    const ms = performance.now() - t0
    assert.ok(ms >= 190 && ms < 2000, `400 kB each way at 2 MB/s took ${ms.toFixed(0)} ms (at least 200 ms)`)
    assert.ok(Buffer.concat(got).equals(payload), 'in order, unchanged')
  })
})
