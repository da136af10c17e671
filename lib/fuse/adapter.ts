/**
 * adapter: fuse-native's callbacks in terms of a VolumeFs.
 *
 * Each handler turns a FUSE path into a volume name, makes one VolumeFs
 * call, and answers with a result or an errno (lib/fuse/errno.ts). It also
 * guards libfuse's memory: a read lands in a buffer of ours and is copied
 * into the kernel's buffer only while the op is still live (fuse-native
 * frees that buffer when its own per-op timeout fires, and a late write into
 * it would corrupt memory). Writes pass the kernel's buffer on uncopied:
 * mutations have no timeout (mount.ts), so it lives until we answer.
 */
import { fusePathToName } from '../core/volume-name.js'
import type { VolumeFs } from '../core/volume-fs.js'
import type { Logger } from '../log.js'
import { toErrno } from './errno.js'

type Cb = (...args: any[]) => void

/** AdapterOptions: `opDeadlineMs` is how long an op may take before we stop touching its buffer. */
export interface AdapterOptions {
  opDeadlineMs: number
  log: Logger
}

/** BufferPool recycles the read buffers (the kernel asks for at most 128 KiB at a time). */
class BufferPool {
  private readonly free: Buffer[] = []
  constructor (private readonly size: number, private readonly keep: number) {}
  take (n: number): Buffer {
    if (n > this.size) return Buffer.allocUnsafeSlow(n)
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size)
  }

  give (b: Buffer): void {
    if (b.length === this.size && this.free.length < this.keep) this.free.push(b)
  }
}

/** makeFuseOps builds the fuse-native ops object for `vfs`. */
export function makeFuseOps (vfs: VolumeFs, opts: AdapterOptions): Record<string, Cb> {
  const pool = new BufferPool(128 * 1024, 64)
  const { log } = opts

  // ok/fail wrap a promise-returning call into a callback with (0, value) or errno.
  const answer = <T>(p: Promise<T>, cb: Cb, op: string, path: string): void => {
    p.then(v => v === undefined ? cb(0) : cb(0, v), (err) => {
      const errno = toErrno(err)
      if (errno === -5) log.warn('fuse.eio', { op, path, err })
      cb(errno)
    })
  }
  const named = (path: string, cb: Cb, fn: (name: string) => Promise<unknown>, op: string): void => {
    let name: string
    try {
      name = fusePathToName(path)
    } catch (err) {
      cb(toErrno(err))
      return
    }
    answer(fn(name), cb, op, path)
  }

  return {
    init (cb: Cb) { cb(0) },
    getattr (path: string, cb: Cb) { named(path, cb, n => vfs.getattr(n), 'getattr') },
    fgetattr (path: string, _fd: number, cb: Cb) { named(path, cb, n => vfs.getattr(n), 'fgetattr') },
    readdir (path: string, cb: Cb) { named(path, cb, n => vfs.readdir(n), 'readdir') },
    open (path: string, flags: number, cb: Cb) { named(path, cb, n => vfs.open(n, flags), 'open') },
    create (path: string, mode: number, cb: Cb) { named(path, cb, n => vfs.create(n, mode), 'create') },
    release (path: string, fd: number, cb: Cb) { named(path, cb, n => vfs.release(n, fd), 'release') },
    truncate (path: string, size: number, cb: Cb) { named(path, cb, n => vfs.truncate(n, size), 'truncate') },
    ftruncate (path: string, _fd: number, size: number, cb: Cb) { named(path, cb, n => vfs.truncate(n, size), 'ftruncate') },
    fsync (path: string, datasync: number, fd: number, cb: Cb) { named(path, cb, n => vfs.fsync(n, fd, datasync !== 0), 'fsync') },
    flush (path: string, fd: number, cb: Cb) { named(path, cb, n => vfs.flush(n, fd), 'flush') },
    unlink (path: string, cb: Cb) { named(path, cb, n => vfs.unlink(n), 'unlink') },
    mkdir (path: string, mode: number, cb: Cb) { named(path, cb, n => vfs.mkdir(n, mode), 'mkdir') },
    rmdir (path: string, cb: Cb) { named(path, cb, n => vfs.rmdir(n), 'rmdir') },
    chmod (path: string, mode: number, cb: Cb) { named(path, cb, n => vfs.chmod(n, mode), 'chmod') },
    chown (path: string, uid: number, gid: number, cb: Cb) { named(path, cb, n => vfs.chown(n, uid, gid), 'chown') },
    utimens (path: string, atime: number, mtime: number, cb: Cb) { named(path, cb, n => vfs.utimens(n, atime, mtime), 'utimens') },
    statfs (_path: string, cb: Cb) { answer(vfs.statfs(), cb, 'statfs', '/') },
    rename (from: string, to: string, cb: Cb) {
      let a: string, b: string
      try {
        a = fusePathToName(from)
        b = fusePathToName(to)
      } catch (err) {
        cb(toErrno(err))
        return
      }
      answer(vfs.rename(a, b), cb, 'rename', from)
    },

    read (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      const started = Date.now()
      let name: string
      try {
        name = fusePathToName(path)
      } catch (err) {
        cb(toErrno(err))
        return
      }
      const target = pool.take(len)
      vfs.read(name, fd, target, len, pos).then((n) => {
        // Past the deadline fuse-native may have timed the op out and freed
        // `buf`: answering is harmless (it ignores late answers), copying is not.
        if (Date.now() - started < opts.opDeadlineMs) {
          target.copy(buf, 0, 0, n)
          cb(n)
        } else {
          log.warn('fuse.late_read', { path, ms: Date.now() - started })
          cb(-110)
        }
        pool.give(target)
      }, (err) => {
        pool.give(target)
        const errno = toErrno(err)
        if (errno === -5) log.warn('fuse.eio', { op: 'read', path, err })
        cb(errno)
      })
    },

    write (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) {
      let name: string
      try {
        name = fusePathToName(path)
      } catch (err) {
        cb(toErrno(err))
        return
      }
      // No copy: `buf` stays valid until we answer (writes have no timeout, mount.ts).
      vfs.write(name, fd, len === buf.length ? buf : buf.subarray(0, len), pos).then(n => cb(n), (err) => {
        const errno = toErrno(err)
        if (errno === -5) log.warn('fuse.eio', { op: 'write', path, err })
        cb(errno)
      })
    },
  }
}
