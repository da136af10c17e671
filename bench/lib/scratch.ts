/**
 * scratch: the run's working directory on the bench disk.
 *
 * One directory per run under /var/tmp (or --dir), removed at the end, but
 * never while anything is still mounted below it (a recursive delete through
 * a live passthrough mount would walk into the backing files).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import path from 'node:path'
import { forceUnmount, mountsUnder } from './mounts.js'

/** makeScratch creates a fresh run directory under `base`. */
export async function makeScratch (base: string): Promise<string> {
  return await mkdtemp(path.join(path.resolve(base), 'volmirror-bench-'))
}

/** removeScratch unmounts leftovers below `dir` and deletes it; false (and `dir` kept) when a mount would not go. */
export async function removeScratch (dir: string): Promise<boolean> {
  for (const m of await mountsUnder(dir)) await forceUnmount(m)
  const left = await mountsUnder(dir)
  if (left.length > 0) {
    process.stderr.write(`bench: not removing ${dir}: still mounted: ${left.join(', ')}\n`)
    return false
  }
  await rm(dir, { recursive: true, force: true })
  return true
}
