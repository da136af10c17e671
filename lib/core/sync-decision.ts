/**
 * sync-decision: initial sync by comparison (DESIGN "Initial sync by
 * checksums and realization", US 2016/0224276), as a decision table.
 *
 *   primary        DR             action
 *   not realized   not realized   keep     (both read as zeros)
 *   not realized   realized       release  (punch the DR's region out)
 *   realized       not realized   copy
 *   realized       realized       keep if the checksums are equal, else copy
 *
 * A region is realized unless it is a hole or all zeros.
 */

/** RegionFacts is what one side knows about a region. */
export interface RegionFacts {
  realized: boolean
  sha256?: string | undefined
}

/** SyncAction is what to do with one DR region. */
export type SyncAction = 'keep' | 'release' | 'copy'

/** decideSync applies the table; a realized pair without both checksums is copied. */
export function decideSync (primary: RegionFacts, dr: RegionFacts): SyncAction {
  if (!primary.realized) return dr.realized ? 'release' : 'keep'
  if (!dr.realized) return 'copy'
  return primary.sha256 !== undefined && primary.sha256 === dr.sha256 ? 'keep' : 'copy'
}
