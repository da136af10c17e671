/**
 * region-picture: a volume's regions as a compact picture, for the status
 * page and for tools (`GET /v1/regionmap`).
 *
 * Two bits per region, four regions per byte, region i in byte i >> 2 at
 * bits 2*(i & 3) (lowest first), base64 on the wire: a 1 TiB volume of
 * 1 MiB regions is 256 KiB before base64. The states are what an operator
 * needs to see at a glance, not everything a node knows:
 *
 * - absent: a DR does not hold the region yet (copy-on-read or hydration will fetch it);
 * - present: it holds the primary's bytes;
 * - dirty: it holds bytes that are not a consistent copy yet: on a DR,
 *   fetched bytes whose asOf is above the applied seq; on a primary, a
 *   region some DR must resync (bitmap mode after an outage);
 * - fetching: a fetch of the region is under way.
 */

/** RegionState is what one region of a picture shows. */
export type RegionState = 'absent' | 'present' | 'dirty' | 'fetching'

/** REGION_STATES lists the states by their 2-bit code (the index). */
export const REGION_STATES: readonly RegionState[] = ['absent', 'present', 'dirty', 'fetching']

const CODE: Record<RegionState, number> = { absent: 0, present: 1, dirty: 2, fetching: 3 }

/** RegionPicture is the JSON answer of `GET /v1/regionmap?volume=NAME`. */
export interface RegionPicture {
  volume: string
  regionSize: number
  /** Regions of the volume (the picture holds exactly this many). */
  regions: number
  /** How many regions are in each state. */
  counts: Record<RegionState, number>
  /** `2bit`: see the module comment; `states` names the codes 0..3. */
  encoding: '2bit'
  states: readonly RegionState[]
  /** The picture, base64. */
  data: string
}

/** RegionPictureBuilder collects region states, then encodes them. */
export class RegionPictureBuilder {
  private readonly bytes: Uint8Array
  private readonly counts: Record<RegionState, number>

  /** Every region starts as `fill`. */
  constructor (readonly regions: number, fill: RegionState) {
    const code = CODE[fill]
    this.bytes = new Uint8Array(Math.ceil(regions / 4)).fill(code | code << 2 | code << 4 | code << 6)
    this.counts = { absent: 0, present: 0, dirty: 0, fetching: 0 }
    this.counts[fill] = regions
  }

  /** set puts region `i` (ignored past the end) in `state`. */
  set (i: number, state: RegionState): void {
    if (i < 0 || i >= this.regions) return
    const shift = (i & 3) * 2
    const byte = i >> 2
    const old = REGION_STATES[(this.bytes[byte]! >> shift) & 3]!
    this.counts[old]--
    this.counts[state]++
    this.bytes[byte] = (this.bytes[byte]! & ~(3 << shift)) | CODE[state] << shift
  }

  /** picture encodes the states. */
  picture (volume: string, regionSize: number): RegionPicture {
    // Bits past the last region are 0 (absent): clear what `fill` put there.
    const tail = this.regions & 3
    if (tail !== 0) this.bytes[this.bytes.length - 1] &= (1 << (tail * 2)) - 1
    return {
      volume,
      regionSize,
      regions: this.regions,
      counts: { ...this.counts },
      encoding: '2bit',
      states: REGION_STATES,
      data: Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength).toString('base64'),
    }
  }
}

/** decodeRegionPicture returns the state of every region of a picture (tests, tools). */
export function decodeRegionPicture (p: Pick<RegionPicture, 'regions' | 'data'>): RegionState[] {
  const bytes = Buffer.from(p.data, 'base64')
  const out: RegionState[] = []
  for (let i = 0; i < p.regions; i++) out.push(REGION_STATES[(bytes[i >> 2]! >> ((i & 3) * 2)) & 3]!)
  return out
}
