/**
 * command-progress: what `verify`, `promote` and `demote` show while they
 * wait on a node. The work happens inside the node (control socket); the
 * CLI asks for the node's status meanwhile and shows a ProgressView on
 * stderr, so stdout stays the command's result (and `--json` parses).
 */
import { callControl } from '../control/control-socket.js'
import { VolmirrorError } from '../errors.js'
import type { DrStatus } from '../node/status.js'
import type { PrimaryStatus } from '../node/status.js'
import type { VerifyReport } from '../dr/verifier.js'
import { ProgressView } from './progress.js'

const POLL_MS = 250
/** verify counts regions, as its summary line does (one unit for both). */
const REGIONS = { name: 'regions' }

function progressView (): ProgressView {
  return new ProgressView({ stream: process.stderr })
}

/**
 * verifyWithProgress runs `verify` on the DR on `state` and shows how far
 * it got (the DR's status carries `verifyProgress`).
 */
export async function verifyWithProgress (state: string, repair: boolean): Promise<VerifyReport> {
  const view = progressView()
  const since = new Date().toISOString()
  let done = false
  let total = 0
  const poll = (async () => {
    while (!done) {
      const s = await callControl<DrStatus>(state, 'status', {}, 5000).catch(() => undefined)
      const vp = s?.verifyProgress
      // Only this verify's progress (a status may still show the last one).
      if (!done && s && vp && vp.startedAt >= since && vp.total > 0) {
        total = vp.total
        view.update('verify', { label: 'regions', kind: 'verify', done: vp.done, total: vp.total, unit: REGIONS })
      }
      await new Promise(resolve => setTimeout(resolve, POLL_MS))
    }
  })()
  try {
    const r = await callControl<VerifyReport>(state, 'verify', { repair }, 24 * 3600 * 1000)
    done = true
    if (total > 0) view.update('verify', { label: 'regions', kind: 'verify', done: total, total, unit: REGIONS })
    return r
  } finally {
    done = true
    await poll
    view.stop()
  }
}

/** RoleStatus is the part of a status that role waits look at. */
export interface RoleStatus { role: string, epoch: number, mount: string, listen?: string }

/** waitForRole waits until the node on `state` answers status with `role`, saying what it waits for. */
export async function waitForRole (state: string, role: 'primary' | 'dr', timeoutMs: number): Promise<RoleStatus> {
  const view = progressView()
  const started = Date.now()
  const deadline = started + timeoutMs
  let last: unknown
  try {
    for (;;) {
      try {
        const s = await callControl<RoleStatus>(state, 'status', {}, 5000)
        if (s.role === role) return s
      } catch (err) { last = err }
      if (Date.now() > deadline) {
        throw new VolmirrorError('TIMEOUT', `the node did not come up as ${role} within ${timeoutMs / 1000} s${last ? ` (${(last as Error).message})` : ''}; see its log`)
      }
      view.text('role', `waiting for the node to come up as ${role === 'dr' ? 'a DR' : 'the primary'} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  } finally {
    view.stop()
  }
}

/**
 * demoteWithProgress runs `demote` on the primary on `state` and shows the
 * DRs catching up (acknowledged seq against the primary's last) meanwhile.
 */
export async function demoteWithProgress (state: string, timeoutMs: number): Promise<{ lastSeq: number, follow: string }> {
  const view = progressView()
  let done = false
  let base: number | undefined
  const poll = (async () => {
    while (!done) {
      const s = await callControl<PrimaryStatus>(state, 'status', {}, 5000).catch(() => undefined)
      if (!done && s?.role === 'primary' && s.drs.length > 0) {
        const acked = Math.min(...s.drs.map(d => d.ackedSeq))
        base ??= acked
        view.update('demote', { label: 'records acknowledged by the DR', kind: 'demote', unit: { name: 'records' }, done: acked - base, total: Math.max(0, s.seq.last - base) })
      }
      await new Promise(resolve => setTimeout(resolve, POLL_MS))
    }
  })()
  try {
    return await callControl<{ lastSeq: number, follow: string }>(state, 'demote', { timeoutMs }, timeoutMs + 10_000)
  } finally {
    done = true
    await poll
    view.stop()
  }
}
