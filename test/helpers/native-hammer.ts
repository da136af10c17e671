/**
 * native-hammer: many native writers at once on a real journal (LevelDB and
 * segment files) and real image files, with no mount: native threads call
 * the write hook as FUSE threads would, and this process drains their
 * entries into the journal's index as a primary does.
 *
 * `hammerJournal` runs it in the calling process. As a child process
 * (`node native-hammer.js '<json>'`) it hammers without end, prints `ready`
 * once the first round is in, and waits to be killed (SIGKILL, by the test).
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { NativeMount } from '../../lib/fuse/native-path.js'
import { silentLogger } from '../../lib/log.js'
import { Journal } from '../../lib/store/journal.js'
import { StateStore } from '../../lib/store/state-store.js'

/** HammerArgs say where and how hard. */
export interface HammerArgs {
  state: string
  images: string
  volumes: number
  /** Bytes of each volume the writes land in. */
  span: number
  threads: number
  writesPerThread: number
  maxLength: number
  seed: number
  segmentSize?: number
  regionSize?: number
}

/** NATIVE_HAMMER is the compiled path of this script, for spawning it. */
export const NATIVE_HAMMER = fileURLToPath(import.meta.url)

/** volumeName is the i-th hammered volume. */
export const volumeName = (i: number): string => `v${i}.raw`

/** Hammering is a journal with native writers running on it. */
export interface Hammering {
  journal: Journal
  native: NativeMount
  /** round runs one round of writes on every thread; resolves with the writes that failed. */
  round: (seed: number) => Promise<number>
  /** stop stops the writers, brings in their last entries and closes everything. */
  stop: () => Promise<void>
}

/** startHammer opens the journal and the images and starts native writers on them. */
export async function startHammer (a: HammerArgs): Promise<Hammering> {
  const regionSize = a.regionSize ?? 1 << 20
  const store = await StateStore.open(a.state, { role: 'primary', regionSize })
  const journal = new Journal(store, silentLogger, a.segmentSize ? { segmentSize: a.segmentSize } : {})
  await journal.open()
  const native = new NativeMount('primary', regionSize)
  const fds: number[] = []
  const fhs: number[] = []
  for (let i = 0; i < a.volumes; i++) {
    const fd = fs.openSync(path.join(a.images, volumeName(i)), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644)
    fds.push(fd)
    fhs.push(native.bind(native.openVolume(fd, volumeName(i))))
  }
  let timer: NodeJS.Timeout | undefined
  const drain = (): void => {
    const entries = native.journal?.drain() ?? []
    if (entries.length > 0) journal.acceptNative(entries, i => volumeName(fhs.indexOf(entries[i]!.slot)))
  }
  journal.startNative(at => native.startJournal(at, () => { timer ??= setTimeout(() => { timer = undefined; drain() }, 1) }), drain)
  return {
    journal,
    native,
    round: seed => native.testHammer(fhs, { threads: a.threads, writes: a.writesPerThread, maxLength: a.maxLength, span: a.span, seed }),
    stop: async () => {
      clearTimeout(timer)
      native.stop()
      drain()
      journal.stopNative()
      native.close()
      await journal.close()
      await store.close()
      for (const fd of fds) fs.closeSync(fd)
    },
  }
}

async function child (a: HammerArgs): Promise<void> {
  const h = await startHammer(a)
  let said = false
  for (let round = 0; ; round++) {
    await h.round(a.seed + round)
    if (!said) { fs.writeSync(1, 'ready\n'); said = true }
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === NATIVE_HAMMER) {
  child(JSON.parse(process.argv[2]!) as HammerArgs).catch((err: unknown) => {
    process.stderr.write(`native-hammer: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exit(1)
  })
}
