/**
 * s3-server: a real S3 protocol server for the archive tests, started as a
 * process of its own: s3rver (npm), storing objects in a directory, with
 * one bucket. `stop()` kills it (the store going away, as a crash or a
 * network cut would); `start()` brings it back on the same port and data.
 *
 * s3rver takes any well-formed signature with the access key S3RVER and
 * the secret S3RVER: `env` holds them for the node processes.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { defer, trackPid, untrackPid } from './cleanup.js'
import { freePort } from './mirror.js'
import { ROOT } from './proc.js'
import { tmpDir } from './tmp.js'
import { waitFor } from './wait.js'

const S3RVER = path.join(ROOT, 'node_modules', 's3rver', 'bin', 's3rver.js')

export class S3Server {
  private child: ChildProcess | undefined
  private exited: Promise<void> | undefined
  /** The credentials (and the warning switch) a process that reaches it needs. */
  readonly env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' }

  private constructor (readonly dir: string, readonly port: number, readonly bucket: string) {}

  get endpoint (): string { return `http://127.0.0.1:${this.port}` }

  /** start starts a server with one bucket; teardown kills it even if the test fails. */
  static async start (bucket = 'volmirror-test'): Promise<S3Server> {
    const s = new S3Server(await tmpDir('s3'), await freePort(), bucket)
    defer(() => s.stop())
    await s.start()
    return s
  }

  /** start (again) on the same port and data directory, once it answers. */
  async start (): Promise<void> {
    if (this.child) return
    const child = this.child = spawn(process.execPath, [S3RVER, '-d', this.dir, '-a', '127.0.0.1', '-p', String(this.port), '--configure-bucket', this.bucket, '-s'], { stdio: 'ignore' })
    trackPid(child.pid)
    this.exited = new Promise(resolve => child.on('exit', () => { untrackPid(child.pid); resolve() }))
    await waitFor('the S3 server to listen', () => new Promise<boolean>(resolve => {
      const c = net.connect(this.port, '127.0.0.1', () => { c.destroy(); resolve(true) })
      c.on('error', () => resolve(false))
    }), 20_000, 50)
  }

  /** stop kills the server at once (SIGKILL). */
  async stop (): Promise<void> {
    if (!this.child) return
    this.child.kill('SIGKILL')
    await this.exited
    this.child = undefined
  }
}
