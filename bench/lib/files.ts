/**
 * files: the data files the benchmarks write and read.
 */
import { randomFillSync } from 'node:crypto'
import { open } from 'node:fs/promises'
import { runOk } from './exec.js'

const MiB = 1 << 20

/**
 * createTarget writes a file of `mib` MiB of zeros and fsyncs it, so every
 * block is allocated before any setup writes to it: all setups then
 * overwrite allocated blocks, and none pays (or skips) first-write
 * allocation. Runs before a setup mounts, outside any FUSE layer.
 */
export async function createTarget (file: string, mib: number): Promise<void> {
  await runOk('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync', 'status=none'], { timeoutMs: 600_000 })
}

/** writeRandomFile fills `file` with `mib` MiB of random bytes (non-zero, incompressible data for dd to copy). */
export async function writeRandomFile (file: string, mib: number): Promise<void> {
  const fh = await open(file, 'w')
  try {
    const buf = Buffer.allocUnsafe(MiB)
    for (let i = 0; i < mib; i++) {
      randomFillSync(buf)
      await fh.write(buf, 0, MiB, i * MiB)
    }
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** warm reads `file` once so a later copy from it comes from the page cache, not the disk under test. */
export async function warm (file: string): Promise<void> {
  await runOk('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M', 'status=none'], { timeoutMs: 600_000 })
}
