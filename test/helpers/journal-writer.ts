/**
 * journal-writer: appends journal records in a child process, then dies by
 * SIGKILL, so a test can check what a crash leaves behind.
 *
 * Usage: `node journal-writer.js '<json>'` with {@link JournalWriterArgs}.
 * It opens the state directory (optionally replays it first, as a node
 * does at start), appends `count` write records with seeded payloads
 * (record i: volume `v.raw`, offset `i * size`, data `pattern(seed + i,
 * size)`), prints one JSON line `{"first": seq, "last": seq}` on stdout and
 * kills itself with SIGKILL at once. The appends run in one synchronous loop,
 * so the journal's write-behind index (5 ms delay) never gets to write their
 * LevelDB entries, unless `indexFirst` asks for the first records to be
 * indexed before the rest are appended.
 */
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { silentLogger } from '../../lib/log.js'
import { RecordApplier } from '../../lib/store/applier.js'
import { ImageDir } from '../../lib/store/image-dir.js'
import { Journal } from '../../lib/store/journal.js'
import { replayJournal } from '../../lib/store/replay.js'
import { StateStore } from '../../lib/store/state-store.js'
import { VolumeFiles } from '../../lib/store/volume-files.js'
import { pattern } from './pattern.js'

/** JournalWriterArgs is the child's one argument, as JSON. */
export interface JournalWriterArgs {
  state: string
  count: number
  seed: number
  /** Payload bytes per record. */
  size: number
  segmentSize?: number
  /** Await the index after this many appends (the rest stay unindexed). */
  indexFirst?: number
  /** Replay the journal into this image directory first (as a node's start does)... */
  replayImages?: string
  /** ...from this image watermark (default 0). */
  replayAfter?: number
}

/** JOURNAL_WRITER is the compiled path of this script, for spawning it. */
export const JOURNAL_WRITER = fileURLToPath(import.meta.url)

/** writerRecord is the payload the writer gives its i-th record. */
export function writerRecord (seed: number, i: number, size: number): { offset: number, data: Buffer } {
  return { offset: i * size, data: pattern(seed + i, size) }
}

async function main (args: JournalWriterArgs): Promise<void> {
  const store = await StateStore.open(args.state, { role: 'primary' })
  const journal = new Journal(store, silentLogger, args.segmentSize ? { segmentSize: args.segmentSize } : {})
  await journal.open()
  if (args.replayImages) {
    const images = new ImageDir(args.replayImages)
    const applier = new RecordApplier(images, new VolumeFiles(images), { zeroes: 'write', deletes: 'unlink' })
    await replayJournal(journal, applier, args.replayAfter ?? 0, silentLogger)
  }
  const first = journal.lastSeq + 1
  let last = journal.lastSeq
  for (let i = 0; i < args.count; i++) {
    const { offset, data } = writerRecord(args.seed, i, args.size)
    last = journal.append({ op: 'write', volume: 'v.raw', offset, data }).seq
    if (args.indexFirst !== undefined && i + 1 === args.indexFirst) await journal.indexed()
  }
  fs.writeSync(1, JSON.stringify({ first, last }) + '\n')
  process.kill(process.pid, 'SIGKILL')
}

if (process.argv[1] && path.resolve(process.argv[1]) === JOURNAL_WRITER) {
  main(JSON.parse(process.argv[2]!) as JournalWriterArgs).catch((err: unknown) => {
    process.stderr.write(`journal-writer: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exit(1)
  })
}
