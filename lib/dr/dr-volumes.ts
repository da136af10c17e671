/**
 * dr-volumes: the DR's table of volumes.
 *
 * Each volume gets a numeric id on the DR that survives renames (region
 * maps and asOfs are keyed by it) and remembers its name's birth: the seq
 * of the record that gave it that name, as the primary counts it
 * (lib/primary/name-births.ts). A fetch answered for a name born otherwise
 * is about another volume and is not applied. Persisted in LevelDB
 * (`volumes`: name -> entry); ids count up from `nextVolumeId` in meta.
 */
import { isUnder, renamePrefix } from '../core/volume-name.js'
import type { JsonLevel, StateStore } from '../store/state-store.js'

/** DrVolume is one volume on the DR. */
export interface DrVolume {
  id: number
  name: string
  /** Seq of the record that bound this name to this volume, as the primary counts it (-1: unknown). */
  birth: number
}

/** sameVolume tells whether a primary's answer about a name (its birth) is about this DR volume. */
export function sameVolume (v: DrVolume, birth: number | undefined): boolean {
  return birth === undefined || v.birth < 0 || birth === v.birth
}

/** DrVolumes maps names to ids and back. */
export class DrVolumes {
  private readonly byName = new Map<string, DrVolume>()
  private readonly byId = new Map<number, DrVolume>()
  private readonly level: JsonLevel
  private nextId = 1
  /** Told whenever a name gets a volume id or loses it (-1): native reads check presence by id. */
  onBind: ((name: string, id: number) => void) | undefined

  constructor (private readonly store: StateStore) {
    this.level = store.json('volumes')
  }

  async load (): Promise<void> {
    for await (const [name, v] of this.level.iterator()) {
      const e = { ...(v as DrVolume), name }
      this.byName.set(name, e)
      this.byId.set(e.id, e)
      this.nextId = Math.max(this.nextId, e.id + 1)
    }
    this.nextId = Math.max(this.nextId, (await this.store.getMeta<number>('nextVolumeId')) ?? 1)
  }

  get (name: string): DrVolume | undefined { return this.byName.get(name) }
  byIdOf (id: number): DrVolume | undefined { return this.byId.get(id) }
  list (): DrVolume[] { return [...this.byName.values()].sort((a, b) => a.name < b.name ? -1 : 1) }

  /**
   * add registers a volume (a create record, or one found in the primary's
   * listing). Idempotent for replay: the same name with the same birth is
   * the same volume.
   */
  add (name: string, birth: number): DrVolume {
    const old = this.byName.get(name)
    if (old && old.birth === birth) return old
    if (old) this.byId.delete(old.id)
    const v: DrVolume = { id: this.nextId++, name, birth }
    this.byName.set(name, v)
    this.byId.set(v.id, v)
    void this.level.put(name, v)
    void this.store.putMeta('nextVolumeId', this.nextId)
    this.onBind?.(name, v.id)
    return v
  }

  /** restore brings back a volume under the id it had (a rollback undoing its delete). */
  restore (name: string, id: number): DrVolume {
    const old = this.byName.get(name)
    if (old) this.byId.delete(old.id)
    const v: DrVolume = { id, name, birth: -1 }
    this.byName.set(name, v)
    this.byId.set(id, v)
    void this.level.put(name, v)
    this.onBind?.(name, id)
    return v
  }

  /** setBirth records what the primary says the name's birth is (from its listing). */
  setBirth (name: string, birth: number): void {
    const v = this.byName.get(name)
    if (!v || v.birth === birth) return
    v.birth = birth
    void this.level.put(name, v)
  }

  /**
   * renamed moves a volume (or every volume under a directory) to new names
   * born at `seq`. Replaying a rename that was already applied moves nothing.
   */
  renamed (from: string, to: string, seq: number): DrVolume[] {
    const moved: DrVolume[] = []
    for (const v of [...this.byName.values()]) {
      if (!isUnder(v.name, from)) continue
      this.byName.delete(v.name)
      void this.level.del(v.name)
      v.name = renamePrefix(v.name, from, to)
      v.birth = seq
      moved.push(v)
    }
    for (const v of moved) {
      const replaced = this.byName.get(v.name)
      if (replaced) this.byId.delete(replaced.id)
      this.byName.set(v.name, v)
      void this.level.put(v.name, v)
      this.onBind?.(v.name, v.id)
    }
    return moved
  }

  /** removed forgets a deleted volume; returns it. */
  removed (name: string): DrVolume | undefined {
    const v = this.byName.get(name)
    if (!v) return undefined
    this.byName.delete(name)
    this.byId.delete(v.id)
    void this.level.del(name)
    this.onBind?.(name, -1)
    return v
  }
}
