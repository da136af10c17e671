/**
 * status-watch: `volmirror status --watch`, a live view of a node until
 * Ctrl-C.
 *
 * For a DR: a bar per volume (hydration, or resync after an outage), a bar
 * for a verify under way, and a line with lag, applied seq and the
 * consistency state. For a primary: a line per DR (acknowledged seq, how
 * far behind, journaling or resyncing a bitmap) and one with its seq and
 * journal. In a terminal this is redrawn in place; elsewhere plain lines
 * are written every interval. With `json`, one status object per line.
 *
 * A node that stops answering (a role change restarts it) is reported on
 * the lag line and asked again; only the first call must succeed.
 */
import { lagText } from './format-status.js'
import { callControl } from '../control/control-socket.js'
import type { DrStatus } from '../node/status.js'
import type { PrimaryStatus } from '../node/status.js'
import { formatBytes } from './parse.js'
import { ProgressView } from './progress.js'

/** WatchOptions are the flags of `status --watch`. */
export interface WatchOptions {
  state: string
  intervalMs: number
  json: boolean
  /** Where to write (default stdout). */
  out?: NodeJS.WriteStream
  /** Resolves when the watch should end (Ctrl-C). */
  until: Promise<unknown>
}

type AnyStatus = (DrStatus | PrimaryStatus) & { role: string }

/** watchStatus runs the live view until `until` resolves. Fails (NODE_NOT_RUNNING) only if the first status call does. */
export async function watchStatus (o: WatchOptions): Promise<void> {
  const out = o.out ?? process.stdout
  let first: AnyStatus | undefined = await callControl<AnyStatus>(o.state, 'status')
  const view = o.json ? undefined : new ProgressView({ stream: out, plainIntervalMs: 0 })
  let ended = false
  void o.until.then(() => { ended = true })
  const wake = new Promise<void>(resolve => { void o.until.then(() => resolve()) })
  try {
    for (;;) {
      let s: AnyStatus | undefined = first
      let error: string | undefined
      first = undefined
      if (!s) {
        try {
          s = await callControl<AnyStatus>(o.state, 'status', {}, Math.max(5000, o.intervalMs))
        } catch (err) {
          error = (err as Error).message
        }
      }
      if (ended) return
      if (o.json) {
        out.write(JSON.stringify(s ?? { error }) + '\n')
      } else if (view) {
        if (s?.role === 'dr') showDr(view, s as DrStatus)
        else if (s?.role === 'primary') showPrimary(view, s as PrimaryStatus)
        else view.text('node', `node not answering: ${error ?? 'unknown role'}`)
        view.flush()
      }
      await Promise.race([wake, new Promise(resolve => setTimeout(resolve, o.intervalMs))])
      if (ended) return
    }
  } finally {
    view?.stop()
  }
}

/** roleChanged says so when a promote or demote changed the node's role, and drops the other role's lines. */
function roleChanged (view: ProgressView, role: string): void {
  const last = roles.get(view)
  if (last !== undefined && last !== role) view.print(`the node is now a ${role === 'dr' ? 'DR' : 'primary'}`)
  if (last !== role) for (const k of ['node', 'lag', 'seq', 'verify']) view.remove(k)
  roles.set(view, role)
}

const roles = new WeakMap<ProgressView, string>()

function showDr (view: ProgressView, s: DrStatus): void {
  roleChanged(view, 'dr')
  view.remove('node')
  const resyncing = s.resync !== undefined && !s.consistent
  for (const v of s.volumes) {
    view.update(`vol:${v.name}`, {
      label: v.name, kind: resyncing ? 'resync ' : 'hydrate',
      done: Math.min(v.size, v.regions.present * s.regionSize), total: v.size,
    })
  }
  const vp = s.verifyProgress
  if (vp && vp.total > 0 && (vp.finishedAt === undefined || view.itemText('verify'))) {
    const done = vp.finishedAt === undefined ? vp.done : vp.total
    view.update('verify', { label: 'all volumes', kind: 'verify ', done: done * s.regionSize, total: vp.total * s.regionSize })
  }
  const link = s.lag.connected ? '' : `  link DOWN${s.lag.lastError ? ` (${s.lag.lastError})` : ''}`
  view.text('lag', `${s.consistent ? 'CONSISTENT' : 'INCONSISTENT'}  lag ${lagText(s.lag)}  applied seq ${s.seq.applied} of ${s.lag.primaryLastSeq ?? '?'}` +
    `${link}${s.stalled ? `  STALLED: ${s.stalled}` : ''}${s.splitBrain ? `  SPLIT BRAIN: ${s.splitBrain}` : ''}`)
}

function showPrimary (view: ProgressView, s: PrimaryStatus): void {
  roleChanged(view, 'primary')
  view.remove('node')
  view.text('seq', `primary seq ${s.seq.last}  journal ${s.journal.records} records, ${formatBytes(s.journal.bytes)}  ` +
    `${s.volumes.length} volume(s)${s.demoting ? '  DEMOTING' : ''}${s.splitBrain ? '  SPLIT BRAIN' : ''}`)
  if (s.drs.length === 0) view.text('dr:none', 'no DR registered')
  else view.remove('dr:none')
  for (const d of s.drs) {
    view.text(`dr:${d.nodeId}`, `DR ${d.nodeId.slice(0, 8)}  acknowledged seq ${d.ackedSeq} (${d.lagSeq} behind)  ${d.mode}` +
      `${d.mode === 'bitmap' ? ` (${formatBytes(d.dirtyBytes)} dirty, to resync)` : ''}  last seen ${d.lastSeenAt}`)
  }
}
