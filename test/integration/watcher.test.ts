/**
 * The image watcher of a primary (chokidar, polling every 500 ms): files
 * added, changed or removed in the image directory behind the mount's back
 * show in the mount at once, are flagged in `status` (added-outside,
 * changed-outside, removedOutside) with a log event, and the flags survive
 * a restart. Writes made through the mount must never be taken for outside
 * changes.
 *
 * The test process hosts the mount: the mount is only touched from child
 * processes (fsops, fio); the backing directory is changed from here.
 */
import assert from 'node:assert/strict'
import { mkdir, open, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Flag, PrimaryStatus } from '../../lib/node/primary-node.js'
import { fsop, fsops } from '../helpers/fsop.js'
import { pattern } from '../helpers/pattern.js'
import { startPrimary, type LogEvent, type TestPrimary } from '../helpers/primary.js'
import { runOk } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

/** How long the watcher may take to notice something: a few polls. */
const NOTICE_MS = 5_000

/** flagOf returns the flag of `volume` in `status`, if it is listed and flagged. */
function flagOf (s: PrimaryStatus, volume: string): Flag | undefined {
  return s.volumes.find(v => v.name === volume)?.flagged
}

/** waitForFlag waits until `status` shows `volume` flagged for `reason`, and returns that flag. */
async function waitForFlag (p: TestPrimary, volume: string, reason: Flag['reason']): Promise<Flag> {
  return await waitFor(`${volume} flagged ${reason}`, async () => {
    const f = flagOf(await p.node.status(), volume)
    return f?.reason === reason ? f : undefined
  }, NOTICE_MS)
}

/** outsideEvents lists the watcher's `volume.*_outside_mount` events for `volume`. */
function outsideEvents (events: LogEvent[], volume: string, kind?: 'added' | 'changed' | 'removed'): LogEvent[] {
  return events.filter(e => (kind ? e.event === `volume.${kind}_outside_mount` : /^volume\.\w+_outside_mount$/.test(e.event)) && e.fields.volume === volume)
}

/** mountNames lists the mount's root directory from a child process. */
async function mountNames (p: TestPrimary): Promise<string[]> {
  return (await fsop({ op: 'readdir', path: p.mnt })).names as string[]
}

/** overwrite writes `data` at `offset` into a backing file in place (not through the mount). */
async function overwrite (file: string, offset: number, data: Buffer): Promise<void> {
  const fh = await open(file, 'r+')
  try { await fh.write(data, 0, data.length, offset) } finally { await fh.close() }
}

describe('primary: image directory watcher', function () {
  this.timeout(60_000)
  this.slow(5_000)
  let p: TestPrimary

  // Two volumes exist before the node starts: the initial scan knows them
  // (and must not report them).
  beforeEach(async () => {
    const root = await tmpDir('watch')
    await mkdir(path.join(root, 'images'))
    await writeFile(path.join(root, 'images', 'old.raw'), pattern(1, 1 << 20))
    await writeFile(path.join(root, 'images', 'other.raw'), pattern(2, 1 << 20))
    p = await startPrimary({ root, retainJournal: true })
  })

  it('does not flag the volumes that were there when it started', async () => {
    const s = await p.node.status()
    assert.deepEqual(s.volumes.map(v => [v.name, v.flagged]), [['old.raw', undefined], ['other.raw', undefined]])
    assert.deepEqual(s.removedOutside, [])
    assert.deepEqual(p.events.filter(e => e.event.endsWith('_outside_mount')), [])
  })

  it('shows a file added behind the mount at once and flags it added-outside', async () => {
    const data = pattern(3, 300_000)
    await writeFile(path.join(p.images, 'added.raw'), data)
    await waitFor('added.raw in the mount', async () => (await mountNames(p)).includes('added.raw'), 1_000)
    const h = await fsop({ op: 'hash', path: path.join(p.mnt, 'added.raw') })
    const { createHash } = await import('node:crypto')
    assert.equal(h.sha256, createHash('sha256').update(data).digest('hex'), 'the mount reads the added bytes')

    const flag = await waitForFlag(p, 'added.raw', 'added-outside')
    assert.ok(!Number.isNaN(Date.parse(flag.since)))
    assert.equal(flag.seq, p.node.journal.lastSeq, 'flagged as of the current seq')
    assert.equal(outsideEvents(p.events, 'added.raw', 'added').length, 1)
    const s = await p.node.status()
    assert.equal(s.volumes.find(v => v.name === 'added.raw')?.size, data.length)
    assert.equal(flagOf(s, 'old.raw'), undefined, 'other volumes stay unflagged')
  })

  it('flags a file changed in the backing directory changed-outside and logs it', async () => {
    const f = path.join(p.mnt, 'old.raw')
    // Read through the mount first, so the kernel has the old bytes cached.
    const before = await fsop({ op: 'read', path: f, offset: 4096, length: 4096 })
    const fresh = pattern(4, 4096)
    await overwrite(path.join(p.images, 'old.raw'), 4096, fresh)

    const flag = await waitForFlag(p, 'old.raw', 'changed-outside')
    assert.ok(!Number.isNaN(Date.parse(flag.since)))
    const ev = outsideEvents(p.events, 'old.raw', 'changed')
    assert.equal(ev.length, 1, 'one volume.changed_outside_mount event')
    assert.equal(ev[0]!.level, 'warn')
    assert.equal(flagOf(await p.node.status(), 'other.raw'), undefined, 'other volumes stay unflagged')

    const after = await fsop({ op: 'read', path: f, offset: 4096, length: 4096 })
    assert.notDeepEqual(Buffer.from(before.data, 'base64'), fresh)
    assert.deepEqual(Buffer.from(after.data, 'base64'), fresh, 'the mount reads the changed bytes')
  })

  it('drops a file deleted from the backing directory from the mount and lists it in removedOutside', async () => {
    assert.ok((await mountNames(p)).includes('other.raw'))
    await rm(path.join(p.images, 'other.raw'))
    await waitFor('other.raw gone from the mount', async () => !(await mountNames(p)).includes('other.raw'), 2_000)
    const [st] = await fsops([{ op: 'stat', path: path.join(p.mnt, 'other.raw') }])
    assert.equal(st!.code, 'ENOENT')

    const s = await waitFor('other.raw in removedOutside', async () => {
      const s = await p.node.status()
      return s.removedOutside.some(r => r.name === 'other.raw') ? s : undefined
    }, NOTICE_MS)
    const r = s.removedOutside.find(r => r.name === 'other.raw')!
    assert.equal(r.reason, 'removed-outside')
    assert.ok(!Number.isNaN(Date.parse(r.since)))
    assert.ok(!s.volumes.some(v => v.name === 'other.raw'), 'no longer listed as a volume')
    assert.equal(outsideEvents(p.events, 'other.raw', 'removed').length, 1)
  })

  it('does not flag volumes written, created, extended and renamed through the mount', async () => {
    const m = (n: string): string => path.join(p.mnt, n)
    const work = await tmpDir('watch-fio')
    // Through the mount, while the watcher polls: create, write, extend,
    // rename, then two seconds of fio on a pre-existing and a new volume.
    const res = await fsops([
      { op: 'write', path: m('mine.raw'), offset: 0, seed: 10, length: 256 * 1024, create: true },
      { op: 'ftruncate', path: m('mine.raw'), size: 4 << 20 },
      { op: 'write', path: m('mine.raw'), offset: 5 << 20, seed: 11, length: 4096 },
      { op: 'rename', from: m('mine.raw'), to: m('mine2.raw') },
      { op: 'write', path: m('mine2.raw'), offset: 8192, seed: 12, length: 8192 },
      { op: 'write', path: m('other.raw'), offset: 1 << 20, seed: 13, length: 65536, fsync: true },
    ])
    for (const r of res) assert.ok(r.ok, JSON.stringify(r))
    await runOk('fio', [
      '--ioengine=psync', '--rw=randwrite', '--bs=4k', '--time_based', '--runtime=2', '--verify_state_save=0',
      '--name=old', `--filename=${m('old.raw')}`, '--size=1M',
      '--name=new', `--filename=${m('fio.raw')}`, '--size=8M',
    ], { cwd: work, timeoutMs: 30_000 })
    const writtenUpTo = p.node.journal.lastSeq

    // Proof that the watcher polled every volume after the last write: a
    // marker changed behind the mount is noticed three times in a row (its
    // add by the directory poll, then two changes by its own 500 ms poll),
    // which takes more than one full poll interval of every other file.
    const marker = path.join(p.images, 'marker.raw')
    await writeFile(marker, pattern(20, 4096))
    await waitForFlag(p, 'marker.raw', 'added-outside')
    await overwrite(marker, 0, pattern(21, 4096))
    await waitFor('first marker change noticed', () => outsideEvents(p.events, 'marker.raw', 'changed').length >= 1, NOTICE_MS)
    await overwrite(marker, 0, pattern(22, 4096))
    await waitFor('second marker change noticed', () => outsideEvents(p.events, 'marker.raw', 'changed').length >= 2, NOTICE_MS)

    const s = await p.node.status()
    const written = ['old.raw', 'other.raw', 'mine2.raw', 'fio.raw']
    for (const v of written) {
      assert.ok(s.volumes.some(x => x.name === v), `${v} exists`)
      assert.equal(flagOf(s, v), undefined, `${v} was written through the mount and must not be flagged`)
      assert.deepEqual(outsideEvents(p.events, v), [], `no outside-change event for ${v}`)
    }
    assert.deepEqual(s.removedOutside, [], 'a rename through the mount is not a removal')
    assert.equal(flagOf(s, 'marker.raw')?.reason, 'changed-outside')
    // The burst really went through the mount (and so past the watcher's polls).
    await p.node.journal.indexed()
    const counts = new Map<string, number>()
    for (const e of await p.node.journal.entries(0, writtenUpTo)) counts.set(e.volume, (counts.get(e.volume) ?? 0) + 1)
    assert.ok((counts.get('old.raw') ?? 0) > 100, `old.raw got ${counts.get('old.raw')} records`)
    assert.ok((counts.get('fio.raw') ?? 0) > 100, `fio.raw got ${counts.get('fio.raw')} records`)
  })

  it('flags a file copied in and written through the mount before the next poll', async () => {
    // The window the poll leaves: copy an image in, write it through the
    // mount at once. Its bytes were never journaled, so it must be flagged.
    await writeFile(path.join(p.images, 'copied.raw'), pattern(30, 1 << 20))
    const [w] = await fsops([{ op: 'write', path: path.join(p.mnt, 'copied.raw'), offset: 0, seed: 31, length: 4096 }])
    assert.ok(w!.ok, JSON.stringify(w))
    await waitForFlag(p, 'copied.raw', 'added-outside')
    assert.equal(outsideEvents(p.events, 'copied.raw', 'added').length, 1)
  })

  it('does not flag files whose times or owner are set through the mount (touch, cp -p)', async () => {
    const [a, b] = await fsops([
      { op: 'utimes', path: path.join(p.mnt, 'old.raw'), atime: 1_000_000_000, mtime: 1_000_000_000 },
      { op: 'utimes', path: path.join(p.mnt, 'other.raw'), atime: 2_000_000_000, mtime: 2_000_000_000 },
    ])
    assert.ok(a!.ok && b!.ok)
    await runOk('touch', [path.join(p.mnt, 'old.raw')])
    await runOk('chown', ['0:0', path.join(p.mnt, 'other.raw')])
    // Proof that a poll happened after: a marker changed behind the mount is noticed.
    await writeFile(path.join(p.images, 'marker2.raw'), 'x')
    await waitForFlag(p, 'marker2.raw', 'added-outside')
    await overwrite(path.join(p.images, 'marker2.raw'), 0, Buffer.from('y'))
    await waitFor('marker change noticed', () => outsideEvents(p.events, 'marker2.raw', 'changed').length >= 1, NOTICE_MS)
    const s = await p.node.status()
    assert.equal(flagOf(s, 'old.raw'), undefined)
    assert.equal(flagOf(s, 'other.raw'), undefined)
    // And an outside change that backdates the mtime is still noticed (ctime moves).
    await overwrite(path.join(p.images, 'other.raw'), 0, Buffer.from('outside'))
    await runOk('touch', ['-d', '2001-01-01', path.join(p.images, 'other.raw')])
    await waitForFlag(p, 'other.raw', 'changed-outside')
  })

  it('keeps its flags across a restart', async () => {
    await writeFile(path.join(p.images, 'added.raw'), pattern(5, 8192))
    await overwrite(path.join(p.images, 'old.raw'), 0, pattern(6, 512))
    await rm(path.join(p.images, 'other.raw'))
    const added = await waitForFlag(p, 'added.raw', 'added-outside')
    const changed = await waitForFlag(p, 'old.raw', 'changed-outside')
    const removed = await waitFor('other.raw in removedOutside', async () => (await p.node.status()).removedOutside.find(r => r.name === 'other.raw'), NOTICE_MS)

    const q = await p.restart()
    const s = await q.node.status()
    assert.notEqual(q.node, p.node)
    assert.deepEqual(flagOf(s, 'added.raw'), added)
    assert.deepEqual(flagOf(s, 'old.raw'), changed)
    assert.deepEqual(s.removedOutside, [removed])
    // The restarted node's initial scan reports nothing again.
    assert.deepEqual(q.events.filter(e => e.event.endsWith('_outside_mount')), [])
    assert.deepEqual((await mountNames(q)).sort(), ['added.raw', 'old.raw'])
  })
})
