/**
 * name-births: which volume a name means, across renames.
 *
 * A DR fetches regions by name, but between the DR's applied seq and the
 * primary's read, the name may have been given to another file (renamed
 * away, then created again). So the primary remembers, for each name, its
 * birth: the seq of the record that bound the name to its current file (a
 * create, or the rename that moved it there); 0 for files that were there
 * before journaling, and the seq at which the watcher found a file added
 * outside the mount. Every read a DR makes carries the name's birth; a DR
 * whose volume was born otherwise knows the bytes are not its volume's.
 *
 * Persisted (LevelDB `births`), updated by namespace records only: rare.
 */
import { isUnder } from '../core/volume-name.js'
import type { JsonLevel, StateStore } from '../store/state-store.js'

/** NameBirths maps volume names to their births. */
export class NameBirths {
  private readonly births = new Map<string, number>()
  private readonly level: JsonLevel

  constructor (store: StateStore) {
    this.level = store.json('births')
  }

  async load (): Promise<void> {
    for await (const [name, seq] of this.level.iterator()) this.births.set(name, seq as number)
  }

  /** of returns a name's birth (0 if it predates journaling). */
  of (name: string): number {
    return this.births.get(name) ?? 0
  }

  /** born binds `name` to a new file at `seq` (create, or a file found added outside). */
  born (name: string, seq: number): void {
    this.births.set(name, seq)
    void this.level.put(name, seq)
  }

  /**
   * renamed records a rename at `seq`: `files` are the volume names that now
   * exist at or under `to` (the file itself, or every file of a renamed
   * directory, including ones that had no birth yet). All are born at `seq`,
   * as a DR applying the same rename sees them.
   */
  renamed (from: string, to: string, seq: number, files: string[]): void {
    for (const name of [...this.births.keys()]) {
      if (isUnder(name, from) || isUnder(name, to)) { this.births.delete(name); void this.level.del(name) }
    }
    for (const name of files) this.born(name, seq)
  }

  /** deleted forgets a name. */
  deleted (name: string): void {
    if (this.births.delete(name)) void this.level.del(name)
  }
}
