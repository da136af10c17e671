/**
 * replay: crash recovery. Applies the journal's records above the image
 * watermark again, in order, in replay mode (namespace operations are
 * idempotent there; data operations are absolute). Used at every start, by
 * primary and DR alike. A torn tail (records whose bytes did not survive a
 * power loss) is dropped.
 */
import { isVolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import type { DecodedRecord, JournalRecord } from '../core/record.js'
import type { Journal } from './journal.js'

/** Applier is anything that applies records, with a replay mode (RecordApplier, DrApplier). */
export interface Applier { apply (rec: JournalRecord, replay: boolean): void }

/** replayJournal applies records in (afterSeq, upto] and returns the last seq applied. */
export async function replayJournal (journal: Journal, applier: Applier, afterSeq: number, log: Logger, upto = Infinity): Promise<number> {
  let at = Math.max(afterSeq, journal.firstSeq - 1)
  let count = 0
  const applyOne = (rec: JournalRecord): void => {
    try {
      applier.apply(rec, true)
    } catch (err) {
      log.error('replay.apply_failed', { seq: rec.seq, op: rec.op, volume: rec.volume, err })
      throw err
    }
    at = rec.seq
    count++
  }
  for (;;) {
    let batch
    try {
      batch = await journal.read(at, { upto, maxBytes: 64 * 1024 * 1024 })
    } catch (err) {
      if (!isTorn(err)) throw err
      // Some record in this batch is unreadable: apply the good ones before
      // it, one by one, then drop the tail from the first bad one.
      batch = []
      for (;;) {
        const one: DecodedRecord[] | undefined = await journal.read(at + batch.length, { upto, maxRecords: 1 }).catch((e: unknown) => { if (isTorn(e)) return undefined; throw e })
        if (!one || one.length === 0) break
        batch.push(one[0]!)
      }
      const good = at + batch.length
      for (const rec of batch) applyOne(rec)
      // Bytes the index points at did not reach the disk (the machine lost
      // power after the last fsync): the records from here on were never
      // acknowledged as durable. Drop them rather than apply garbage.
      log.warn('replay.torn_tail', { after: good, err })
      await journal.truncateAfter(good)
      break
    }
    if (batch.length === 0) break
    for (const rec of batch) applyOne(rec)
  }
  if (count > 0) log.info('replay.done', { from: afterSeq + 1, to: at, records: count })
  return at
}

/** isTorn tells whether a local journal read failed on bytes that never made it to disk whole. */
function isTorn (err: unknown): boolean {
  return isVolmirrorError(err, 'RECORD_CORRUPT') || isVolmirrorError(err, 'RECORD_VERSION')
}
