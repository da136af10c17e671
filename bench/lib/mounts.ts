/**
 * mounts: what is mounted where, read from /proc/self/mountinfo (never by
 * stat-ing into a mount, which could hang on a stuck FUSE daemon), and how
 * to remove a leftover mount.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'

function unescapeMount (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

async function mountPoints (): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')
  return text.split('\n').map(l => l.split(' ')[4]).filter((p): p is string => !!p).map(unescapeMount)
}

/** isMountpoint tells whether something is mounted exactly at `dir` (like `mountpoint -q`). */
export async function isMountpoint (dir: string): Promise<boolean> {
  const d = path.resolve(dir)
  return (await mountPoints()).includes(d)
}

/** mountsUnder lists the mount points at or below `dir`, deepest first. */
export async function mountsUnder (dir: string): Promise<string[]> {
  const d = path.resolve(dir)
  return (await mountPoints()).filter(p => p === d || p.startsWith(d + '/')).sort((a, b) => b.length - a.length)
}

/** forceUnmount removes the mount at `dir` (`fusermount -uz`, then `umount -l`); true when nothing is left there. */
export async function forceUnmount (dir: string): Promise<boolean> {
  const sh = (cmd: string, args: string[]): Promise<void> => new Promise(resolve => execFile(cmd, args, () => resolve()))
  if (!(await isMountpoint(dir))) return true
  await sh('fusermount', ['-uz', dir])
  if (!(await isMountpoint(dir))) return true
  await sh('umount', ['-l', dir])
  return !(await isMountpoint(dir))
}
