// Types for the parts of fuse-native 2.2.6 that volmirror uses.
declare module 'fuse-native' {
  type Cb = (...args: any[]) => void
  interface FuseOptions {
    force?: boolean
    mkdir?: boolean
    timeout?: number | false | Record<string, number | false>
    [k: string]: unknown
  }
  class Fuse {
    constructor (mnt: string, ops: Record<string, Cb>, opts?: FuseOptions)
    mnt: string
    opts: FuseOptions
    ops: Record<string, Cb>
    mount (cb: (err: Error | null) => void): void
    unmount (cb: (err: Error | null) => void): void
    _fuseOptions (): string
    static unmount (mnt: string, cb: (err: Error | null) => void): void
    static [errno: string]: any
  }
  export = Fuse
}
