/**
 * node-options: the settings every node has, whatever its role (the
 * directories, the region size, checkpoints, where it serves and how).
 */
import type { DataPath } from '../fuse/native-path.js'
import type { CompressMode } from '../http/compression.js'
import type { Logger } from '../log.js'

/** NodeOptions are the settings a primary and a DR share. */
export interface NodeOptions {
  /** The directory of volume images the node owns. */
  images: string
  /** The state directory (identity, journal, maps). */
  state: string
  /** The empty directory the volumes are mounted on. */
  mount: string
  log: Logger
  /** Region size, fixed at the state's first start. */
  regionSize?: number
  /** Longest time between checkpoints. */
  checkpointMs?: number
  /** Serve HTTP(S) here: a primary's DRs, a DR's status page and metrics. */
  listen?: { host: string, port: number }
  /** Serve `listen` over HTTPS with this certificate and key (PEM files). */
  tls?: { cert: string, key: string }
  /** Rate (bytes/s) at which idle time recomputes region codes; 0 turns it off. */
  codesRate?: number
  /** Read the mount's files through the thread pool (slow disks) instead of on the main thread (JavaScript data path). */
  asyncReads?: boolean
  /** Who serves the mount's reads and writes: native code on FUSE threads (default), or JavaScript. */
  dataPath?: DataPath
  /** `--compress`: zstd on the wire, asked for (a DR of its primary) and given (to DRs that ask); default auto. */
  compress?: CompressMode
}
