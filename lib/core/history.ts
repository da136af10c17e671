/**
 * history: which node was primary when, as (epoch, seq) ranges (DESIGN
 * "Failover and failback").
 *
 * Every node keeps the list of epochs it knows: epoch 0 begins at seq 1 on
 * the first primary; each promotion appends the next epoch, begun by the
 * promoted node at the seq after the last one it had applied. A DR adopts
 * its primary's history when it registers. Comparing two histories tells
 * whether one node may follow the other:
 *
 *   - the DR's history is the primary's or a prefix of it, and the DR has
 *     nothing past the point where the primary's history branched off from
 *     it: it simply follows (or resumes);
 *   - same, but the DR holds records past that point (an old primary, or a
 *     DR that got further than the one that was promoted): those records
 *     never reached the new primary and are discarded, with a report
 *     (failback);
 *   - the primary's history is a strict prefix of the DR's: the "primary"
 *     is an old one that came back while a newer epoch exists; and two
 *     histories that differ at some epoch were promoted from the same epoch
 *     twice: split brain, never resolved silently.
 */

/** Epoch is one entry: `nodeId` became primary at `fromSeq`, at time `at` (ms). */
export interface Epoch {
  epoch: number
  nodeId: string
  fromSeq: number
  at: number
}

/** History is the list of epochs, oldest first. */
export type History = Epoch[]

/** Verdict is what comparing a DR's history with a primary's says. */
export type Verdict =
  | { kind: 'follow' }
  | { kind: 'discard', forkSeq: number, reason: string }
  | { kind: 'split-brain', forkSeq: number, reason: string }

/** firstHistory is the history of a node that starts as the first primary. */
export function firstHistory (nodeId: string, now = Date.now()): History {
  return [{ epoch: 0, nodeId, fromSeq: 1, at: now }]
}

/** promoted appends the epoch a promotion at applied seq `applied` begins. */
export function promoted (h: History, nodeId: string, applied: number, now = Date.now()): History {
  const last = h[h.length - 1]
  return [...h, { epoch: (last?.epoch ?? -1) + 1, nodeId, fromSeq: applied + 1, at: now }]
}

/** currentEpoch is the last epoch's number (-1 for an empty history). */
export function currentEpoch (h: History): number {
  return h.length === 0 ? -1 : h[h.length - 1]!.epoch
}

function sameEpoch (a: Epoch, b: Epoch): boolean {
  return a.epoch === b.epoch && a.nodeId === b.nodeId && a.fromSeq === b.fromSeq
}

/**
 * compareHistories decides whether a DR with history `dr` and last seq
 * `drLastSeq` may follow a primary with history `primary`.
 */
export function compareHistories (dr: History, primary: History, drLastSeq: number): Verdict {
  if (dr.length === 0) return { kind: 'follow' }
  const n = Math.min(dr.length, primary.length)
  for (let i = 0; i < n; i++) {
    if (!sameEpoch(dr[i]!, primary[i]!)) {
      return {
        kind: 'split-brain',
        forkSeq: Math.min(dr[i]!.fromSeq, primary[i]!.fromSeq),
        reason: `epoch ${dr[i]!.epoch} was begun by two nodes: ${primary[i]!.nodeId.slice(0, 8)} (at seq ${primary[i]!.fromSeq}) and ${dr[i]!.nodeId.slice(0, 8)} (at seq ${dr[i]!.fromSeq})`,
      }
    }
  }
  if (dr.length > primary.length) {
    const newer = dr[primary.length]!
    return {
      kind: 'split-brain',
      forkSeq: newer.fromSeq,
      reason: `the node serving as primary is at epoch ${currentEpoch(primary)} (begun by ${primary[primary.length - 1]!.nodeId.slice(0, 8)}), but epoch ${newer.epoch} was begun by ${newer.nodeId.slice(0, 8)} at seq ${newer.fromSeq}: an old primary came back while a newer one exists`,
    }
  }
  if (dr.length === primary.length) return { kind: 'follow' }
  // The primary's history goes on past the DR's: the DR's last epoch ended
  // where the next one began.
  const fork = primary[dr.length]!.fromSeq
  if (drLastSeq < fork) return { kind: 'follow' }
  return {
    kind: 'discard',
    forkSeq: fork,
    reason: `records ${fork}..${drLastSeq} of epoch ${currentEpoch(dr)} never reached the node promoted to epoch ${primary[dr.length]!.epoch}`,
  }
}
