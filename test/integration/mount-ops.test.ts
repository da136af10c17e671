/**
 * Every supported operation through a real FUSE mount of a primary, checked
 * against the backing file and against the journal.
 */
import assert from 'node:assert/strict'
import { lstat, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fsops } from '../helpers/fsop.js'
import { pattern } from '../helpers/pattern.js'
import { startPrimary, type TestPrimary } from '../helpers/primary.js'

async function journalOps (p: TestPrimary): Promise<Array<{ seq: number, op: string, volume: string, offset: number, length: number }>> {
  await p.node.journal.indexed()
  return (await p.node.journal.entries(0)).map(e => ({ seq: e.seq, op: e.op, volume: e.volume, offset: e.offset, length: e.length }))
}

describe('primary mount: operations', function () {
  this.timeout(60_000)
  let p: TestPrimary

  beforeEach(async () => {
    p = await startPrimary({ retainJournal: true })
  })

  it('shows the backing files with the same size, mode and times', async () => {
    await writeFile(path.join(p.images, 'vm1.raw'), pattern(1, 300_000))
    const [m, b] = await fsops([
      { op: 'stat', path: path.join(p.mnt, 'vm1.raw') },
      { op: 'stat', path: path.join(p.images, 'vm1.raw') },
    ])
    assert.ok(m!.ok && b!.ok)
    assert.equal(m!.size, 300_000)
    assert.equal(m!.mode, b!.mode)
    assert.equal(m!.uid, b!.uid)
    assert.equal(Math.floor(m!.mtimeMs), Math.floor(b!.mtimeMs))
    assert.equal(m!.blocks, b!.blocks)
  })

  it('writes land in the image and in the journal, in order', async () => {
    await writeFile(path.join(p.images, 'vm1.raw'), Buffer.alloc(1 << 20))
    const f = path.join(p.mnt, 'vm1.raw')
    await fsops([
      { op: 'write', path: f, offset: 4096, seed: 11, length: 8192 },
      { op: 'write', path: f, offset: 500_000, seed: 12, length: 100 },
      { op: 'write', path: f, offset: 0, data: Buffer.alloc(4096).toString('base64') },
    ])
    const image = await readFile(path.join(p.images, 'vm1.raw'))
    assert.deepEqual(image.subarray(4096, 4096 + 8192), pattern(11, 8192))
    assert.deepEqual(image.subarray(500_000, 500_100), pattern(12, 100))
    const ops = await journalOps(p)
    assert.deepEqual(ops.map(o => [o.op, o.offset, o.length]), [['write', 4096, 8192], ['write', 500_000, 100], ['zero', 0, 4096]])
    assert.deepEqual(ops.map(o => o.seq), [1, 2, 3])
    const recs = await p.node.journal.read(0)
    assert.deepEqual(Buffer.from(recs[0]!.data!), pattern(11, 8192))
    assert.equal(recs[2]!.data, undefined, 'an all-zero write carries no payload')
  })

  it('reads what a process reading the backing file reads', async () => {
    const data = pattern(3, 3 * 1024 * 1024 + 17)
    await writeFile(path.join(p.images, 'disk.img'), data)
    const [h, part] = await fsops([
      { op: 'hash', path: path.join(p.mnt, 'disk.img') },
      { op: 'read', path: path.join(p.mnt, 'disk.img'), offset: 1_000_001, length: 70_000 },
    ])
    const { createHash } = await import('node:crypto')
    assert.equal(h!.sha256, createHash('sha256').update(data).digest('hex'))
    assert.deepEqual(Buffer.from(part!.data, 'base64'), data.subarray(1_000_001, 1_070_001))
  })

  it('creates, truncates, renames, deletes, and journals each', async () => {
    const m = (n: string): string => path.join(p.mnt, n)
    const res = await fsops([
      { op: 'mkdir', path: m('pool'), mode: 0o750 },
      { op: 'create', path: m('pool/a.raw'), mode: 0o600 },
      { op: 'truncate', path: m('pool/a.raw'), size: 5 << 20 },
      { op: 'write', path: m('pool/a.raw'), offset: 1 << 20, seed: 5, length: 1000 },
      { op: 'ftruncate', path: m('pool/a.raw'), size: 2 << 20 },
      { op: 'rename', from: m('pool/a.raw'), to: m('pool/b.raw') },
      { op: 'chmod', path: m('pool/b.raw'), mode: 0o640 },
      { op: 'stat', path: m('pool/b.raw') },
      { op: 'readdir', path: m('pool') },
      { op: 'create', path: m('gone.raw') },
      { op: 'unlink', path: m('gone.raw') },
      { op: 'mkdir', path: m('empty') },
      { op: 'rmdir', path: m('empty') },
      { op: 'readdir', path: p.mnt },
    ])
    for (const r of res) assert.ok(r.ok, JSON.stringify(r))
    assert.equal(res[7]!.size, 2 << 20)
    assert.equal(res[7]!.mode & 0o7777, 0o640)
    assert.deepEqual(res[8]!.names, ['b.raw'])
    assert.deepEqual(res[13]!.names, ['pool'])
    const st = await lstat(path.join(p.images, 'pool/b.raw'))
    assert.equal(st.size, 2 << 20)
    assert.equal((await lstat(path.join(p.images, 'pool'))).mode & 0o7777, 0o750)
    const ops = (await journalOps(p)).map(o => `${o.op} ${o.volume}`)
    assert.deepEqual(ops, [
      'mkdir pool', 'create pool/a.raw', 'truncate pool/a.raw', 'write pool/a.raw', 'truncate pool/a.raw',
      'rename pool/a.raw', 'chmod pool/b.raw', 'create gone.raw', 'delete gone.raw', 'mkdir empty', 'rmdir empty',
    ])
  })

  it('renames a directory with volumes in it, and later writes find them', async () => {
    const m = (n: string): string => path.join(p.mnt, n)
    const res = await fsops([
      { op: 'mkdir', path: m('d1') },
      { op: 'write', path: m('d1/x.raw'), offset: 0, seed: 1, length: 4096, create: true },
      { op: 'rename', from: m('d1'), to: m('d2') },
      { op: 'write', path: m('d2/x.raw'), offset: 4096, seed: 2, length: 4096 },
      { op: 'hash', path: m('d2/x.raw') },
    ])
    for (const r of res) assert.ok(r.ok, JSON.stringify(r))
    const image = await readFile(path.join(p.images, 'd2/x.raw'))
    assert.deepEqual(image, Buffer.concat([pattern(1, 4096), pattern(2, 4096)]))
  })

  it('answers with the errno a local file system would', async () => {
    const m = (n: string): string => path.join(p.mnt, n)
    await writeFile(path.join(p.images, 'f.raw'), 'x')
    const res = await fsops([
      { op: 'stat', path: m('missing') },
      { op: 'create', path: m('f.raw') },
      { op: 'mkdir', path: m('dir') },
      { op: 'create', path: m('dir/inner') },
      { op: 'rmdir', path: m('dir') },
      { op: 'rename', from: m('dir'), to: m('dir/sub') },
      { op: 'unlink', path: m('dir') },
      { op: 'rmdir', path: m('f.raw') },
      { op: 'create', path: m('nodir/x') },
    ])
    assert.deepEqual(res.map(r => r.ok ? 'ok' : r.code), ['ENOENT', 'EEXIST', 'ok', 'ok', 'ENOTEMPTY', 'EINVAL', 'EISDIR', 'ENOTDIR', 'ENOENT'])
  })

  it('sets access and modification times (utimens)', async () => {
    await writeFile(path.join(p.images, 't.raw'), 'x')
    const [r, st] = await fsops([
      { op: 'utimes', path: path.join(p.mnt, 't.raw'), atime: 1_000_000_000, mtime: 1_200_000_000 },
      { op: 'stat', path: path.join(p.images, 't.raw') },
    ])
    assert.ok(r!.ok)
    assert.equal(Math.round(st!.mtimeMs / 1000), 1_200_000_000, 'mtime is set (fuse-native utimens fix)')
    assert.equal(Math.round(st!.atimeMs / 1000), 1_000_000_000)
  })

  it('fsync and fdatasync succeed and statfs reports the backing file system', async () => {
    await writeFile(path.join(p.images, 's.raw'), Buffer.alloc(8192))
    const res = await fsops([
      { op: 'write', path: path.join(p.mnt, 's.raw'), offset: 0, seed: 9, length: 8192, fsync: true },
      { op: 'fdatasync', path: path.join(p.mnt, 's.raw') },
      { op: 'statfs', path: p.mnt },
      { op: 'statfs', path: p.images },
    ])
    for (const r of res) assert.ok(r.ok, JSON.stringify(r))
    assert.equal(res[2]!.bsize, res[3]!.bsize)
    assert.equal(res[2]!.blocks, res[3]!.blocks)
  })

  it('batches many concurrent writes into few LevelDB index batches (group commit)', async () => {
    await writeFile(path.join(p.images, 'g.raw'), Buffer.alloc(8 << 20))
    const writers = Array.from({ length: 8 }, (_, w) => fsops(Array.from({ length: 64 }, (_, i) => ({
      op: 'write', path: path.join(p.mnt, 'g.raw'), offset: (w * 64 + i) * 4096, seed: w * 1000 + i, length: 4096,
    }))))
    for (const res of await Promise.all(writers)) for (const r of res) assert.ok(r.ok)
    await p.node.journal.indexed()
    const s = p.node.journal.stats()
    assert.equal(s.records, 512)
    assert.ok(s.batchedRecords / s.batches > 4, `expected batching, got ${s.batchedRecords} records in ${s.batches} batches`)
  })
})
