/**
 * region-store: the DR's region maps and asOfs, persisted at checkpoints.
 *
 * A region may only be recorded as present once its bytes are durable, so
 * the state is captured when a checkpoint takes its list of images to
 * fdatasync and written after they are synced (see Checkpointer `capture`).
 * After a crash the DR resumes from that checkpoint: regions fetched since
 * are absent again (fetched again: harmless), and the journal is replayed
 * against asOfs that match the durable bytes.
 */
import { regionKey, keyRegion, keyVolume, type RegionKey } from '../core/as-of.js'
import type { Replica } from '../core/replica.js'
import type { BinaryLevel, StateStore } from '../store/state-store.js'
import type { DrVolumes } from './dr-volumes.js'

function chunkKey (volume: number, chunk: number): Buffer {
  const k = Buffer.allocUnsafe(8)
  k.writeUInt32BE(volume, 0)
  k.writeUInt32BE(chunk, 4)
  return k
}

function asOfKey (key: RegionKey): Buffer {
  const k = Buffer.allocUnsafe(8)
  k.writeUInt32BE(keyVolume(key), 0)
  k.writeUInt32BE(keyRegion(key), 4)
  return k
}

function u64 (n: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeUInt32BE(Math.floor(n / 0x100000000), 0)
  b.writeUInt32BE(n >>> 0, 4)
  return b
}

/** RegionStore loads and saves a Replica's maps and asOfs. */
export class RegionStore {
  private readonly maps: BinaryLevel
  private readonly asOfs: BinaryLevel
  private saveAll = false

  constructor (private readonly store: StateStore) {
    this.maps = store.binary('regions')
    this.asOfs = store.binary('asof')
  }

  /** load tracks every volume in `replica` and restores its map and the asOfs. */
  async load (replica: Replica, volumes: DrVolumes): Promise<void> {
    for (const v of volumes.list()) replica.track(v.id)
    for await (const [k, bytes] of this.maps.iterator()) {
      const vol = k.readUInt32BE(0)
      if (!volumes.byIdOf(vol)) continue
      replica.map(vol).loadChunk(k.readUInt32BE(4), bytes)
    }
    const entries: Array<[RegionKey, number]> = []
    for await (const [k, v] of this.asOfs.iterator()) {
      entries.push([regionKey(k.readUInt32BE(0), k.readUInt32BE(4)), v.readUInt32BE(0) * 0x100000000 + v.readUInt32BE(4)])
    }
    replica.rule.load(entries)
  }

  /**
   * capture takes the state to persist now (changed map chunks, all asOfs)
   * and returns the function that writes it, to be called once the images
   * are synced.
   */
  capture (replica: Replica, volumes: DrVolumes): () => Promise<void> {
    const puts: Array<{ key: Buffer, value: Buffer, level: BinaryLevel }> = []
    for (const v of volumes.list()) {
      const map = replica.map(v.id)
      const chunks = this.saveAll
        ? Array.from({ length: Math.ceil(map.length / (8 * 4096)) }, (_, c) => ({ chunk: c, bytes: map.chunkBytes(c) }))
        : map.takeDirtyChunks()
      for (const c of chunks) puts.push({ key: chunkKey(v.id, c.chunk), value: Buffer.from(c.bytes), level: this.maps })
    }
    this.saveAll = false
    const asOfs = replica.rule.entries()
    return async () => {
      try {
        await this.asOfs.clear()
        const ops = [
          ...puts.map(p => ({ type: 'put' as const, key: p.key, value: p.value, sublevel: p.level })),
          ...asOfs.map(([k, a]) => ({ type: 'put' as const, key: asOfKey(k), value: u64(a), sublevel: this.asOfs })),
        ]
        if (ops.length > 0) await this.store.db.batch(ops as never, { sync: true })
      } catch (err) {
        this.saveAll = true
        throw err
      }
    }
  }

  /** forget drops the persisted map of a deleted volume. */
  async forget (volume: number): Promise<void> {
    await this.maps.clear({ gte: chunkKey(volume, 0), lte: chunkKey(volume, 0xffffffff) })
  }
}
