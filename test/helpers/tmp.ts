/**
 * tmp: temporary directories, removed after the test (see cleanup.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { defer } from './cleanup.js'

/** tmpDir makes a fresh directory under the system temp dir and removes it after the test. */
export async function tmpDir (prefix = 'vm'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `volmirror-${prefix}-`))
  defer(() => rm(dir, { recursive: true, force: true, maxRetries: 3 }))
  return dir
}
