/**
 * verifier: online verify of a DR against its primary.
 *
 * For every present region, the primary's checksum as of some seq A is
 * compared with the DR's bytes (read and hashed afresh: codes are not
 * trusted here, this is what finds bytes changed behind the DR's back).
 * Replication goes on meanwhile, so a comparison only counts when the DR
 * has applied past A and no record has changed the region since A (the
 * Replica's region versions); a region that changed is checked again
 * later, never reported as a false mismatch. With `repair`, a mismatching
 * region is made absent and fetched again (by the asOf rule).
 */
import type { Replica } from '../core/replica.js'
import { VolmirrorError } from '../errors.js'
import type { Logger } from '../log.js'
import type { PrimaryService } from '../replication/protocol.js'
import type { ImageDir } from '../store/image-dir.js'
import { describeBytes } from '../store/realization.js'
import type { RegionCodes } from '../store/region-codes.js'
import type { VolumeFiles } from '../store/volume-files.js'
import { sameVolume, type DrVolumes } from './dr-volumes.js'
import type { Fetcher } from './fetcher.js'

/** VerifyReport is what `volmirror verify` prints. */
export interface VerifyReport {
  volumes: number
  regionsChecked: number
  /** Regions whose bytes differ from the primary's. */
  mismatched: Array<{ volume: string, region: number, offset: number }>
  repaired: number
  /** Regions that changed during the check and were checked again. */
  rechecked: number
  /** Regions not hydrated yet (nothing to compare). */
  skippedAbsent: number
  /** Regions that kept changing and could not be compared. */
  unsettled: number
  durationMs: number
}

/** VerifyProgress is how far the running (or last) verify got, shown in a DR's status. */
export interface VerifyProgress {
  /** Regions compared (first round) of all regions of all volumes. */
  done: number
  total: number
  startedAt: string
  /** Set when the verify ended (done or failed). */
  finishedAt?: string
}

/** trackVerify returns a VerifyProgress and the onProgress callback that keeps it current. */
export function trackVerify (log?: Logger): { progress: VerifyProgress, onProgress: (done: number, total: number) => void, end: () => void } {
  const progress: VerifyProgress = { done: 0, total: 0, startedAt: new Date().toISOString() }
  return {
    progress,
    onProgress: (done, total) => {
      progress.done = done
      progress.total = total
      if (done === 0 || done % 256 === 0 || done === total) log?.info('verify.progress', { done, total })
    },
    end: () => { progress.finishedAt = new Date().toISOString() },
  }
}

/** VerifierDeps are the DR parts a verify uses. */
export interface VerifierDeps {
  service: PrimaryService
  replica: Replica
  volumes: DrVolumes
  files: VolumeFiles
  images: ImageDir
  fetcher: Fetcher
  codes: RegionCodes
  appliedSeq: () => number
  log: Logger
}

/** verify runs one verify pass; `onProgress` hears about every batch. */
export async function verify (d: VerifierDeps, opts: { repair: boolean, batch?: number, onProgress?: (done: number, total: number) => void }): Promise<VerifyReport> {
  const started = Date.now()
  const rs = d.replica.regionSize
  const report: VerifyReport = { volumes: 0, regionsChecked: 0, mismatched: [], repaired: 0, rechecked: 0, skippedAbsent: 0, unsettled: 0, durationMs: 0 }
  const vols = d.volumes.list()
  const total = vols.reduce((n, v) => n + d.replica.map(v.id).length, 0)
  let done = 0
  opts.onProgress?.(0, total)
  for (const v of vols) {
    report.volumes++
    let pending: number[] = []
    const map = d.replica.map(v.id)
    for (let r = 0; r < map.length; r++) pending.push(r)
    for (let round = 0; round < 5 && pending.length > 0; round++) {
      if (round > 0) report.rechecked += pending.length
      const again: number[] = []
      for (let i = 0; i < pending.length; i += opts.batch ?? 64) {
        const batch = pending.slice(i, i + (opts.batch ?? 64))
        again.push(...await checkBatch(d, v.id, v.name, batch, report))
        if (round === 0) { done += batch.length; opts.onProgress?.(done, total) }
      }
      pending = again
    }
    report.unsettled += pending.length
  }
  if (opts.repair) {
    for (const m of report.mismatched) {
      const v = d.volumes.get(m.volume)
      if (!v) continue
      d.codes.invalidate(m.volume, m.offset, rs)
      d.replica.invalidate(v.id, m.region)
      await d.fetcher.ensure(v.id, m.region, 'hydrate')
      report.repaired++
    }
  }
  report.durationMs = Date.now() - started
  d.log.info('verify.done', { ...report, mismatched: report.mismatched.length })
  return report
}

/** checkBatch compares some regions of one volume; returns those to check again. */
async function checkBatch (d: VerifierDeps, id: number, name: string, regions: number[], report: VerifyReport): Promise<number[]> {
  const rs = d.replica.regionSize
  const again: number[] = []
  const from = regions[0]!
  const count = regions[regions.length - 1]! - from + 1
  const info = await d.service.regions(name, from, count, true)
  const v = d.volumes.get(name)
  if (!v || v.id !== id || !sameVolume(v, info.birth)) return regions // renamed meanwhile: later
  const byIndex = new Map(info.regions.map(r => [r.index, r]))
  const want = Math.max(0, ...info.regions.map(r => r.asOf))
  await waitApplied(d, want)
  for (const r of regions) {
    if (!d.replica.present(id, r)) { report.skippedAbsent++; continue }
    const ri = byIndex.get(r)
    const before = d.replica.version(id, r)
    if (!ri || before > ri.asOf) { again.push(r); continue }
    const bytes = await d.files.use(name, async f => {
      const buf = Buffer.allocUnsafe(rs)
      return buf.subarray(0, await d.images.readFull(f.fd, buf, rs, r * rs))
    })
    if (d.replica.version(id, r) !== before || !d.replica.present(id, r)) { again.push(r); continue }
    const mine = await describeBytes(bytes, true)
    report.regionsChecked++
    const same = mine.realized === ri.realized && (!ri.realized || mine.sha256 === ri.sha256) && (ri.realized || bytes.length === ri.length)
    if (!same) report.mismatched.push({ volume: name, region: r, offset: r * rs })
  }
  return again
}

async function waitApplied (d: VerifierDeps, seq: number): Promise<void> {
  const deadline = Date.now() + 60_000
  while (d.appliedSeq() < seq) {
    if (Date.now() > deadline) throw new VolmirrorError('TIMEOUT', `verify: the DR did not catch up with seq ${seq} within 60 s (is the link up?)`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}
