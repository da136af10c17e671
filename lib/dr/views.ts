/**
 * views: the point-in-time mounts a DR serves beside its own (`mount-at`,
 * read-only; `test-failover`, writable through a scratch overlay), while
 * replication goes on underneath.
 *
 * A view lives as long as the command that asked for it: the command holds
 * a control request open (`hold`), and when that connection goes (Ctrl-C,
 * kill), the view is unmounted and its scratch files removed; `close` does
 * the same on purpose. Nothing here touches the DR's images.
 */
import path from 'node:path'
import { VolmirrorError } from '../errors.js'
import { FuseMount } from '../fuse/mount.js'
import type { Logger } from '../log.js'
import type { ImageDir } from '../store/image-dir.js'
import type { DrVolumes } from './dr-volumes.js'
import { HistoryView } from './history-view.js'
import type { RecoveryHistory, RecoveryPoint } from './recovery-history.js'
import { Overlay, ViewFs } from './view-fs.js'

/** ViewRequest asks for a view: at a seq or a time (the latest point when neither), mounted at `mount`. */
export interface ViewRequest {
  seq?: number
  at?: number
  mount: string
  /** A test failover: writes go to an overlay in `scratch`, kept at the end when `keep`. */
  writable?: boolean
  scratch?: string
  keep?: boolean
}

/** ViewInfo describes an open view. */
export interface ViewInfo {
  id: number
  point: RecoveryPoint
  mount: string
  writable: boolean
  volumes: Array<{ name: string, size: number }>
  scratch?: string
}

/** ViewSummary is what closing a view reports. */
export interface ViewSummary { id: number, writtenBytes: number, kept?: string }

interface Open { info: ViewInfo, view: HistoryView, mount: FuseMount, overlay: Overlay | undefined, keep: boolean, closed: Promise<ViewSummary> | undefined, done: () => void, ended: Promise<void> }

/** Views opens and closes a DR's point-in-time mounts. */
export class Views {
  private readonly open = new Map<number, Open>()
  private nextId = 1

  constructor (
    private readonly history: RecoveryHistory,
    private readonly images: ImageDir,
    private readonly volumes: DrVolumes,
    private readonly stateDir: string,
    private readonly log: Logger,
  ) {}

  /** list lists the open views (status). */
  list (): ViewInfo[] {
    return [...this.open.values()].map(o => o.info)
  }

  /** start mounts a view. */
  async start (req: ViewRequest): Promise<ViewInfo> {
    const point = req.seq !== undefined || req.at !== undefined ? await this.history.find(req) : this.history.latest
    if (!point) {
      const s = this.history.status()
      const kept = s.first ? `points are kept from seq ${s.first.seq} (${new Date(s.first.ts).toISOString()}) to seq ${s.last!.seq} (${new Date(s.last!.ts).toISOString()})` : 'no recovery point is kept yet (the DR has not been consistent since history started)'
      throw new VolmirrorError('NOT_FOUND', `no recovery point at or before ${req.seq !== undefined ? `seq ${req.seq}` : req.at !== undefined ? new Date(req.at).toISOString() : 'now'}: ${kept}`)
    }
    const view = new HistoryView(point, this.history, this.images, this.volumes)
    await view.open()
    const id = this.nextId++
    let overlay: Overlay | undefined
    try {
      if (req.writable) overlay = new Overlay(req.scratch ?? path.join(this.stateDir, 'test-failover', `${id}-${point.seq}`))
      const mount = new FuseMount(req.mount, new ViewFs(view, this.images, overlay), {
        log: this.log, fsname: `volmirror-${req.writable ? 'test' : 'at'}:${point.seq}`, attrTimeout: 1,
      })
      await mount.mount()
      let done!: () => void
      const ended = new Promise<void>(resolve => { done = resolve })
      const info: ViewInfo = {
        id, point, mount: mount.mountPoint, writable: req.writable === true,
        volumes: view.list().map(v => ({ name: v.name, size: v.size })),
        ...(overlay ? { scratch: overlay.dir } : {}),
      }
      this.open.set(id, { info, view, mount, overlay, keep: req.keep === true, closed: undefined, done, ended })
      this.log.info(req.writable ? 'view.test_failover' : 'view.mounted', { id, seq: point.seq, at: new Date(point.ts).toISOString(), mount: mount.mountPoint, volumes: info.volumes.length })
      return info
    } catch (err) {
      view.close()
      overlay?.close(false)
      throw err
    }
  }

  /** hold resolves once the view is closed; if `signal` aborts first (the caller went away), the view is closed. */
  async hold (id: number, signal: AbortSignal): Promise<void> {
    const o = this.open.get(id)
    if (!o) throw new VolmirrorError('NOT_FOUND', `no view ${id} is open`)
    const onAbort = (): void => { void this.close(id).catch(err => this.log.warn('view.close_failed', { id, err })) }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      await o.ended
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** close unmounts a view and removes its scratch files (unless kept). */
  close (id: number): Promise<ViewSummary> {
    const o = this.open.get(id)
    if (!o) return Promise.reject(new VolmirrorError('NOT_FOUND', `no view ${id} is open`))
    o.closed ??= (async () => {
      await o.mount.unmount()
      o.view.close()
      const written = o.overlay?.written ?? 0
      o.overlay?.close(o.keep)
      this.open.delete(id)
      o.done()
      this.log.info('view.closed', { id, seq: o.info.point.seq, writtenBytes: written, ...(o.keep && o.overlay ? { kept: o.overlay.dir } : {}) })
      return { id, writtenBytes: written, ...(o.keep && o.overlay ? { kept: o.overlay.dir } : {}) }
    })()
    return o.closed
  }

  /** closeAll closes every view (the node stops). */
  async closeAll (): Promise<void> {
    await Promise.allSettled([...this.open.keys()].map(id => this.close(id)))
  }
}
