/**
 * archive: the journal archive against plain uploads and downloads of the
 * same bytes with the AWS SDK, into the same S3 protocol server (s3rver,
 * a process of its own, objects on the bench disk) (issue 12).
 *
 *   - base snapshot: a primary starts with --archive on a volume full of
 *     random data; time from its start until the first base is in the
 *     store; peer: the same bytes put as 8 MiB objects, 10 at a time
 *     (what `aws s3 cp` does by default: 8 MiB parts, 10 requests at once);
 *   - journal: dd writes as much again through the primary's mount at
 *     full speed; time from dd's start until the archive holds every
 *     record; peer: the same bytes put as 16 MiB objects one at a time
 *     (the archive's chunk size, uploaded as it does);
 *   - restore: `volmirror restore` of the latest point (a process) vs
 *     downloading every object it reads (GetObject, 8 at a time, to files).
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { eachLimited } from '../lib/core/each-limited.js'
import { runOk } from './lib/exec.js'
import { writeSparseImage } from './lib/images.js'
import { BenchS3 } from './lib/s3rver.js'
import { firstLine, fmt, Samples } from './lib/samples.js'
import type { BenchContext, Benchmark, MetricResult } from './lib/types.js'
import { nodeDirs, startPrimary, type VmPrimary, waitFor } from './lib/volmirror-nodes.js'

const FULL = { mib: 512 }
const QUICK = { mib: 64 }
const NAME = 'vm.raw'
const MiB = 2 ** 20

function client (s3: BenchS3): S3Client {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  return new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' })
}

/** plainUpload puts `file` as objects of `part` bytes, `parallel` at a time (seconds). */
async function plainUpload (c: S3Client, bucket: string, prefix: string, file: string, part: number, parallel: number): Promise<number> {
  const data = await readFile(file)
  const parts = Array.from({ length: Math.ceil(data.length / part) }, (_, i) => i)
  const t0 = performance.now()
  await eachLimited(parts, parallel, async i => {
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/part-${i}`, Body: data.subarray(i * part, (i + 1) * part) }))
  })
  return (performance.now() - t0) / 1000
}

/** plainDownload gets every object under `prefix`, 8 at a time, into files (seconds, bytes). */
async function plainDownload (c: S3Client, bucket: string, prefix: string, dir: string): Promise<{ seconds: number, bytes: number }> {
  await mkdir(dir, { recursive: true })
  const t0 = performance.now()
  const keys: string[] = []
  let token: string | undefined
  do {
    const r = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix + '/', ...(token ? { ContinuationToken: token } : {}) }))
    for (const o of r.Contents ?? []) if (o.Key) keys.push(o.Key)
    token = r.IsTruncated ? r.NextContinuationToken : undefined
  } while (token)
  let bytes = 0
  await eachLimited(keys, 8, async k => {
    const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: k }))
    const body = await r.Body!.transformToByteArray()
    bytes += body.length
    await writeFile(path.join(dir, k.replace(/\//g, '_')), body)
  })
  return { seconds: (performance.now() - t0) / 1000, bytes }
}

async function archiveStatus (p: VmPrimary): Promise<NonNullable<Awaited<ReturnType<VmPrimary['status']>>['archive']>> {
  const a = (await p.status()).archive
  if (!a) throw new Error('the primary has no archive')
  return a
}

interface Round { base: number, journal: number, restore: number, plainBase: number, plainJournal: number, download: number, downloaded: number }

async function round (ctx: BenchContext, s3: BenchS3, c: S3Client, mib: number, images: string, journalSource: string, r: number): Promise<Round> {
  const prefix = `run-${r}`
  const dir = path.join(ctx.scratch, `run-${r}`)
  const url = `s3://${s3.bucket}/${prefix}`
  const t0 = performance.now()
  const primary = await startPrimary(nodeDirs(dir, path.join(dir, 'primary.log'), images), {
    app: ctx.app, cleanup: ctx.cleanup,
    args: ['--archive', url, '--archive-endpoint', s3.endpoint, '--archive-every', '1s', '--journal-limit', `${4 * mib}M`],
    ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}),
  })
  let base: number, journal: number
  try {
    await waitFor('the first base', async () => (await archiveStatus(primary)).bases >= 1, 600_000, 50)
    base = (performance.now() - t0) / 1000
    const t1 = performance.now()
    await runOk('dd', [`if=${journalSource}`, `of=${path.join(primary.dirs.mnt, NAME)}`, 'bs=1M', 'conv=notrunc'], { timeoutMs: 600_000 })
    const last = (await primary.status()).seq.last
    await waitFor('the archive to hold every record', async () => (await archiveStatus(primary)).archivedSeq >= last, 600_000, 50)
    journal = (performance.now() - t1) / 1000
  } finally {
    await primary.stop()
  }
  const restored = path.join(dir, 'restored')
  const t2 = performance.now()
  await runOk(process.execPath, [path.join(ctx.app, 'bin', 'volmirror.js'), 'restore', '--archive', url, '--archive-endpoint', s3.endpoint, '--images', restored, '--json'],
    { timeoutMs: 600_000, env: s3.env })
  const restore = (performance.now() - t2) / 1000
  await rm(restored, { recursive: true, force: true })
  const dl = await plainDownload(c, s3.bucket, prefix, path.join(dir, 'download'))
  await rm(path.join(dir, 'download'), { recursive: true, force: true })
  const plainBase = await plainUpload(c, s3.bucket, `plain-${r}/base`, path.join(images, NAME), 8 * MiB, 10)
  const plainJournal = await plainUpload(c, s3.bucket, `plain-${r}/journal`, journalSource, 16 * MiB, 1)
  await rm(dir, { recursive: true, force: true })
  return { base, journal, restore, plainBase, plainJournal, download: dl.seconds, downloaded: dl.bytes }
}

/** archiveBench is the `archive` benchmark. */
export const archiveBench: Benchmark = {
  name: 'archive',
  description: 'journal archive: base snapshot and journal upload vs plain SDK uploads of the same bytes; restore vs downloading the same objects (s3rver)',
  async run (ctx) {
    const { mib } = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    const s3 = await BenchS3.start(ctx.app, path.join(ctx.scratch, 's3'), ctx.cleanup)
    Object.assign(process.env, s3.env)
    const c = client(s3)
    const images = path.join(ctx.scratch, 'images')
    await mkdir(images, { recursive: true })
    const journalSource = path.join(ctx.scratch, 'journal.src')
    await writeSparseImage(journalSource, mib * MiB, MiB, 1, 11)
    ctx.progress(`archive: ${mib} MiB of random data in the base, as much again through the journal, ${ctx.runs} run(s)`)
    try {
      for (let r = 0; r < ctx.runs; r++) {
        await writeSparseImage(path.join(images, NAME), mib * MiB, MiB, 1, 7 + r)
        try {
          const x = await round(ctx, s3, c, mib, images, journalSource, r)
          for (const [k, v] of Object.entries(x)) samples.add('archive', k, v)
          ctx.progress(`  base ${fmt(x.base)} s (plain ${fmt(x.plainBase)} s), journal ${fmt(x.journal)} s (plain ${fmt(x.plainJournal)} s), restore ${fmt(x.restore)} s (download ${fmt(x.download)} s of ${fmt(x.downloaded / MiB)} MiB)`)
        } catch (err) {
          for (const k of ['base', 'journal', 'restore', 'plainBase', 'plainJournal', 'download']) samples.add('archive', k, NaN, `failed: ${firstLine(err)}`)
          ctx.progress(`  FAILED: ${firstLine(err)}`)
        }
      }
    } finally {
      c.destroy()
      await s3.stop()
    }
    const f = (k: string): ReturnType<Samples['figure']> => samples.figure('archive', k)
    const out: MetricResult[] = [
      {
        metric: `archive: first base snapshot of ${mib} MiB (random) in the store`,
        unit: 's', better: 'lower', volmirror: f('base'),
        comparisons: [{ name: 'SDK PutObject, 8 MiB objects, 10 at once (aws s3 cp\'s defaults)', role: 'peer', figure: f('plainBase') }],
        note: 'volmirror: from the primary\'s start (--archive) to the base in the store: 1 MiB region objects, zstd, 8 at once',
        command: 'volmirror primary ... --archive s3://BUCKET/run-N --archive-endpoint http://127.0.0.1:PORT (s3rver)',
      },
      {
        metric: `archive: ${mib} MiB written at full speed (dd bs=1M), all in the store`,
        unit: 's', better: 'lower', volmirror: f('journal'),
        comparisons: [{ name: 'SDK PutObject of the same bytes, 16 MiB objects, one at a time', role: 'peer', figure: f('plainJournal') }],
        note: 'volmirror: from dd\'s start to archivedSeq = last seq (chunks of 16 MiB or 1 s, zstd, SHA-256)',
      },
      {
        metric: `restore: latest point of ${mib} MiB base + ${mib} MiB journal`,
        unit: 's', better: 'lower', volmirror: f('restore'),
        comparisons: [{ name: 'downloading every object it reads (GetObject, 8 at once, to files)', role: 'peer', figure: f('download') }],
        command: 'volmirror restore --archive s3://BUCKET/run-N --archive-endpoint URL --images DIR',
      },
    ]
    return out
  },
}
