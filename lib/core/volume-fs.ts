/**
 * volume-fs: the contract between a node's core and its FUSE mount.
 *
 * The FUSE adapter (lib/fuse/adapter.ts) turns each kernel request into one
 * call here and each thrown VolmirrorError into an errno; nothing else
 * crosses. Names are volume names (checked; '' is the image directory
 * itself), never FUSE paths. The primary (lib/primary/primary-fs.ts) and
 * the DR implement it.
 */

/** FileStat is what getattr reports (the subset of fs.Stats the kernel uses). */
export interface FileStat {
  mode: number
  uid: number
  gid: number
  size: number
  nlink: number
  ino: number
  dev: number
  rdev: number
  blksize: number
  blocks: number
  /** Times in milliseconds (FUSE through fuse-native carries milliseconds). */
  atime: number
  mtime: number
  ctime: number
}

/** FsStat is what statfs reports. */
export interface FsStat {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  favail: number
  fsid: number
  flag: number
  namemax: number
}

/** VolumeFs is a file system of volumes. Every method may throw a VolmirrorError. */
export interface VolumeFs {
  getattr (name: string): Promise<FileStat>
  readdir (name: string): Promise<string[]>
  /** open returns a handle (>= 1). */
  open (name: string, flags: number): Promise<number>
  create (name: string, mode: number): Promise<number>
  release (name: string, handle: number): Promise<void>
  /** read fills `target` from `position`; returns bytes read (short only at end of file). */
  read (name: string, handle: number, target: Buffer, length: number, position: number): Promise<number>
  /**
   * write stores `data` at `position`. `data` is the kernel's buffer; it
   * stays valid until the returned promise settles (the mount never times a
   * write out), and not a moment longer.
   */
  write (name: string, handle: number, data: Buffer, position: number): Promise<number>
  truncate (name: string, size: number): Promise<void>
  fsync (name: string, handle: number, datasync: boolean): Promise<void>
  flush (name: string, handle: number): Promise<void>
  unlink (name: string): Promise<void>
  rename (from: string, to: string): Promise<void>
  mkdir (name: string, mode: number): Promise<void>
  rmdir (name: string): Promise<void>
  chmod (name: string, mode: number): Promise<void>
  chown (name: string, uid: number, gid: number): Promise<void>
  utimens (name: string, atimeMs: number, mtimeMs: number): Promise<void>
  statfs (): Promise<FsStat>
}
