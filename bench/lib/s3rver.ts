/**
 * s3rver: the S3 protocol server the archive benchmark stores into
 * (s3rver from npm, a process of its own, objects on the bench disk), with
 * the credentials it takes. `stop` kills it; `start` brings it back on the
 * same port and data.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import type { Cleanup } from './cleanup.js'
import { accepts, freePort } from './ports.js'
import { waitFor } from './volmirror-nodes.js'

export class BenchS3 {
  private child: ChildProcess | undefined
  private exited: Promise<void> | undefined
  readonly env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' }

  private constructor (private readonly app: string, readonly dir: string, readonly port: number, readonly bucket: string) {}

  get endpoint (): string { return `http://127.0.0.1:${this.port}` }

  static async start (app: string, dir: string, cleanup: Cleanup, bucket = 'volmirror-bench'): Promise<BenchS3> {
    await mkdir(dir, { recursive: true })
    const s = new BenchS3(app, dir, await freePort(), bucket)
    cleanup.add('s3rver', () => s.stop())
    await s.start()
    return s
  }

  async start (): Promise<void> {
    if (this.child) return
    const bin = path.join(this.app, 'node_modules', 's3rver', 'bin', 's3rver.js')
    const child = this.child = spawn(process.execPath, [bin, '-d', this.dir, '-a', '127.0.0.1', '-p', String(this.port), '--configure-bucket', this.bucket, '-s'], { stdio: 'ignore' })
    this.exited = new Promise(resolve => child.on('exit', () => resolve()))
    await waitFor('s3rver to listen', () => accepts(this.port), 20_000, 50)
  }

  async stop (): Promise<void> {
    if (!this.child) return
    this.child.kill('SIGKILL')
    await this.exited
    this.child = undefined
  }
}
