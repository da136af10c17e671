/**
 * http: a primary behind its HTTP server in one line, and the raw tools
 * that talk to it the way outsiders do (node:http with exact request
 * targets, curl, a throwaway TLS CA made by openssl).
 */
import http from 'node:http'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { PrimaryClient, type PrimaryClientOptions } from '../../lib/http/client.js'
import { ensureToken } from '../../lib/http/auth.js'
import { PrimaryHttpServer, type PrimaryHttpServerOptions } from '../../lib/http/server.js'
import type { PrimaryOptions } from '../../lib/node/primary-node.js'
import { defer } from './cleanup.js'
import { captureLog, startPrimary, type LogEvent, type TestPrimary } from './primary.js'
import { runOk } from './proc.js'
import { tmpDir } from './tmp.js'

/** HttpPrimary is a running primary, its HTTP server, and a client of it. */
export interface HttpPrimary {
  p: TestPrimary
  server: PrimaryHttpServer
  client: PrimaryClient
  token: string
  tokenFile: string
  url: string
  /** What the HTTP server logged. */
  serverEvents: LogEvent[]
}

/** startHttpPrimary starts a primary (see startPrimary) and serves it on 127.0.0.1, port 0; teardown closes both. */
export async function startHttpPrimary (opts: {
  primary?: Partial<PrimaryOptions> & { root?: string }
  server?: Partial<PrimaryHttpServerOptions>
  client?: Partial<PrimaryClientOptions>
} = {}): Promise<HttpPrimary> {
  const p = await startPrimary(opts.primary)
  const tokenFile = path.join(p.root, 'peer.token')
  const token = await ensureToken(tokenFile)
  const { log, events } = captureLog()
  const server = new PrimaryHttpServer(p.node.source, { token, log, ...opts.server })
  await server.listen('127.0.0.1', 0)
  defer(() => server.close())
  const client = new PrimaryClient(server.url, { token, ...opts.client })
  defer(() => client.close())
  return { p, server, client, token, tokenFile, url: server.url, serverEvents: events }
}

/** RawReply is a whole HTTP reply. */
export interface RawReply {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

/**
 * rawRequest sends one request with exactly the given target (no URL
 * normalisation, so `..` and `%2F` reach the server as written) on a fresh
 * connection. `chunked` sends the body without a Content-Length.
 */
export function rawRequest (url: string, target: string, o: { method?: string, headers?: Record<string, string>, body?: string | Buffer, chunked?: boolean } = {}): Promise<RawReply> {
  const u = new URL(url)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method: o.method ?? 'GET', path: target, headers: o.headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (o.body !== undefined && !o.chunked) req.setHeader('content-length', Buffer.byteLength(o.body))
    req.end(o.body)
  })
}

/** CurlReply is what curl fetched: status, headers (lower-case names), body. */
export interface CurlReply { status: number, headers: Record<string, string>, body: Buffer }

/** curl runs curl with `args` (plus output capture) in a child process. */
export async function curl (args: string[]): Promise<CurlReply> {
  const dir = await tmpDir('curl')
  const out = path.join(dir, 'body')
  const hdr = path.join(dir, 'headers')
  await writeFile(out, '')
  const r = await runOk('curl', ['-sS', '-o', out, '-D', hdr, '-w', '%{http_code}', ...args], { timeoutMs: 30_000 })
  const headers: Record<string, string> = {}
  for (const line of (await readFile(hdr, 'utf8')).split('\r\n')) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim()
  }
  return { status: Number(r.stdout.trim()), headers, body: await readFile(out) }
}

/** TestCa is a throwaway CA and a server certificate for 127.0.0.1 it signed (PEM files). */
export interface TestCa { ca: string, cert: string, key: string }

/** makeTestCa has openssl make a CA and a certificate for IP 127.0.0.1 in a fresh directory. */
export async function makeTestCa (): Promise<TestCa> {
  const dir = await tmpDir('ca')
  const f = (n: string): string => path.join(dir, n)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await runOk('openssl', ['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-subj', '/CN=volmirror test CA', '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  await runOk('openssl', ['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1'])
  await writeFile(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n')
  await runOk('openssl', ['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-out', f('server.crt'), '-days', '2', '-extfile', f('ext.cnf')])
  return { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') }
}
