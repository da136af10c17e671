/**
 * The asOf rule, model-checked: a model primary (bytes and a journal, with
 * its state kept at every seq) and a DR running the real Replica
 * (lib/core/replica.ts) over byte arrays, driven through thousands of random
 * interleavings of primary writes, zeroes and truncates, DR applies, and
 * region fetches whose bytes arrive in pieces, out of order, or not at all.
 *
 * Checked: whenever the DR says a volume is consistent (no absent region,
 * no fetch in flight, no asOf above its applied seq), its bytes are exactly
 * the primary's at that seq; and after draining, DR bytes == primary bytes.
 */
import assert from 'node:assert/strict'
import { regionKey } from '../../lib/core/as-of.js'
import { regionCount } from '../../lib/core/region-map.js'
import { Replica, type DataRecord, type FetchToken, type ReplicaImage } from '../../lib/core/replica.js'
import { rng } from '../helpers/pattern.js'

/** ArrayImage is a ReplicaImage over growable byte arrays. */
class ArrayImage implements ReplicaImage {
  readonly vols = new Map<number, { buf: Uint8Array, size: number }>()

  ensure (v: number): { buf: Uint8Array, size: number } {
    let e = this.vols.get(v)
    if (!e) { e = { buf: new Uint8Array(64), size: 0 }; this.vols.set(v, e) }
    return e
  }

  size (v: number): number { return this.ensure(v).size }

  private grow (v: number, size: number): void {
    const e = this.ensure(v)
    if (size > e.buf.length) {
      const next = new Uint8Array(Math.max(size, e.buf.length * 2))
      next.set(e.buf.subarray(0, e.size))
      e.buf = next
    }
    if (size > e.size) { e.buf.fill(0, e.size, size); e.size = size }
  }

  write (v: number, offset: number, data: Uint8Array): void {
    this.grow(v, offset + data.length)
    this.ensure(v).buf.set(data, offset)
  }

  zero (v: number, offset: number, length: number): void {
    this.grow(v, offset + length)
    this.ensure(v).buf.fill(0, offset, offset + length)
  }

  truncate (v: number, size: number): void {
    const e = this.ensure(v)
    if (size < e.size) { e.buf.fill(0, size, e.size); e.size = size } else this.grow(v, size)
  }

  bytes (v: number): Uint8Array { const e = this.ensure(v); return e.buf.slice(0, e.size) }
}

interface Flight {
  token: FetchToken
  volume: number
  region: number
  /** copy: fetch the bytes; compare: hydration deciding keep/release from what both sides hold. */
  kind: 'copy' | 'compare'
  stage: 'started' | 'read' | 'known'
  asOf?: number
  data?: Uint8Array
  /** compare: the DR's bytes of the region when it read them. */
  local?: Uint8Array
  /** Pieces of `data` not yet delivered: [from, to) within the region. */
  pieces?: Array<[number, number]>
}

const RS = 16 // region size (bytes) of the model

function firstDiff (a: Uint8Array, b: Uint8Array): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return `(first at byte ${i}, region ${Math.floor(i / RS)}; sizes ${a.length} and ${b.length})`
  return ''
}

function runScenario (seed: number, steps: number): void {
  const r = rng(seed)
  const int = (n: number): number => Math.floor(r() * n)
  // ASOF_TRACE=<seed> prints what happens in that scenario.
  const trace = process.env.ASOF_TRACE === String(seed) ? (...a: unknown[]) => console.log(...a) : () => {}
  const VOLUMES = 2
  const primary = new ArrayImage()
  const journal: Array<DataRecord & { volume: number }> = []
  const history: Array<Map<number, Uint8Array>> = [new Map()] // primary bytes after each seq
  const image = new ArrayImage()
  const dr = new Replica(RS, image)
  let applied = 0
  const flights: Flight[] = []

  // Start: both sides have the same volumes with some initial bytes; the DR
  // knows nothing of their content (all regions absent).
  for (let v = 0; v < VOLUMES; v++) {
    const size = int(6 * RS)
    const init = Uint8Array.from({ length: size }, () => int(256))
    primary.write(v, 0, init)
    image.truncate(v, size) // the DR's stale copy: zeros
    dr.track(v)
    history[0]!.set(v, primary.bytes(v))
  }

  const snapshot = (): Map<number, Uint8Array> => new Map([...Array(VOLUMES).keys()].map(v => [v, primary.bytes(v)]))

  const primaryWrite = (): void => {
    const volume = int(VOLUMES)
    const size = primary.size(volume)
    const kind = r()
    const seq = journal.length + 1
    let rec: DataRecord
    if (kind < 0.08) {
      rec = { seq, op: 'truncate', offset: int(8 * RS), length: 0 }
      primary.truncate(volume, rec.offset)
    } else if (kind < 0.25) {
      rec = { seq, op: 'zero', offset: int(size + RS), length: 1 + int(2 * RS) }
      primary.zero(volume, rec.offset, rec.length)
    } else {
      const length = 1 + int(2 * RS)
      const data = Uint8Array.from({ length }, () => 1 + int(255))
      rec = { seq, op: 'write', offset: int(size + RS), length, data }
      primary.write(volume, rec.offset, data)
    }
    journal.push({ ...rec, volume })
    history.push(snapshot())
    trace(`P seq ${seq} v${volume} ${rec.op} off ${rec.offset} len ${rec.length} -> size ${primary.size(volume)}`)
  }

  const drApply = (): void => {
    if (applied >= journal.length) return
    const rec = journal[applied]!
    dr.apply(rec.volume, rec)
    applied++
    trace(`D apply ${rec.seq} v${rec.volume} ${rec.op} -> size ${image.size(rec.volume)} present ${[...Array(dr.map(rec.volume).length).keys()].map(i => dr.present(rec.volume, i) ? 1 : 0).join('')}`)
  }

  const beginFetch = (): void => {
    const volume = int(VOLUMES)
    const count = dr.map(volume).length
    if (count === 0) return
    const region = int(count)
    if (dr.rule.inFlight(regionKey(volume, region))) return
    const kind = r() < 0.3 ? 'compare' : 'copy'
    flights.push({ token: dr.beginFetch(volume, region), volume, region, kind, stage: 'started' })
    trace(`D begin ${kind} v${volume} r${region}`)
  }

  const advanceFetch = (): void => {
    if (flights.length === 0) return
    const i = int(flights.length)
    const f = flights[i]!
    // A fetch abandoned by a truncate may still deliver its bytes (below): they must be ignored.
    if (!dr.rule.inFlight(regionKey(f.volume, f.region), f.token.id) && r() < 0.5) { flights.splice(i, 1); return }
    if (f.kind === 'compare' && f.stage === 'started' && !f.local) {
      // The DR reads (and would hash) its own bytes of the region.
      const mine = image.bytes(f.volume)
      f.local = mine.slice(f.region * RS, Math.min(mine.length, (f.region + 1) * RS))
      return
    }
    if (f.kind === 'compare' && f.stage === 'read') {
      // Hydration's decision (lib/dr/hydrator.ts): keep if both sides hold
      // the same bytes (zeros count as not realized), release if the
      // primary's are zeros, else copy (here: a copy of the same flight).
      const zero = (b: Uint8Array): boolean => b.every(x => x === 0)
      const pz = zero(f.data!)
      const same = pz ? zero(f.local!) : Buffer.from(f.local!).equals(Buffer.from(f.data!))
      if (pz || same) {
        if (!pz && dr.fetchTouched(f.token)) { f.kind = 'copy'; return } // keep is unsafe: copy instead
        if (!dr.fetchKnown(f.token, f.asOf!)) { flights.splice(i, 1); return }
        // Zeros on the primary: the DR zeroes up to the primary's region length (also growing a shorter copy).
        if (pz) dr.fetchZero(f.token, f.region * RS, f.data!.length)
        trace(`D ${pz ? 'release' : 'keep'} v${f.volume} r${f.region} asOf ${f.asOf} -> ${dr.fetchEnd(f.token, true)}`)
        flights.splice(i, 1)
        return
      }
      f.kind = 'copy'
      return
    }
    if (f.stage === 'started') {
      // The primary reads the region: all of it as of its current seq.
      const bytes = primary.bytes(f.volume)
      f.data = bytes.slice(f.region * RS, Math.min(bytes.length, (f.region + 1) * RS))
      f.asOf = journal.length
      f.stage = 'read'
      trace(`P read v${f.volume} r${f.region} asOf ${f.asOf} (${f.data.length} bytes)`)
      const cuts = [0, f.data.length]
      if (f.data.length > 2) cuts.splice(1, 0, 1 + int(f.data.length - 1))
      f.pieces = []
      for (let k = 0; k + 1 < cuts.length; k++) if (cuts[k]! < cuts[k + 1]!) f.pieces.push([cuts[k]!, cuts[k + 1]!])
      if (r() < 0.5) f.pieces.reverse()
      return
    }
    if (f.stage === 'read') {
      trace(`D known v${f.volume} r${f.region} asOf ${f.asOf} -> ${dr.fetchKnown(f.token, f.asOf!)}`)
      f.stage = 'known'
      return
    }
    if (r() < 0.03) { // the link fails mid-fetch
      trace(`D fail v${f.volume} r${f.region}`)
      dr.fetchEnd(f.token, false)
      flights.splice(i, 1)
      return
    }
    const piece = f.pieces!.shift()
    if (piece) {
      const w = dr.fetchData(f.token, { offset: f.region * RS + piece[0], data: f.data!.subarray(piece[0], piece[1]) })
      trace(`D data v${f.volume} r${f.region} [${piece[0]},${piece[1]}) wrote ${JSON.stringify(w)}`)
      return
    }
    trace(`D end v${f.volume} r${f.region} -> ${dr.fetchEnd(f.token, true)}`)
    flights.splice(i, 1)
  }

  const consistent = (v: number): boolean => {
    const map = dr.map(v)
    if (map.setCount !== map.length) return false
    for (const k of dr.rule.aheadOf(applied)) if (Math.floor(k / 0x100000000) === v) return false
    return !flights.some(f => f.volume === v && dr.rule.inFlight(regionKey(f.volume, f.region), f.token.id))
  }

  const check = (when: string): void => {
    for (let v = 0; v < VOLUMES; v++) {
      if (!consistent(v)) continue
      assert.deepEqual(image.bytes(v), history[applied]!.get(v), `seed ${seed}, ${when}: volume ${v} claims consistency at seq ${applied} with wrong bytes`)
    }
  }

  for (let step = 0; step < steps; step++) {
    const x = r()
    if (x < 0.3) primaryWrite()
    else if (x < 0.55) drApply()
    else if (x < 0.7) beginFetch()
    else advanceFetch()
    check(`step ${step}`)
  }

  // Drain: finish fetches, apply everything, then fetch whatever is absent.
  while (flights.length > 0) advanceFetch()
  while (applied < journal.length) { drApply(); check('drain') }
  for (let v = 0; v < VOLUMES; v++) {
    for (let region = 0; region < regionCount(image.size(v), RS); region++) {
      if (dr.present(v, region)) continue
      const t = dr.beginFetch(v, region)
      const bytes = primary.bytes(v)
      dr.fetchKnown(t, journal.length)
      dr.fetchData(t, { offset: region * RS, data: bytes.slice(region * RS, Math.min(bytes.length, (region + 1) * RS)) })
      dr.fetchEnd(t, true)
    }
    dr.rule.prune(applied)
    assert.equal(dr.map(v).setCount, dr.map(v).length, `seed ${seed}: volume ${v} has absent regions after draining`)
    assert.deepEqual(image.bytes(v), primary.bytes(v), `seed ${seed}: volume ${v} differs from the primary after draining ${firstDiff(image.bytes(v), primary.bytes(v))}`)
  }
  check('end')
}

describe('asOf rule: randomized model', function () {
  this.timeout(120_000)
  const scenarios = process.env.SOAK ? 20_000 : 3000
  const base = Number(process.env.ASOF_SEED ?? 0x5eed)

  it(`keeps DR bytes equal to the primary's over ${scenarios} random interleavings`, () => {
    for (let i = 0; i < scenarios; i++) runScenario(base + i, 200)
  })

  it('skips a record whose effect a fetched region already holds', () => {
    const image = new ArrayImage()
    image.truncate(0, RS)
    const dr = new Replica(RS, image)
    dr.track(0)
    const t = dr.beginFetch(0, 0)
    dr.fetchKnown(t, 2)
    dr.fetchData(t, { offset: 0, data: new Uint8Array(RS).fill(2) }) // holds records 1 and 2
    dr.fetchEnd(t, true)
    dr.apply(0, { seq: 1, op: 'write', offset: 0, length: 4, data: new Uint8Array(4).fill(1) })
    dr.apply(0, { seq: 2, op: 'write', offset: 0, length: 4, data: new Uint8Array(4).fill(2) })
    dr.apply(0, { seq: 3, op: 'write', offset: 4, length: 4, data: new Uint8Array(4).fill(3) })
    assert.deepEqual([...image.bytes(0).subarray(0, 8)], [2, 2, 2, 2, 3, 3, 3, 3])
  })

  it('keeps bytes of a newer record applied while the fetch was in flight', () => {
    const image = new ArrayImage()
    image.truncate(0, RS)
    const dr = new Replica(RS, image)
    dr.track(0)
    const t = dr.beginFetch(0, 0)
    dr.apply(0, { seq: 5, op: 'write', offset: 8, length: 4, data: new Uint8Array(4).fill(5) })
    dr.fetchKnown(t, 4) // the primary read before seq 5
    dr.fetchData(t, { offset: 0, data: new Uint8Array(RS).fill(4) })
    dr.fetchEnd(t, true)
    assert.deepEqual([...image.bytes(0)], [4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 4])
  })
})
