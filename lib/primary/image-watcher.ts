/**
 * image-watcher: notices what happens to the image directory behind the
 * mount's back (chokidar).
 *
 * The watcher keeps, per volume, the ctime volmirror last saw or caused.
 * ctime, not mtime: it changes with every modification and nobody can set
 * it back (`touch -d` sets mtime). A file that appears, disappears or
 * changes (its ctime moved) without going through the mount is reported and
 * flagged (persisted), so a later resync compares it by checksum: it was not
 * journaled, and volmirror does not pretend it was. A write through the
 * mount to a file the watcher has never seen (copied in just before) reports
 * it as added too. (A change racing with a write through the mount to the
 * same file within one timestamp tick may go unnoticed.)
 *
 * The mount itself shows such files at once: it reads the directory.
 *
 * chokidar polls (stat every `intervalMs`) rather than using inotify: every
 * write volmirror itself makes to an image would otherwise raise an inotify
 * event for the main thread to handle (measured: 12% of the primary's CPU
 * under a 4 KiB random-write load), and image directories hold few files.
 */
import chokidar, { type FSWatcher } from 'chokidar'
import type { Stats } from 'node:fs'
import path from 'node:path'
import { isUnder, isValidVolumeName, renamePrefix, RESERVED_PREFIX } from '../core/volume-name.js'
import type { Logger } from '../log.js'

/** OutsideChange is what the watcher reports. */
export interface OutsideChange {
  volume: string
  kind: 'added' | 'changed' | 'removed'
  size?: number
}

interface Seen { size: number, ctimeMs: number }

/** ImageWatcher watches one image directory. */
export class ImageWatcher {
  private readonly known = new Map<string, Seen>()
  private watcher: FSWatcher | undefined
  private ready = false
  /**
   * Called before an event is judged: brings in what volmirror's own
   * off-thread writers did (native writes), so their ctimes are known.
   */
  settle: (() => void) | undefined

  constructor (
    private readonly root: string,
    private readonly log: Logger,
    private readonly onChange: (c: OutsideChange) => void,
    private readonly intervalMs = 500,
  ) {}

  /** start watches the directory and resolves once the initial scan is done. */
  async start (): Promise<void> {
    const w = chokidar.watch(this.root, {
      ignoreInitial: false,
      alwaysStat: true,
      followSymlinks: false,
      usePolling: true,
      interval: this.intervalMs,
      binaryInterval: this.intervalMs,
      ignored: (p: string) => path.relative(this.root, p).split(path.sep)[0]!.startsWith(RESERVED_PREFIX),
    })
    this.watcher = w
    w.on('add', (p: string, st?: Stats) => this.event('add', p, st))
    w.on('change', (p: string, st?: Stats) => this.event('change', p, st))
    // chokidar's polling reports a change only when the size grew or shrank or
    // the mtime increased; a same-size overwrite with a backdated mtime would
    // slip by. Its raw events carry every poll's stats: check ctime there.
    w.on('raw', (ev: string, p: string, details: unknown) => {
      const curr = (details as { curr?: Stats } | undefined)?.curr
      if (ev === 'change' && curr?.isFile?.()) this.event('change', p, curr)
    })
    w.on('unlink', (p: string) => this.event('unlink', p))
    w.on('error', (err: unknown) => this.log.warn('watch.error', { err }))
    await new Promise<void>(resolve => w.once('ready', () => resolve()))
    this.ready = true
  }

  async close (): Promise<void> {
    await this.watcher?.close()
    this.watcher = undefined
  }

  /** created notes a volume volmirror itself just created (through the mount). */
  created (volume: string, st: { size: number, ctimeMs: number }): void {
    this.known.set(volume, { size: st.size, ctimeMs: st.ctimeMs })
  }

  /**
   * wrote records the state of a volume volmirror itself just changed. A
   * volume it never saw was put there from outside (and not yet polled):
   * report that first.
   */
  wrote (volume: string, st: { size: number, ctimeMs: number }): void {
    if (this.ready && !this.known.has(volume)) this.report({ volume, kind: 'added', size: st.size })
    this.known.set(volume, { size: st.size, ctimeMs: st.ctimeMs })
  }

  /** deleted forgets a volume volmirror itself deleted. */
  deleted (volume: string): void {
    this.known.delete(volume)
  }

  /** renamed moves what is known after a rename through the mount (files or directories). */
  renamed (from: string, to: string): void {
    for (const [name, seen] of [...this.known]) {
      if (isUnder(name, from)) {
        this.known.delete(name)
        this.known.set(renamePrefix(name, from, to), seen)
      }
    }
  }

  private event (kind: 'add' | 'change' | 'unlink', p: string, st?: Stats): void {
    this.settle?.()
    const volume = path.relative(this.root, p).split(path.sep).join('/')
    if (!isValidVolumeName(volume)) return
    const seen = this.known.get(volume)
    if (kind === 'unlink') {
      if (!seen) return // deleted through the mount (or never a file we knew)
      this.known.delete(volume)
      this.report({ volume, kind: 'removed' })
      return
    }
    if (!st?.isFile()) return
    const now: Seen = { size: st.size, ctimeMs: st.ctimeMs }
    if (!seen) {
      this.known.set(volume, now)
      if (this.ready) this.report({ volume, kind: 'added', size: st.size })
      return
    }
    // Only a newer ctime counts: a stat taken between two of our own writes
    // sees an older ctime (and maybe another size), which is not a change.
    if (now.ctimeMs > seen.ctimeMs) {
      this.known.set(volume, now)
      this.report({ volume, kind: 'changed', size: st.size })
    }
  }

  private report (c: OutsideChange): void {
    this.log.warn(`volume.${c.kind}_outside_mount`, { volume: c.volume, size: c.size, note: 'not journaled; flagged for checksum resync' })
    this.onChange(c)
  }
}
