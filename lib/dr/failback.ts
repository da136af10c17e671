/**
 * failback: what a node that was a primary does before it follows another
 * (lib/node/dr-node.ts calls these from its full sync): tell a failback
 * from split brain by the time of its records past the fork, and report
 * (and, with --keep-discarded, keep) what it gives up.
 */
import { mkdir, open, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import type { RegisterReply } from '../replication/protocol.js'
import type { ImageDir } from '../store/image-dir.js'
import type { Journal } from '../store/journal.js'
import type { Discarded } from '../node/status.js'

/**
 * refuseLateWrites tells failback from split brain: an old primary's
 * records past the fork that it wrote before the other node was promoted
 * are its last, unreplicated writes (failback discards them, with a
 * report); records written after the promotion mean it served on as a
 * primary alongside the new one. That is split brain, resolved only by an
 * operator (--discard-local). Timestamps are compared across machines:
 * keep their clocks in sync.
 */
export async function refuseLateWrites (journal: Journal, reply: RegisterReply): Promise<void> {
  const epoch = reply.history?.find(e => e.fromSeq === reply.forkSeq)
  if (!epoch) return
  await journal.indexed()
  const late = (await journal.entries(reply.forkSeq! - 1)).filter(e => e.ts > epoch.at)
  if (late.length === 0) return
  throw new VolmirrorError('SPLIT_BRAIN',
    `this node took ${late.length} writes as a primary after ${epoch.nodeId.slice(0, 8)} was promoted (epoch ${epoch.epoch}, ${new Date(epoch.at).toISOString()}): ` +
    'split brain. Restart it with --discard-local to give them up (add --keep-discarded DIR to keep their bytes)', { details: { late: late.length, epoch: epoch.epoch } })
}

/**
 * discard reports the records this node holds from `forkSeq` on, which
 * the primary never had (an old primary's last writes, or its side of a
 * split brain), and keeps the regions they touched in --keep-discarded
 * (a sparse copy per volume at the same offsets, plus discarded.json)
 * before the full sync overwrites them.
 */
export async function discardLocal (journal: Journal, images: ImageDir, rs: number, dir: string | undefined, log: Logger, forkSeq: number): Promise<Discarded> {
  await journal.indexed()
  const entries = await journal.entries(forkSeq - 1)
  const regions = new Map<string, Set<number>>()
  for (const e of entries) {
    if (e.op !== 'write' && e.op !== 'zero' && e.op !== 'truncate') continue
    let set = regions.get(e.volume)
    if (!set) { set = new Set(); regions.set(e.volume, set) }
    const end = e.op === 'truncate' ? e.offset + rs : e.offset + Math.max(1, e.length)
    for (let r = Math.floor(e.offset / rs); r * rs < end; r++) set.add(r)
  }
  let count = 0
  let bytes = 0
  const kept: Array<{ volume: string, regions: number[] }> = []
  for (const [volume, set] of regions) {
    const st = images.lstatSync(volume)
    if (!st?.isFile()) continue
    const list = [...set].filter(r => r * rs < st.size).sort((a, b) => a - b)
    count += list.length
    for (const r of list) bytes += Math.min(rs, st.size - r * rs)
    kept.push({ volume, regions: list })
    if (!dir || list.length === 0) continue
    await mkdir(dir, { recursive: true })
    const src = await open(images.path(volume), 'r')
    const dst = await open(path.join(dir, volume.replaceAll('/', '%2F')), 'w')
    try {
      const buf = Buffer.allocUnsafe(rs)
      for (const r of list) {
        const { bytesRead } = await src.read(buf, 0, rs, r * rs)
        await dst.write(buf, 0, bytesRead, r * rs)
      }
    } finally {
      await src.close()
      await dst.close()
    }
  }
  if (dir) {
    await mkdir(dir, { recursive: true })
    await writeFile(path.join(dir, 'discarded.json'), JSON.stringify({
      forkSeq, records: entries.length, regionSize: rs, at: new Date().toISOString(),
      note: 'regions of these volumes as this node held them before it discarded its records from forkSeq on; each volume file holds them at their own offsets',
      volumes: kept,
    }, null, 2) + '\n')
  }
  const d: Discarded = { forkSeq, records: entries.length, regions: count, bytes, ...(dir ? { keptIn: dir } : {}) }
  log.warn('failback.discarded', { ...d, note: dir ? 'the bytes are kept for inspection' : 'start with --keep-discarded DIR to keep them' })
  return d
}
