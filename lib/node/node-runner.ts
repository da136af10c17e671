/**
 * node-runner: one process, one node, whose role can change.
 *
 * The role is state, not a different binary: `promote` turns a running DR
 * into a primary (finish applying, bump the epoch, make the mount writable,
 * serve from the DR's --listen address), `demote` turns a running primary
 * into a DR of its peer after that peer has everything (planned
 * switchover). The runner holds whichever node is current, answers the
 * control commands for transitions, and is what the CLI keeps running.
 *
 * A transition closes the current node (so the mount is briefly unmounted
 * and mounted again) and starts the other kind on the same directories.
 * The control call is answered once the transition is checked and under
 * way; the CLI then follows it through `status`.
 */
import { VolmirrorError } from '../errors.js'
import { PrimaryClient } from '../http/client.js'
import { DrNode, type DrOptions } from './dr-node.js'
import type { RollbackReport } from '../dr/rollback.js'
import type { RecoveryPoint } from '../dr/recovery-history.js'
import type { NodeOptions } from './node-options.js'
import { PrimaryNode, type PrimaryOptions } from './primary-node.js'

/** RunnerConfig is everything either role needs (the CLI's flags). */
export interface RunnerConfig extends Pick<NodeOptions, 'images' | 'state' | 'mount' | 'log' | 'regionSize' | 'checkpointMs' | 'listen' | 'dataPath'> {
  /** Primary role (and a DR once promoted). */
  primary?: Pick<PrimaryOptions, 'retainJournal' | 'groupMs' | 'tls' | 'journalLimit' | 'asyncReads' | 'sync' | 'compress' | 'archive' | 'drExpireMs'>
  tokenFile?: string
  /** DR role. */
  dr?: Omit<DrOptions, 'images' | 'state' | 'mount' | 'log' | 'primary' | 'regionSize' | 'checkpointMs' | 'listen' | 'token'> & { url: string, token: string, ca?: string }
}

/** PromoteReply answers `volmirror promote`. */
export interface PromoteReply {
  accepted: true
  appliedSeq: number
  inconsistent: Array<{ volume: string, absentRegions: number, hydratedPercent: number }>
  /** Set when the DR went back to a recovery point first (promote --at, or a resync under way). */
  rolledBack?: RollbackReport
}

/** NodeRunner runs the current node of a process. */
export class NodeRunner {
  private transition: Promise<void> | undefined
  /** Rejected when a transition left the process without a node. */
  readonly failed: Promise<never>
  private fail!: (err: Error) => void

  private constructor (private readonly cfg: RunnerConfig, public node: PrimaryNode | DrNode) {
    this.failed = new Promise<never>((_resolve, reject) => { this.fail = reject })
    this.failed.catch(() => {})
  }

  /** startPrimary starts a primary. */
  static async startPrimary (cfg: RunnerConfig): Promise<NodeRunner> {
    const r = new NodeRunner(cfg, await PrimaryNode.start(r0(cfg)))
    r.wire()
    return r
  }

  /** startDr starts a DR of `cfg.dr.url`. */
  static async startDr (cfg: RunnerConfig): Promise<NodeRunner> {
    const r = new NodeRunner(cfg, await DrNode.start(d0(cfg, cfg.dr!)))
    r.wire()
    return r
  }

  get mountPoint (): string { return this.node.mount.mountPoint }

  /** close closes the current node (waiting for a transition under way). */
  async close (): Promise<void> {
    await this.transition?.catch(() => {})
    await this.node.close()
    const client = this.node instanceof DrNode ? this.node.opts.primary : this.node.opts.formerPrimary
    await (client as PrimaryClient | undefined)?.close?.().catch(() => {})
  }

  private wire (): void {
    const control = this.node.control
    control.handle('promote', async body => await this.promote(body.force === true, {
      ...(typeof body.seq === 'number' ? { seq: body.seq } : {}),
      ...(typeof body.at === 'number' ? { at: body.at } : {}),
    }))
    control.handle('demote', async body => await this.demote(Number(body.timeoutMs ?? 60_000)))
  }

  /**
   * promote checks a DR can be promoted and starts the transition to
   * primary. With `to` (promote --at), or when the DR is not consistent but
   * keeps a recovery point (a resync under way), it first goes back to that
   * point: the new primary starts from a state its volumes really had.
   */
  private async promote (force: boolean, to: { seq?: number, at?: number }): Promise<PromoteReply> {
    const node = this.node
    if (!(node instanceof DrNode)) throw new VolmirrorError('WRONG_ROLE', 'this node is already a primary')
    if (this.transition) throw new VolmirrorError('WRONG_ROLE', 'a role change is already under way')
    let s = await node.status()
    let point: RecoveryPoint | undefined
    if (to.seq !== undefined || to.at !== undefined) {
      if (!node.recovery) throw new VolmirrorError('USAGE', 'this DR keeps no history: promote --at needs a DR started with --history')
      point = await node.recovery.find(to)
      if (!point) throw new VolmirrorError('NOT_FOUND', `no recovery point at or before ${to.seq !== undefined ? `seq ${to.seq}` : new Date(to.at!).toISOString()} is kept (see volmirror history)`)
    } else if (!s.consistent && !force && node.recovery?.latest && s.promotionPoint?.rollback) {
      point = node.recovery.latest
    }
    let rolledBack: RollbackReport | undefined
    if (point && point.seq < s.seq.applied + (s.consistent ? 0 : 1)) {
      this.cfg.log.warn('promote.rollback', { toSeq: point.seq, at: new Date(point.ts).toISOString(), appliedSeq: s.seq.applied, consistent: s.consistent })
      rolledBack = await node.rollbackTo(point)
      s = await node.status()
    }
    const inconsistent = s.volumes.filter(v => v.state !== 'consistent').map(v => ({ volume: v.name, absentRegions: v.regions.absent, hydratedPercent: v.hydratedPercent }))
    if (inconsistent.length > 0 && !force) {
      throw new VolmirrorError('INCONSISTENT',
        `not promoting: ${inconsistent.length} volume(s) are not consistent yet (${inconsistent.map(v => `${v.volume}: ${v.absentRegions} regions absent, ${v.hydratedPercent}% hydrated`).join('; ')}); ` +
        'wait for hydration to finish, or promote with --force and accept that those regions keep what this DR holds',
        { details: { inconsistent } })
    }
    if (inconsistent.length > 0) this.cfg.log.warn('promote.forced', { inconsistent })
    this.transition = this.change(async () => {
      await node.close()
      // The client of the old primary goes to the new primary, which owns it
      // from now on: it watches the old primary for split brain.
      this.node = await PrimaryNode.start({ ...r0(this.cfg), promote: true, formerPrimary: node.opts.primary })
    })
    return { accepted: true, appliedSeq: s.seq.applied, inconsistent, ...(rolledBack ? { rolledBack } : {}) }
  }

  /** demote waits until the DRs have everything, then turns this primary into a DR of its peer. */
  private async demote (timeoutMs: number): Promise<{ lastSeq: number, follow: string }> {
    const node = this.node
    if (!(node instanceof PrimaryNode)) throw new VolmirrorError('WRONG_ROLE', 'only a primary can be demoted')
    if (this.transition) throw new VolmirrorError('WRONG_ROLE', 'a role change is already under way')
    const { lastSeq, follow } = await node.demote(timeoutMs)
    if (!follow) {
      throw new VolmirrorError('USAGE', 'the DR did not say where it will serve once promoted (start it with --listen): demoted nothing; writes resume')
    }
    this.transition = this.change(async () => {
      await node.close()
      this.node = await DrNode.start(d0(this.cfg, { ...this.cfg.dr, url: follow, token: node.token }))
    })
    return { lastSeq, follow }
  }

  private change (fn: () => Promise<void>): Promise<void> {
    const p = (async () => {
      await new Promise(resolve => setImmediate(resolve)) // answer the control call first
      try {
        await fn()
        this.wire()
      } catch (err) {
        this.cfg.log.error('node.transition_failed', { err })
        this.fail(err as Error)
        throw err
      } finally {
        this.transition = undefined
      }
    })()
    p.catch(() => {})
    return p
  }
}

function r0 (cfg: RunnerConfig): PrimaryOptions {
  return {
    images: cfg.images, state: cfg.state, mount: cfg.mount, log: cfg.log,
    ...(cfg.regionSize !== undefined ? { regionSize: cfg.regionSize } : {}),
    ...(cfg.checkpointMs !== undefined ? { checkpointMs: cfg.checkpointMs } : {}),
    ...(cfg.listen ? { listen: cfg.listen } : {}),
    ...(cfg.tokenFile ? { tokenFile: cfg.tokenFile } : {}),
    ...(cfg.dataPath ? { dataPath: cfg.dataPath } : {}),
    ...cfg.primary,
  }
}

function d0 (cfg: RunnerConfig, dr: NonNullable<RunnerConfig['dr']>): DrOptions {
  const { url, token, ca, ...rest } = dr
  const compress = cfg.primary?.compress
  return {
    images: cfg.images, state: cfg.state, mount: cfg.mount, log: cfg.log,
    primary: new PrimaryClient(url, { token, ...(ca ? { ca } : {}), ...(compress ? { compress } : {}) }),
    ...(compress ? { compress } : {}),
    primaryLabel: url,
    ...(cfg.regionSize !== undefined ? { regionSize: cfg.regionSize } : {}),
    ...(cfg.checkpointMs !== undefined ? { checkpointMs: cfg.checkpointMs } : {}),
    // A DR serves its status page and metrics where it will serve DRs once promoted.
    ...(cfg.listen ? { listen: cfg.listen, token } : {}),
    ...(cfg.listen && cfg.primary?.tls ? { tls: cfg.primary.tls } : {}),
    ...(cfg.primary?.asyncReads ? { asyncReads: true } : {}),
    ...(cfg.dataPath ? { dataPath: cfg.dataPath } : {}),
    ...rest,
  }
}
