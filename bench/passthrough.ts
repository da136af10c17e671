/**
 * passthrough: a bare passthrough file system on fuse-native, with no
 * journal: the ceiling for FUSE in Node on this machine. The primary-write
 * benchmark mounts it next to volmirror so readers can see how much of the
 * gap to bindfs is FUSE-in-Node itself and how much is volmirror's own work.
 *
 * Same mount options as volmirror (lib/fuse/mount.ts): big writes, 128 KiB
 * reads and writes, kernel permission checks, other users allowed. Every
 * handler is one async `fs` call on a real file descriptor (the libuv pool,
 * like volmirror's image I/O). O_DIRECT is dropped on the backing file, as
 * volmirror and bindfs do. No op has a timeout, so the kernel's buffers stay
 * valid until we answer.
 *
 * Usage: node dist/bench/passthrough.js SRC MNT   (SIGTERM/SIGINT unmounts and exits)
 */
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import Fuse from 'fuse-native'

type Cb = (...args: any[]) => void

/** MOUNT_OPTIONS are volmirror's kernel-facing options, as one `-o` argument. */
export const MOUNT_OPTIONS = 'big_writes,max_write=131072,max_read=131072,default_permissions,allow_other'

const { O_CREAT, O_EXCL, O_TRUNC, O_NOCTTY, O_DIRECT, O_RDWR } = fs.constants
const DROP = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | (O_DIRECT ?? 0)

/** passthroughOps maps every FUSE op to one async call on `src`. */
export function passthroughOps (src: string): Record<string, Cb> {
  const real = (p: string): string => path.join(src, p)
  const errno = (err: NodeJS.ErrnoException | null): number => err ? (err.errno ?? -5) : 0
  const done = (cb: Cb) => (err: NodeJS.ErrnoException | null) => cb(errno(err))
  return {
    init (cb: Cb) { cb(0) },
    getattr (p: string, cb: Cb) { fs.lstat(real(p), (err, st) => err ? cb(errno(err)) : cb(0, st)) },
    fgetattr (_p: string, fd: number, cb: Cb) { fs.fstat(fd, (err, st) => err ? cb(errno(err)) : cb(0, st)) },
    access (p: string, mode: number, cb: Cb) { fs.access(real(p), mode, done(cb)) },
    readdir (p: string, cb: Cb) { fs.readdir(real(p), (err, names) => err ? cb(errno(err)) : cb(0, names)) },
    open (p: string, flags: number, cb: Cb) { fs.open(real(p), flags & ~DROP, (err, fd) => err ? cb(errno(err)) : cb(0, fd)) },
    create (p: string, mode: number, cb: Cb) { fs.open(real(p), O_CREAT | O_RDWR, mode, (err, fd) => err ? cb(errno(err)) : cb(0, fd)) },
    release (_p: string, fd: number, cb: Cb) { fs.close(fd, done(cb)) },
    flush (_p: string, _fd: number, cb: Cb) { cb(0) },
    fsync (_p: string, datasync: number, fd: number, cb: Cb) { (datasync ? fs.fdatasync : fs.fsync)(fd, done(cb)) },
    read (_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      fs.read(fd, buf, 0, len, pos, (err, n) => cb(err ? errno(err) : n))
    },
    write (_p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      fs.write(fd, buf, 0, len, pos, (err, n) => cb(err ? errno(err) : n))
    },
    truncate (p: string, size: number, cb: Cb) { fs.truncate(real(p), size, done(cb)) },
    ftruncate (_p: string, fd: number, size: number, cb: Cb) { fs.ftruncate(fd, size, done(cb)) },
    unlink (p: string, cb: Cb) { fs.unlink(real(p), done(cb)) },
    rename (a: string, b: string, cb: Cb) { fs.rename(real(a), real(b), done(cb)) },
    mkdir (p: string, mode: number, cb: Cb) { fs.mkdir(real(p), { mode }, done(cb)) },
    rmdir (p: string, cb: Cb) { fs.rmdir(real(p), done(cb)) },
    chmod (p: string, mode: number, cb: Cb) { fs.chmod(real(p), mode, done(cb)) },
    chown (p: string, uid: number, gid: number, cb: Cb) { fs.chown(real(p), uid, gid, done(cb)) },
    utimens (p: string, atime: number, mtime: number, cb: Cb) { fs.utimes(real(p), new Date(atime), new Date(mtime), done(cb)) },
    statfs (_p: string, cb: Cb) {
      fs.statfs(src, (err, s) => err ? cb(errno(err)) : cb(0, {
        bsize: s.bsize, frsize: s.bsize, blocks: s.blocks, bfree: s.bfree, bavail: s.bavail,
        files: s.files, ffree: s.ffree, favail: s.ffree, fsid: 0, flag: 0, namemax: 255,
      }))
    },
  }
}

/** PassthroughFuse gives fuse-native our option string (it builds its own from a fixed list otherwise). */
class PassthroughFuse extends Fuse {
  override _fuseOptions (): string { return '-o' + MOUNT_OPTIONS }
}

async function main (): Promise<void> {
  const [src, mnt] = process.argv.slice(2)
  if (!src || !mnt) {
    process.stderr.write('usage: node dist/bench/passthrough.js SRC MNT\n')
    process.exit(2)
  }
  const fuse = new PassthroughFuse(path.resolve(mnt), passthroughOps(path.resolve(src)), { timeout: false })
  await new Promise<void>((resolve, reject) => fuse.mount(err => err ? reject(err) : resolve()))
  process.stderr.write(`passthrough: ${src} mounted on ${mnt} (-o ${MOUNT_OPTIONS})\n`)
  let stopping = false
  const stop = (): void => {
    if (stopping) process.exit(1)
    stopping = true
    fuse.unmount((err) => {
      if (err) process.stderr.write(`passthrough: unmount failed: ${err.message}\n`)
      process.exit(err ? 1 : 0)
    })
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

// Mount only when run as a program, not when imported for its ops.
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`passthrough: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exit(1)
  })
}
