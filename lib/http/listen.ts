/**
 * listen: creating and binding a node's HTTP(S) server, shared by the
 * primary's server (lib/http/server.ts) and a DR's observability server.
 *
 * TLS is Node's own (`https.createServer`, TLS 1.2 at least) from PEM files
 * given by path; a file that cannot be read or a port that cannot be bound
 * is an error with a stable code and the reason, never a crash.
 */
import http from 'node:http'
import https from 'node:https'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { VolmirrorError } from '../errors.js'

/** TlsFiles are a certificate and its key, as paths or PEM bytes. */
export interface TlsFiles { cert: string | Buffer, key: string | Buffer }

/** createHttpServer makes an HTTPS server when `tls` is given, else an HTTP one. */
export async function createHttpServer (base: http.ServerOptions, tls: TlsFiles | undefined, handler: http.RequestListener): Promise<http.Server> {
  if (!tls) return http.createServer(base, handler)
  return https.createServer({ ...base, cert: await pem(tls.cert, 'certificate'), key: await pem(tls.key, 'key'), minVersion: 'TLSv1.2' }, handler)
}

/** bind listens on `host:port` (0 picks a free port) and resolves with the bound address. */
export async function bind (server: http.Server, host: string, port: number): Promise<{ host: string, port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  }).catch((err: unknown) => {
    throw new VolmirrorError('IO_ERROR', `cannot listen on ${host}:${port}: ${(err as Error).message}`, { cause: err })
  })
  const a = server.address() as AddressInfo
  return { host: a.address, port: a.port }
}

/** baseUrl is how peers address a bound server. */
export function baseUrl (bound: { host: string, port: number }, tls: boolean): string {
  const { host, port } = bound
  return `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`
}

async function pem (v: string | Buffer, what: string): Promise<Buffer> {
  if (Buffer.isBuffer(v)) return v
  try {
    return await readFile(v)
  } catch (err) {
    throw new VolmirrorError('INVALID_ARGUMENT', `cannot read the TLS ${what} ${v}: ${(err as Error).message}`, { cause: err })
  }
}
