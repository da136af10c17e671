/**
 * object-store: the archive's objects in an S3-compatible store (AWS S3,
 * Ceph RGW, MinIO, R2, ...), through the official AWS SDK for JavaScript v3.
 *
 * Where and who, the standard AWS way: credentials and region from the
 * environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
 * `AWS_PROFILE`) or the shared config files (`~/.aws/credentials`,
 * `~/.aws/config`); `--archive-endpoint URL` for a store that is not AWS
 * (path-style addressing then, which every S3-compatible server takes).
 *
 * Every call has a timeout; a failure is ARCHIVE_UNREACHABLE with what the
 * store said, NOT_FOUND for a missing object or bucket, UNAUTHORIZED for
 * missing or refused credentials. Retrying is the caller's
 * business (the archiver backs off; a restore retries a few times).
 */
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { VolmirrorError } from '../errors.js'

/** ArchiveUrl is a parsed `s3://bucket/prefix`. */
export interface ArchiveUrl { bucket: string, prefix: string }

/** parseArchiveUrl reads `s3://bucket[/prefix]` (INVALID_ARGUMENT with an example otherwise). */
export function parseArchiveUrl (s: string): ArchiveUrl {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(s)
  if (!m) throw new VolmirrorError('INVALID_ARGUMENT', `--archive: not an S3 URL: ${JSON.stringify(s)} (expected s3://BUCKET/PREFIX, e.g. s3://backups/volmirror/site-a)`)
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '')
  if (prefix.split('/').some(p => p === '..' || p === '.')) throw new VolmirrorError('INVALID_ARGUMENT', `--archive: the prefix may not hold "." or ".." parts: ${s}`)
  return { bucket: m[1]!, prefix: prefix === '' ? '' : prefix + '/' }
}

/** ObjectStoreOptions: where the store is, when it is not AWS. */
export interface ObjectStoreOptions {
  endpoint?: string
  region?: string
  /** Per call (ms). */
  timeoutMs?: number
}

/** StoredObject is one listed object (key relative to the prefix). */
export interface StoredObject { key: string, size: number }

/** ObjectStore reads and writes the objects under one archive's prefix. */
export class ObjectStore {
  private readonly s3: S3Client
  readonly url: string

  constructor (readonly where: ArchiveUrl, opts: ObjectStoreOptions = {}) {
    // The SDK warns on every start that its releases after January 2027
    // need Node 22; the version the lockfile pins runs on Node 20 (README).
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    this.url = `s3://${where.bucket}/${where.prefix}`
    const timeout = opts.timeoutMs ?? 60_000
    this.s3 = new S3Client({
      ...(opts.endpoint ? { endpoint: opts.endpoint, forcePathStyle: true } : {}),
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      // Our objects carry their own SHA-256; the SDK's default trailing
      // checksums are not understood by every S3-compatible server.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 2,
      requestHandler: { connectionTimeout: Math.min(timeout, 10_000), requestTimeout: timeout },
    })
  }

  async put (key: string, body: Uint8Array): Promise<void> {
    await this.call(`put ${key}`, () => this.s3.send(new PutObjectCommand({ Bucket: this.where.bucket, Key: this.where.prefix + key, Body: body })))
  }

  async get (key: string): Promise<Buffer> {
    return await this.call(`get ${key}`, async () => {
      const r = await this.s3.send(new GetObjectCommand({ Bucket: this.where.bucket, Key: this.where.prefix + key }))
      return Buffer.from(await r.Body!.transformToByteArray())
    })
  }

  /** list lists the objects under `sub` (e.g. 'journal/'), every page. */
  async list (sub: string): Promise<StoredObject[]> {
    const out: StoredObject[] = []
    let token: string | undefined
    do {
      const r = await this.call(`list ${sub}`, () => this.s3.send(new ListObjectsV2Command({
        Bucket: this.where.bucket, Prefix: this.where.prefix + sub, ...(token ? { ContinuationToken: token } : {}),
      })))
      for (const o of r.Contents ?? []) {
        if (o.Key) out.push({ key: o.Key.slice(this.where.prefix.length), size: o.Size ?? 0 })
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined
    } while (token)
    return out
  }

  /** delete removes objects, a thousand per call. */
  async delete (keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000)
      const r = await this.call('delete', () => this.s3.send(new DeleteObjectsCommand({
        Bucket: this.where.bucket, Delete: { Objects: batch.map(k => ({ Key: this.where.prefix + k })), Quiet: true },
      })))
      if (r.Errors && r.Errors.length > 0) throw new VolmirrorError('ARCHIVE_UNREACHABLE', `${this.url}: could not delete ${r.Errors.length} objects: ${r.Errors[0]!.Code ?? ''} ${r.Errors[0]!.Message ?? ''}`)
    }
  }

  close (): void {
    this.s3.destroy()
  }

  private async call<T> (what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      const e = err as { name?: string, message?: string, $metadata?: { httpStatusCode?: number } }
      if (e.name === 'NoSuchBucket') throw new VolmirrorError('NOT_FOUND', `${this.url}: no bucket ${JSON.stringify(this.where.bucket)} on this store (create it first)`, { cause: err })
      if (e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) throw new VolmirrorError('NOT_FOUND', `${this.url}: ${what}: no such object`, { cause: err })
      // Not a failure that time fixes: said at once, never retried.
      if (e.name === 'CredentialsProviderError') {
        throw new VolmirrorError('UNAUTHORIZED', `${this.url}: no credentials for the store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials`, { cause: err })
      }
      if (e.$metadata?.httpStatusCode === 403 || e.name === 'InvalidAccessKeyId' || e.name === 'SignatureDoesNotMatch' || e.name === 'AccessDenied') {
        throw new VolmirrorError('UNAUTHORIZED', `${this.url}: ${what}: the store refused the credentials (${e.name ?? 'HTTP 403'}): check the key and its permissions on the bucket`, { cause: err })
      }
      const status = e.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : ''
      throw new VolmirrorError('ARCHIVE_UNREACHABLE', `${this.url}: ${what}: ${e.name ?? 'Error'}: ${e.message ?? String(err)}${status}`, { cause: err })
    }
  }
}
