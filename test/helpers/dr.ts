/**
 * dr: a DR node in the test process, following an in-process primary
 * (test/helpers/primary.ts) without HTTP. Its mount, like the primary's, is
 * touched only from child processes; teardown closes and unmounts it.
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { DrNode } from '../../lib/node/dr-node.js'
import { defer, trackMount, unmountHard } from './cleanup.js'
import { captureLog, type TestPrimary } from './primary.js'
import { tmpDir } from './tmp.js'

/** TestDr is a running in-process DR and its directories. */
export interface TestDr { node: DrNode, mnt: string, images: string, state: string }

/** startDr starts a DR of `p` on fresh directories (hydration off unless asked). */
export async function startDr (p: TestPrimary, opts: { hydrateRate?: number, fetchTimeoutMs?: number, dataPath?: 'native' | 'js' } = {}): Promise<TestDr> {
  const root = await tmpDir('dr')
  const images = path.join(root, 'images')
  const state = path.join(root, 'state')
  const mnt = path.join(root, 'mnt')
  await mkdir(mnt, { recursive: true })
  trackMount(mnt)
  const { log } = captureLog()
  const node = await DrNode.start({ images, state, mount: mnt, primary: p.node.source, log, hydrateRate: opts.hydrateRate ?? 0, pollWaitMs: 2000, ...(opts.fetchTimeoutMs ? { fetchTimeoutMs: opts.fetchTimeoutMs } : {}), ...(opts.dataPath ? { dataPath: opts.dataPath } : {}) })
  defer(async () => { await node.close(); await unmountHard(mnt) })
  return { node, mnt, images, state }
}
