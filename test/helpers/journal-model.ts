/**
 * journal-model: a stopped node's journal, read in the test process, and
 * the image directory it describes, rebuilt in memory by applying its
 * records (the model tests compare nodes against).
 */
import assert from 'node:assert/strict'
import type { DecodedRecord } from '../../lib/core/record.js'
import { silentLogger } from '../../lib/log.js'
import { Journal } from '../../lib/store/journal.js'
import { StateStore } from '../../lib/store/state-store.js'

const KiB = 1024

/** Tree is an image directory in memory: volume name -> bytes. */
export type Tree = Map<string, Buffer>

/**
 * eachRecord opens the stopped node's journal in this process, checks that
 * it is gap-free from seq 1, and hands over every record in order.
 */
export async function eachRecord (state: string, fn: (r: DecodedRecord) => void, retained = true): Promise<number> {
  const store = await StateStore.open(state, { role: 'primary' })
  const journal = new Journal(store, silentLogger)
  try {
    await journal.open()
    if (retained) assert.equal(journal.firstSeq, 1)
    assert.equal(journal.indexedSeq, journal.lastSeq)
    let at = journal.firstSeq - 1
    for (;;) {
      const recs = await journal.read(at, { maxBytes: 32 * 1024 * KiB })
      if (recs.length === 0) break
      for (const r of recs) {
        assert.equal(r.seq, at + 1, 'the journal is gap-free')
        at = r.seq
        fn(r)
      }
    }
    assert.equal(at, journal.lastSeq)
    return at
  } finally {
    await journal.close()
    await store.close()
  }
}

/** journalTree applies every journaled record to `start` (the image directory before seq 1), in memory. */
export async function journalTree (state: string, start: Tree = new Map(), at?: { seqs: number[], snapshot: (seq: number, tree: Tree) => void }): Promise<{ tree: Tree, last: number }> {
  const t: Tree = new Map(start)
  const seqs = [...(at?.seqs ?? [])].sort((a, b) => a - b)
  const last = await eachRecord(state, (r) => {
    while (seqs.length > 0 && seqs[0]! < r.seq) at!.snapshot(seqs.shift()!, new Map(t))
    switch (r.op) {
      case 'create': if (!t.has(r.volume)) t.set(r.volume, Buffer.alloc(0)); break
      case 'write':
      case 'zero': {
        const old = t.get(r.volume)
        assert.ok(old, `seq ${r.seq}: ${r.op} to ${r.volume}, which exists`)
        const end = Math.max(old.length, r.offset + r.length)
        const b = Buffer.alloc(end)
        old.copy(b)
        if (r.op === 'write') b.set(r.data!, r.offset)
        else b.fill(0, r.offset, r.offset + r.length)
        t.set(r.volume, b)
        break
      }
      case 'truncate': {
        const old = t.get(r.volume)!
        const b = Buffer.alloc(r.offset)
        old.copy(b, 0, 0, Math.min(old.length, r.offset))
        t.set(r.volume, b)
        break
      }
      case 'rename': t.set(r.target, t.get(r.volume)!); t.delete(r.volume); break
      case 'delete': t.delete(r.volume); break
      default: assert.fail(`unexpected ${r.op} record (seq ${r.seq})`)
    }
  })
  for (const s of seqs) at!.snapshot(s, new Map(t))
  return { tree: t, last }
}
