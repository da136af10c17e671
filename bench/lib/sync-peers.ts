/**
 * sync-peers: the servers PEERS.md copies images with, on 127.0.0.1, each
 * our child in the foreground (stopped by its PID):
 *
 * - qemu-nbd exporting a raw image read-only, for `qemu-img convert` from
 *   nbd:// (PEERS.md daemonizes it with --fork; in the foreground it is the
 *   same server);
 * - an rsync daemon with one writable module, for
 *   `rsync --inplace --no-whole-file` deltas.
 */
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Cleanup } from './cleanup.js'
import { runOk } from './exec.js'
import { MountProcess } from './mount-process.js'
import { accepts, freePort } from './ports.js'

/** Server is a running server on 127.0.0.1:`port`. */
export interface Server { port: number, stop: () => Promise<void> }

/** qemuNbdArgs is PEERS.md's export of `image` as `img` (read-only, persistent), without --fork. */
export function qemuNbdArgs (image: string, port: number): string[] {
  return ['--persistent', '-r', '-x', 'img', '-f', 'raw', '-t', '-b', '127.0.0.1', '-p', String(port), image]
}

/** startQemuNbd exports `image` over NBD on 127.0.0.1 as export `img`; logs to `log`. */
export async function startQemuNbd (image: string, log: string, cleanup: Cleanup): Promise<Server> {
  const port = await freePort()
  const proc = await MountProcess.start({
    name: 'qemu-nbd', cmd: 'qemu-nbd', args: qemuNbdArgs(image, port),
    logFile: log, cleanup, ready: () => accepts(port), stopTimeoutMs: 10_000,
  })
  return { port, stop: () => proc.stop() }
}

/** qemuConvertArgs is PEERS.md's copy: `qemu-img convert -f raw -O raw nbd://127.0.0.1:PORT/img OUT`. */
export function qemuConvertArgs (port: number, out: string): string[] {
  return ['convert', '-f', 'raw', '-O', 'raw', `nbd://127.0.0.1:${port}/img`, out]
}

/** qemuConvert copies the export to `out` and returns its wall time in seconds (the qemu-img process, start to exit). */
export async function qemuConvert (port: number, out: string): Promise<number> {
  const r = await runOk('qemu-img', qemuConvertArgs(port, out), { timeoutMs: 600_000 })
  return r.ms / 1000
}

/** startRsyncDaemon serves `dest` as the writable module `img` (as root: files keep root's ownership); config and log in `dir`. */
export async function startRsyncDaemon (dest: string, dir: string, cleanup: Cleanup): Promise<Server> {
  const port = await freePort()
  const conf = path.join(dir, 'rsyncd.conf')
  await writeFile(conf, [
    `pid file = ${path.join(dir, 'rsyncd.pid')}`,
    `log file = ${path.join(dir, 'rsyncd.log')}`,
    'use chroot = no',
    '[img]',
    `  path = ${dest}`,
    '  read only = no',
    '  uid = root',
    '  gid = root',
    '',
  ].join('\n'))
  const proc = await MountProcess.start({
    name: 'rsync daemon', cmd: 'rsync', args: ['--daemon', '--no-detach', '--address=127.0.0.1', `--port=${port}`, `--config=${conf}`],
    logFile: path.join(dir, 'rsyncd.out'), cleanup, ready: () => accepts(port), stopTimeoutMs: 10_000,
  })
  return { port, stop: () => proc.stop() }
}

/** rsyncArgs is PEERS.md's delta transfer of `src` onto the module's `name`. */
export function rsyncArgs (src: string, port: number, name: string): string[] {
  return ['--inplace', '--no-whole-file', '--stats', src, `rsync://127.0.0.1:${port}/img/${name}`]
}

/** RsyncResult is one transfer: wall time, and what rsync says it sent and matched. */
export interface RsyncResult { seconds: number, sentBytes: number, literalBytes: number, matchedBytes: number }

/**
 * rsyncDelta runs the transfer after backdating the destination (`touch -d
 * 2000-01-01`: otherwise rsync's size+mtime check skips the file, PEERS.md);
 * the touch is not timed.
 */
export async function rsyncDelta (src: string, port: number, destFile: string): Promise<RsyncResult> {
  await runOk('touch', ['-d', '2000-01-01', destFile])
  const r = await runOk('rsync', rsyncArgs(src, port, path.basename(destFile)), { timeoutMs: 600_000 })
  return { seconds: r.ms / 1000, ...parseRsyncStats(r.stdout) }
}

/** parseRsyncStats reads `--stats` output (numbers may have thousands separators). */
export function parseRsyncStats (out: string): { sentBytes: number, literalBytes: number, matchedBytes: number } {
  const num = (re: RegExp): number => {
    const m = re.exec(out)
    if (!m) throw new Error(`cannot read rsync's --stats (${re.source}): ${out.slice(-500)}`)
    return Number(m[1]!.replace(/[,.](?=\d{3}\b)/g, ''))
  }
  return {
    sentBytes: num(/Total bytes sent: ([\d,.]+)/),
    literalBytes: num(/Literal data: ([\d,.]+)/),
    matchedBytes: num(/Matched data: ([\d,.]+)/),
  }
}
