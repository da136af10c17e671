/**
 * dr-cold-read: cold sequential read of a volume through a DR mount with
 * hydration off — every byte is fetched from the primary on demand — next
 * to PEERS.md's lazy-fetch FUSE file systems over the same loopback HTTP
 * (nginx serving the very file the primary serves): httpfs2 (keeps
 * nothing), rclone with its full VFS cache (keeps what it fetched: the
 * issue's target, >= 1.5x its throughput), and rclone without a cache.
 *
 * Each measurement starts a fresh DR or peer mount, drops the page cache
 * (the primary's and nginx's reads come from the disk), and times
 * `dd if=MNT/img.bin of=/dev/null bs=1M`.
 */
import { ddRead, ddReadCommand } from './lib/dd.js'
import { eachLazySetup, httpfs2, lazyFixture, LAZY_SETUPS, rcloneFull, rcloneNoCache, volmirrorDr } from './lib/lazy-setups.js'
import { fmt, Samples } from './lib/samples.js'
import { dropCaches } from './lib/system.js'
import type { Benchmark } from './lib/types.js'

/** Sizes: PEERS.md's 1 GiB; --quick reads 256 MiB. */
const FULL = { mib: 1024 }
const QUICK = { mib: 256 }

const METRIC = 'seq'

/** drColdRead is the `dr-cold-read` benchmark. */
export const drColdRead: Benchmark = {
  name: 'dr-cold-read',
  description: 'cold sequential read through the DR mount (hydration off) vs httpfs2 and rclone (full cache, no cache) over loopback HTTP',
  async run (ctx) {
    const params = ctx.quick ? QUICK : FULL
    const samples = new Samples()
    ctx.progress(`dr-cold-read: ${params.mib} MiB of random data, ${ctx.runs} run(s)`)
    const fixture = await lazyFixture(ctx, params.mib)
    try {
      await eachLazySetup(ctx, fixture, LAZY_SETUPS, async (setup, mount) => {
        const dropped = await dropCaches()
        const r = await ddRead(mount.file)
        const notes: string[] = []
        if (!dropped) notes.push('page cache NOT dropped (needs root): warm figure')
        if (r.bytes !== fixture.served.size) notes.push(`read ${r.bytes} bytes of ${fixture.served.size}`)
        const c = await mount.counters?.()
        if (c && c.onDemandBytes !== fixture.served.size) notes.push(`fetched ${c.onDemandBytes} bytes on demand (and ${c.hydrationBytes} by hydration) for ${fixture.served.size}`)
        samples.add(METRIC, setup.id, r.bytes === fixture.served.size ? r.mbPerS : NaN, notes.join('; ') || undefined)
        ctx.progress(`  ${setup.label.padEnd(30)} ${fmt(r.mbPerS)} MB/s${c ? ` (fetches ${c.fetches}, retries ${c.retries})` : ''}`)
      }, (setup, _round, why) => samples.add(METRIC, setup.id, NaN, why))
    } finally {
      await fixture.stop()
    }
    return [{
      metric: `cold seq read ${params.mib >= 1024 ? `${params.mib / 1024} GiB` : `${params.mib} MiB`} (dd bs=1M)`,
      unit: 'MB/s',
      better: 'higher',
      volmirror: samples.figure(METRIC, volmirrorDr.id),
      comparisons: [
        { name: rcloneFull.label, role: 'peer', figure: samples.figure(METRIC, rcloneFull.id), target: 1.5 },
        { name: httpfs2.label, role: 'peer', figure: samples.figure(METRIC, httpfs2.id) },
        { name: rcloneNoCache.label, role: 'reference', figure: samples.figure(METRIC, rcloneNoCache.id) },
      ],
      command: `${LAZY_SETUPS.map(s => `${s.id}: ${s.command}`).join(' | ')}; then: sync; echo 3 > /proc/sys/vm/drop_caches; ${ddReadCommand('MNT/img.bin').join(' ')}`,
    }]
  },
}
