/**
 * primary: a primary node in the test process, on fresh directories.
 *
 * For integration tests that need the node's objects (journal, state).
 * Remember: this process hosts the mount, so touch it only through
 * child processes (fsop.ts, run()).
 */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { Logger, type LogFields, type LogLevel } from '../../lib/log.js'
import { PrimaryNode, type PrimaryOptions } from '../../lib/node/primary-node.js'
import { defer, trackMount, unmountHard } from './cleanup.js'
import { tmpDir } from './tmp.js'

/** LogEvent is one captured log event. */
export interface LogEvent { level: LogLevel, event: string, fields: LogFields }

/** captureLog returns a logger that keeps events in memory (and prints them with VOLMIRROR_TEST_LOG=1). */
export function captureLog (): { log: Logger, events: LogEvent[] } {
  const events: LogEvent[] = []
  const log = new Logger({
    level: 'debug',
    sink: (line, level, event, fields) => {
      events.push({ level, event, fields })
      if (process.env.VOLMIRROR_TEST_LOG) process.stderr.write(line + '\n')
    },
  })
  return { log, events }
}

/** TestPrimary is a running in-process primary and its directories. */
export interface TestPrimary {
  node: PrimaryNode
  root: string
  images: string
  state: string
  mnt: string
  events: LogEvent[]
  /** restart closes the node and starts it again on the same directories. */
  restart: () => Promise<TestPrimary>
}

/** startPrimary makes directories (or reuses `root`) and starts a primary on them; teardown closes it. */
export async function startPrimary (opts: Partial<PrimaryOptions> & { root?: string } = {}): Promise<TestPrimary> {
  const root = opts.root ?? await tmpDir('primary')
  const images = opts.images ?? path.join(root, 'images')
  const state = opts.state ?? path.join(root, 'state')
  const mnt = opts.mount ?? path.join(root, 'mnt')
  await mkdir(images, { recursive: true })
  await mkdir(mnt, { recursive: true })
  trackMount(mnt)
  const { log, events } = captureLog()
  const node = await PrimaryNode.start({ ...opts, images, state, mount: mnt, log })
  defer(async () => {
    await node.close()
    await unmountHard(mnt)
  })
  const t: TestPrimary = {
    node, root, images, state, mnt, events,
    restart: async () => {
      await node.close()
      return await startPrimary({ ...opts, root, images, state, mount: mnt })
    },
  }
  return t
}
