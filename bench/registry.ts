/**
 * registry: every benchmark `npm run bench` knows, in the order they run.
 * To add one, write bench/NAME.ts exporting a `Benchmark` (lib/types.ts)
 * and append it here.
 */
import type { Benchmark } from './lib/types.js'
import { archiveBench } from './archive.js'
import { drColdRead } from './dr-cold-read.js'
import { drFirstRead } from './dr-first-read.js'
import { drHistory } from './dr-history.js'
import { drInitialSync } from './dr-initial-sync.js'
import { drLag } from './dr-lag.js'
import { drPresentRead } from './dr-present-read.js'
import { drResync } from './dr-resync.js'
import { primaryWrite } from './primary-write.js'
import { scale } from './scale.js'
import { syncWrite } from './sync-write.js'
import { wanCompress } from './wan-compress.js'
import { wanSync } from './wan-sync.js'

/** benchmarks are run by default, all of them, in this order. */
export const benchmarks: Benchmark[] = [
  primaryWrite,
  drPresentRead,
  drColdRead,
  drFirstRead,
  drInitialSync,
  drResync,
  drLag,
  syncWrite,
  drHistory,
  wanSync,
  wanCompress,
  archiveBench,
  scale,
]
