/**
 * Journal archive (primary process, real S3 protocol server process, the
 * restore CLI as a process of its own):
 *
 *   - archives while writing: restores at three past moments (writes,
 *     a new volume, a rename, a truncate in between) hold every volume
 *     sha256-equal to what the primary's mount showed then; a second base
 *     uploads only the regions that changed;
 *   - the store going away and coming back loses nothing: writers never
 *     wait, status says the store is failing, a moment inside the outage
 *     is restorable afterwards; past the journal limit the archive says
 *     there is a gap and closes it with a new base;
 *   - retention deletes old bases, chunks and unreferenced regions, and
 *     the latest point stays restorable.
 */
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import path from 'node:path'
import type { ArchiveListing, RestoreResult } from '../../lib/archive/restore.js'
import type { PrimaryStatus } from '../../lib/node/primary-node.js'
import { defer } from '../helpers/cleanup.js'
import { fsops } from '../helpers/fsop.js'
import { MiB } from '../helpers/mirror.js'
import { startPair, type Pair } from '../helpers/pair.js'
import { pattern } from '../helpers/pattern.js'
import { cli } from '../helpers/proc.js'
import { S3Server } from '../helpers/s3-server.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

const PREFIX = 'site-a'

/** useStore points the node processes started from here at `s3` (credentials in the environment, the AWS way). */
function useStore (s3: S3Server): void {
  const saved = { ...process.env }
  Object.assign(process.env, s3.env)
  defer(() => { for (const k of Object.keys(s3.env)) { if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k] } })
}

function archiveArgs (s3: S3Server, extra: string[] = []): string[] {
  return ['--archive', `s3://${s3.bucket}/${PREFIX}`, '--archive-endpoint', s3.endpoint, '--archive-every', '300ms', ...extra]
}

function storeArgs (s3: S3Server): string[] {
  return ['--archive', `s3://${s3.bucket}/${PREFIX}`, '--archive-endpoint', s3.endpoint]
}

/** hashes reads every volume through the primary's mount (a child process) and returns name -> sha256. */
async function hashes (mnt: string, names: string[]): Promise<Map<string, string>> {
  const r = await fsops(names.map(n => ({ op: 'hash', path: path.join(mnt, n) })))
  return new Map(names.map((n, i) => [n, r[i]!.sha256 as string]))
}

/** hashDir hashes every file of a restored directory. */
async function hashDir (dir: string): Promise<Map<string, string>> {
  const names = (await readdir(dir)).sort()
  const r = await fsops(names.map(n => ({ op: 'hash', path: path.join(dir, n) })))
  return new Map(names.map((n, i) => [n, r[i]!.sha256 as string]))
}

/** archived waits until the archive holds every record the primary journaled (and returns the primary's status). */
async function archived (pair: Pair, timeoutMs = 30_000): Promise<PrimaryStatus> {
  return await waitFor('the archive to hold every record', async () => {
    const s = await pair.primaryStatus()
    return s.archive && s.archive.state === 'ok' && s.archive.archivedSeq >= s.seq.last ? s : undefined
  }, timeoutMs, 50)
}

/** moment records what the volumes are now, once archived, and the time that names it. */
async function moment (pair: Pair, names: string[]): Promise<{ at: string, seq: number, sums: Map<string, string> }> {
  const s = await archived(pair)
  const sums = await hashes(pair.dirs.mnt, names)
  return { at: new Date().toISOString(), seq: s.seq.last, sums }
}

async function restoreAt (s3: S3Server, at: string | undefined): Promise<{ dir: string, result: RestoreResult }> {
  const dir = path.join(await tmpDir('restore'), 'images')
  const r = await cli(['restore', ...storeArgs(s3), ...(at ? ['--at', at] : []), '--images', dir, '--json'], { timeoutMs: 120_000 })
  assert.equal(r.code, 0, `restore failed: ${r.stderr}`)
  return { dir, result: JSON.parse(r.stdout) as RestoreResult }
}

async function listing (s3: S3Server): Promise<ArchiveListing> {
  const r = await cli(['archive', 'ls', ...storeArgs(s3), '--json'])
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as ArchiveListing
}

const write = (p: string, offset: number, seed: number, length = 64 * 1024): Record<string, unknown> & { op: string } => ({ op: 'write', path: p, offset, seed, length })

describe('journal archive on an S3 protocol server (processes)', function () {
  this.timeout(4 * 60_000)

  it('archives while writing; restores at three past moments equal what the mount showed; a new base uploads only changed regions', async () => {
    const s3 = await S3Server.start()
    useStore(s3)
    const pair = await startPair({
      images: { 'a.raw': pattern(1, 8 * MiB), 'b.raw': Buffer.alloc(4 * MiB) },
      dr: false,
      primaryArgs: archiveArgs(s3, ['--archive-base-every', '3s']),
    })
    const m = (n: string): string => path.join(pair.dirs.mnt, n)
    await waitFor('the first base', async () => ((await pair.primaryStatus()).archive?.bases ?? 0) >= 1, 30_000, 50)

    // Regions 0 and 1 of a.raw only: the other six stay as the first base has them.
    await fsops(Array.from({ length: 24 }, (_, i) => write(m('a.raw'), ((i * 7) % 32) * 64 * 1024, 100 + i)))
    const m1 = await moment(pair, ['a.raw', 'b.raw'])

    await fsops([{ op: 'create', path: m('c.raw') }, write(m('c.raw'), 0, 200, 3 * MiB), write(m('b.raw'), MiB, 201, 256 * 1024), { op: 'truncate', path: m('a.raw'), size: 6 * MiB + 4096 }])
    const m2 = await moment(pair, ['a.raw', 'b.raw', 'c.raw'])

    // A second base (3 s after the first) comes between the moments: restoring m3 starts from it.
    const first = (await pair.primaryStatus()).archive!.lastBase!.seq
    await waitFor('a second base', async () => ((await pair.primaryStatus()).archive?.lastBase?.seq ?? 0) > first, 30_000, 100)
    await fsops([{ op: 'rename', from: m('c.raw'), to: m('d.raw') }, write(m('d.raw'), 512 * 1024, 300), write(m('a.raw'), 0, 301, MiB)])
    const m3 = await moment(pair, ['a.raw', 'b.raw', 'd.raw'])

    const st = (await pair.primaryStatus()).archive!
    assert.ok(st.uploaded.regionsReused > 0, `the second base referenced regions the archive held (reused ${st.uploaded.regionsReused}, uploaded ${st.uploaded.regions})`)
    const ls = await listing(s3)
    assert.ok(ls.bases.length >= 2, `${ls.bases.length} bases`)
    assert.ok(ls.restorable.some(r => r.fromSeq <= m1.seq && r.toSeq >= m3.seq), `one span restores all three moments: ${JSON.stringify(ls.restorable)}`)

    for (const [i, mo] of [m1, m2, m3].entries()) {
      const { dir, result } = await restoreAt(s3, mo.at)
      assert.equal(result.seq, mo.seq, `moment ${i + 1}: restored the boundary of that moment`)
      assert.deepEqual(await hashDir(dir), mo.sums, `moment ${i + 1} (seq ${mo.seq}): every volume sha256-equal`)
    }
    console.log(`      3 moments (seq ${m1.seq}, ${m2.seq}, ${m3.seq}) restored sha256-equal; ${ls.bases.length} bases, ${ls.chunks.count} chunks; regions uploaded ${st.uploaded.regions}, reused ${st.uploaded.regionsReused}`)
  })

  it('the store going away and coming back loses nothing: writers never wait, status says it, the outage is restorable; past the journal limit a new base closes the gap', async () => {
    const s3 = await S3Server.start()
    useStore(s3)
    const pair = await startPair({
      images: { 'a.raw': pattern(2, 8 * MiB) },
      dr: false,
      primaryArgs: [...archiveArgs(s3), '--journal-limit', '4M'],
    })
    const m = (n: string): string => path.join(pair.dirs.mnt, n)
    await archived(pair)
    await waitFor('the first base', async () => ((await pair.primaryStatus()).archive?.bases ?? 0) >= 1, 30_000, 50)

    // A short outage: inside the journal limit.
    await s3.stop()
    await fsops(Array.from({ length: 16 }, (_, i) => write(m('a.raw'), i * 64 * 1024, 400 + i)))
    const down = await waitFor('status to say the store fails', async () => {
      const a = (await pair.primaryStatus()).archive!
      return a.state === 'retrying' && a.lastError ? a : undefined
    }, 30_000, 100)
    assert.equal(down.lastError!.code, 'ARCHIVE_UNREACHABLE')
    const during = { at: new Date().toISOString(), seq: (await pair.primaryStatus()).seq.last, sums: await hashes(pair.dirs.mnt, ['a.raw']) }
    await fsops(Array.from({ length: 8 }, (_, i) => write(m('a.raw'), (32 + i) * 64 * 1024, 500 + i)))
    await s3.start()
    await archived(pair, 60_000)
    const { dir, result } = await restoreAt(s3, during.at)
    assert.equal(result.seq, during.seq)
    assert.deepEqual(await hashDir(dir), during.sums, 'a moment inside the outage restores equal')

    // A long outage: more written than the journal keeps for the archive
    // (once its upload is failing: what it took before, it holds).
    await s3.stop()
    const before = (await pair.primaryStatus()).archive!.lastBase!.seq
    await fsops([write(m('a.raw'), 0, 599)])
    await waitFor('the upload to fail', async () => (await pair.primaryStatus()).archive!.state === 'retrying', 30_000, 100)
    await fsops(Array.from({ length: 12 }, (_, i) => write(m('a.raw'), (i % 8) * MiB, 600 + i, 512 * 1024)))
    // The journal keeps 4 MiB for the archive: the checkpoint drops the rest for it.
    await waitFor('the journal to stay within its limit', async () => (await pair.primaryStatus()).journal.bytes <= 5 * MiB, 60_000, 100)
    await s3.start()
    await waitFor('the archive to see the gap and close it with a new base', async () => {
      const a = (await pair.primaryStatus()).archive!
      return a.gaps >= 1 && a.gap === undefined && (a.lastBase?.seq ?? 0) > before
    }, 60_000, 100)
    const last = await moment(pair, ['a.raw'])
    const latest = await restoreAt(s3, undefined)
    assert.equal(latest.result.seq, last.seq)
    assert.deepEqual(await hashDir(latest.dir), last.sums, 'the latest point restores equal after the long outage')
  })

  it('restore without credentials says what to set, and creates nothing', async () => {
    const dir = path.join(await tmpDir('restore'), 'images')
    const r = await cli(['restore', '--archive', 's3://some-bucket/x', '--archive-endpoint', 'http://127.0.0.1:9', '--images', dir], {
      env: { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent', AWS_CONFIG_FILE: '/nonexistent' },
    })
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /^volmirror: s3:\/\/some-bucket\/x\/: no credentials for the store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~\/\.aws\/credentials \[UNAUTHORIZED\]$/m)
    await assert.rejects(readdir(dir), 'nothing created')
  })

  it('retention deletes what no point in the window needs; the latest point stays restorable', async () => {
    const s3 = await S3Server.start()
    useStore(s3)
    const pair = await startPair({
      images: { 'a.raw': pattern(3, 4 * MiB) },
      dr: false,
      primaryArgs: archiveArgs(s3, ['--archive-base-every', '1s', '--archive-retention', '2s']),
    })
    const m = (n: string): string => path.join(pair.dirs.mnt, n)
    // Each round rewrites region 0: its old bytes stop being referenced.
    for (let round = 0; round < 5; round++) {
      await fsops([write(m('a.raw'), 0, 700 + round, MiB)])
      await archived(pair)
      const seq = (await pair.primaryStatus()).seq.last
      await waitFor('a base after the round', async () => ((await pair.primaryStatus()).archive?.lastBase?.seq ?? 0) >= seq, 30_000, 100)
    }
    const ls = await waitFor('retention to drop old bases', async () => {
      const l = await listing(s3)
      return l.bases.length <= 4 ? l : undefined
    }, 30_000, 200)
    const uploaded = (await pair.primaryStatus()).archive!.uploaded.regions
    assert.ok(ls.regions.count < uploaded, `unreferenced regions deleted (${ls.regions.count} left of ${uploaded} uploaded)`)
    assert.ok((ls.chunks.firstSeq ?? 0) > 1, `chunks before the oldest kept base deleted (first seq ${ls.chunks.firstSeq})`)
    const last = await moment(pair, ['a.raw'])
    const latest = await restoreAt(s3, undefined)
    assert.deepEqual(await hashDir(latest.dir), last.sums)
    console.log(`      after retention: ${ls.bases.length} bases, ${ls.chunks.count} chunks from seq ${ls.chunks.firstSeq}, ${ls.regions.count} regions`)
  })
})
