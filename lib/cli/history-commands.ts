/**
 * history-commands: the CLI of a DR's recovery points. `history` lists
 * them; `mount-at` mounts every volume as of one of them, read-only, and
 * `test-failover` writable through a scratch overlay, both for as long as
 * the command runs (Ctrl-C unmounts, and removes the overlay unless
 * `--keep`). The node does the work (lib/dr/views.ts); these only ask.
 */
import type { Command } from 'commander'
import { callControl } from '../control/control-socket.js'
import type { RecoverySpan, RecoveryStatus } from '../dr/recovery-history.js'
import type { ViewInfo, ViewSummary } from '../dr/views.js'
import { VolmirrorError } from '../errors.js'
import { formatBytes, parseDuration } from './parse.js'
import { common, type CommonOpts } from './options.js'

/** parseWhen reads a point in time: ISO 8601 (`2026-12-04T10:42:07Z`), or `now`, or `now-10m`. */
export function parseWhen (text: string, flag: string): number {
  const rel = /^now(?:-(.+))?$/.exec(text.trim())
  if (rel) return Date.now() - (rel[1] ? parseDuration(rel[1], flag) : 0)
  const t = Date.parse(text)
  if (Number.isNaN(t)) throw new VolmirrorError('USAGE', `${flag}: not a time: ${JSON.stringify(text)} (give ISO 8601 like 2026-12-04T10:42:07Z, or now-10m)`)
  return t
}

/** pointArgs reads --at/--seq (at most one). */
export function pointArgs (o: { at?: string, seq?: string }): { at?: number, seq?: number } {
  if (o.at !== undefined && o.seq !== undefined) throw new VolmirrorError('USAGE', '--at and --seq: give one of them')
  if (o.seq !== undefined) {
    const seq = Number(o.seq)
    if (!Number.isSafeInteger(seq) || seq < 0) throw new VolmirrorError('USAGE', `--seq: not a seq: ${JSON.stringify(o.seq)}`)
    return { seq }
  }
  return o.at !== undefined ? { at: parseWhen(o.at, '--at') } : {}
}

/** formatPoint shows a recovery point for people. */
export function formatPoint (p: { seq: number, ts: number }): string {
  const age = (Date.now() - p.ts) / 1000
  const ago = age < 120 ? `${age.toFixed(1)} s ago` : age < 7200 ? `${(age / 60).toFixed(1)} min ago` : `${(age / 3600).toFixed(1)} h ago`
  return `seq ${p.seq} at ${new Date(p.ts).toISOString()} (${ago})`
}

/** addHistoryCommands adds `history`, `mount-at` and `test-failover` to the program. */
export function addHistoryCommands (program: Command): void {
  common(program.command('history'))
    .description('list the recovery points a DR keeps (point-in-time views, test failover, promote --at)')
    .requiredOption('--state <dir>', 'state directory of the DR')
    .option('--json', 'print them as JSON', false)
    .addHelpText('after', `
Example:
  volmirror history --state ./drstate
  volmirror mount-at --state ./drstate --at 2026-12-04T10:42:07Z --mount /mnt/past`)
    .action(async (o: CommonOpts & { state: string, json: boolean }) => {
      const r = await callControl<{ status: RecoveryStatus, spans: RecoverySpan[], views: ViewInfo[] }>(o.state, 'history')
      if (o.json) { process.stdout.write(JSON.stringify(r, null, 2) + '\n'); return }
      const s = r.status
      const bounds = [s.windowSeconds !== null ? `${s.windowSeconds / 3600} h` : undefined, s.maxBytes !== null ? formatBytes(s.maxBytes) : undefined].filter(Boolean).join(', ')
      process.stdout.write(`${s.points} recovery points, ${formatBytes(s.bytes)} of undo entries (kept: ${bounds || 'no bound'}; ${s.dropped} dropped by retention since start)\n`)
      if (r.spans.length === 0) process.stdout.write('  none yet: the first comes once the DR is consistent\n')
      for (const sp of r.spans) {
        process.stdout.write(`  from ${formatPoint(sp.first)}\n    to ${formatPoint(sp.last)}: ${sp.points} points\n`)
      }
      for (const v of r.views) process.stdout.write(`  open: ${v.writable ? 'test failover' : 'view'} of seq ${v.point.seq} at ${v.mount}\n`)
    })

  const viewCommand = (name: string, writable: boolean): Command => common(program.command(name))
    .requiredOption('--state <dir>', 'state directory of the DR')
    .requiredOption('--mount <dir>', 'empty directory to mount the volumes on')
    .option('--at <time>', 'the last recovery point at or before this time (ISO 8601, or now-10m)')
    .option('--seq <n>', 'the last recovery point at or before this seq')

  viewCommand('mount-at', false)
    .description('mount every volume of a DR as of a recovery point, read-only, while replication goes on (until Ctrl-C)')
    .addHelpText('after', `
Example:
  volmirror mount-at --state ./drstate --at 2026-12-04T10:42:07Z --mount /mnt/past
  qemu-img check /mnt/past/vm1.qcow2; fsck -n /mnt/past/vm2.raw   # Ctrl-C in the first shell unmounts`)
    .action(async (o: CommonOpts & { state: string, mount: string, at?: string, seq?: string }) => {
      await holdView(o.state, { mount: o.mount, ...pointArgs(o) })
    })

  viewCommand('test-failover', true)
    .description('a writable mount of every volume at the latest (or an earlier) recovery point: boot a VM from it while protection goes on; writes go to a scratch overlay, the DR\'s images are untouched (until Ctrl-C)')
    .option('--scratch <dir>', 'where the overlay keeps what is written (default STATE/test-failover/ID)')
    .option('--keep', 'keep the overlay when the test ends', false)
    .addHelpText('after', `
Example:
  volmirror test-failover --state ./drstate --mount /mnt/test
  qemu-system-x86_64 -drive file=/mnt/test/vm1.raw,format=raw ...   # Ctrl-C ends the test, discards its writes`)
    .action(async (o: CommonOpts & { state: string, mount: string, at?: string, seq?: string, scratch?: string, keep: boolean }) => {
      await holdView(o.state, { mount: o.mount, ...pointArgs(o), writable: true, ...(o.scratch ? { scratch: o.scratch } : {}), ...(o.keep ? { keep: true } : {}) })
    })
}

/** holdView opens a view, says where it is, and keeps it until a signal (or the node ends it). */
async function holdView (state: string, req: Record<string, unknown>): Promise<void> {
  const v = await callControl<ViewInfo>(state, 'view.open', req)
  const what = v.writable ? 'test failover' : 'read-only view'
  process.stdout.write(`${what} of ${formatPoint(v.point)} mounted at ${v.mount}: ${v.volumes.length} volume(s)` +
    `${v.scratch ? `; writes go to ${v.scratch}` : ''}. Ctrl-C to end it.\n`)
  for (const x of v.volumes) process.stdout.write(`  ${x.name}  ${formatBytes(x.size)}\n`)
  const signal = new Promise<string>(resolve => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
  const held = callControl(state, 'view.hold', { id: v.id }, 0).then(() => 'closed by the node', (err: Error) => `the node went away (${err.message})`)
  const why = await Promise.race([signal, held])
  if (why === 'SIGINT' || why === 'SIGTERM') {
    const s = await callControl<ViewSummary>(state, 'view.close', { id: v.id })
    process.stdout.write(`${what} ended: unmounted ${v.mount}${v.writable ? `; ${formatBytes(s.writtenBytes)} written ${s.kept ? `kept in ${s.kept}` : 'discarded'}` : ''}\n`)
    return
  }
  throw new VolmirrorError('CLOSED', `${what} at ${v.mount} ended: ${why}`)
}
