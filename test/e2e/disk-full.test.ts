/**
 * A full disk under the primary's images (a small tmpfs; the state
 * directory elsewhere), with a DR following (processes):
 *
 *   - writers get ENOSPC; the node stays up; status, metrics and the
 *     status JSON say per volume "disk full, N writes not applied";
 *   - once space is freed (a volume truncated through the mount), writing
 *     resumes, and the DR ends byte-equal to the primary's images (the
 *     failed writes are in neither).
 */
import assert from 'node:assert/strict'
import { mkdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { defer } from '../helpers/cleanup.js'
import { fsop, fsops } from '../helpers/fsop.js'
import { cmpFiles, inSync, MiB, primaryOf } from '../helpers/mirror.js'
import { startPair } from '../helpers/pair.js'
import { cli, run, runOk } from '../helpers/proc.js'
import { tmpDir } from '../helpers/tmp.js'
import { waitFor } from '../helpers/wait.js'

describe('a full disk under the primary (processes)', function () {
  this.timeout(3 * 60_000)

  it('writers get ENOSPC, status and metrics say "disk full, N writes not applied"; once space is freed writing resumes and the DR ends byte-equal', async () => {
    const small = path.join(await tmpDir('primary-full'), 'images')
    await mkdir(small)
    defer(async () => {
      const r = await run('umount', [small], { timeoutMs: 30_000 })
      if (r.code !== 0) await run('umount', ['-l', small], { timeoutMs: 30_000 })
    })
    await runOk('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', small])
    const pair = await startPair({
      primaryArgs: ['--images', small],
    })
    const m = (n: string): string => path.join(pair.dirs.mnt, n)
    await fsops([{ op: 'write', create: true, path: m('vm.raw'), offset: 0, seed: 1, length: 4 * MiB }, { op: 'truncate', path: m('vm.raw'), size: 16 * MiB }])
    await pair.consistent()

    // Fill the disk through the mount.
    const fill = await run('dd', ['if=/dev/zero', `of=${m('filler.raw')}`, 'bs=1M'], { timeoutMs: 60_000 })
    assert.notEqual(fill.code, 0, 'dd stops at a full disk')
    assert.match(fill.stderr, /No space left on device/)
    // Writes into holes of vm.raw need blocks: they fail.
    const failed = await fsops(Array.from({ length: 4 }, (_, i) => ({ op: 'write', path: m('vm.raw'), offset: (8 + i) * MiB, seed: 10 + i, length: 256 * 1024 })))
    assert.ok(failed.some(r => !r.ok && r.code === 'ENOSPC'), `writers get ENOSPC: ${JSON.stringify(failed.map(r => r.code ?? 'ok'))}`)
    const p = await waitFor('status to say the disk is full', async () => {
      const s = await primaryOf(pair.dirs.state)
      const v = s.volumes.find(x => x.name === 'vm.raw')
      return v?.flagged?.reason === 'apply-failed' && (v.flagged.failedWrites ?? 0) > 0 ? s : undefined
    }, 20_000, 100)
    const flag = p.volumes.find(x => x.name === 'vm.raw')!.flagged!
    assert.equal(flag.errno, 'ENOSPC')
    const text = await cli(['status', '--state', pair.dirs.state])
    assert.match(text.stdout, /vm\.raw .*DISK FULL: \d+ write\(s\) not applied since/)
    const token = (await readFile(path.join(pair.dirs.state, 'token'), 'utf8')).trim()
    const metrics = await (await fetch(`${pair.url}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()
    assert.match(metrics, /volmirror_volume_failed_writes\{volume="vm\.raw",errno="ENOSPC"\} [1-9]/)

    // Space back: the filler goes (through the mount); writes work again.
    await fsop({ op: 'truncate', path: m('filler.raw'), size: 0 })
    const again = await fsops([{ op: 'write', path: m('vm.raw'), offset: 12 * MiB, seed: 30, length: 256 * 1024, fsync: true }])
    assert.ok(again[0]!.ok, `writes work again: ${JSON.stringify(again[0])}`)
    await waitFor('the DR to catch up and compare the flagged volume', async () => {
      const ok = await inSync(pair.dirs.state, pair.dirs.drState, 5_000).then(() => true, () => false)
      if (!ok) return false
      return await cmpFiles(path.join(small, 'vm.raw'), path.join(pair.dirs.drImages, 'vm.raw')).then(() => true, () => false)
    }, 90_000, 500)
    await cmpFiles(path.join(small, 'filler.raw'), path.join(pair.dirs.drImages, 'filler.raw'))
    console.log(`      ${flag.failedWrites} writes not applied (ENOSPC), reported; after freeing space the DR is byte-equal`)
  })
})
