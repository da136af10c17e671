/**
 * observability: what a node shows an operator, wired to the node: its
 * metrics registry (lib/metrics) and the region pictures, behind the
 * read-only HTTP routes (lib/http/observability.ts).
 *
 * A primary serves the routes on its replication endpoint; a DR on its
 * `--listen` address. Both are dropped with the node: a promotion closes
 * the DR's (and its address) before the primary starts there.
 */
import { keyRegion, keyVolume, regionKey } from '../core/as-of.js'
import { regionCount } from '../core/region-map.js'
import { RegionPictureBuilder, type RegionPicture } from '../core/region-picture.js'
import { VolmirrorError } from '../errors.js'
import { ObservabilityRoutes } from '../http/observability.js'
import type { TlsFiles } from '../http/listen.js'
import { PrimaryHttpServer } from '../http/server.js'
import type { PrimaryService } from '../replication/protocol.js'
import { drMetrics } from '../metrics/dr-metrics.js'
import type { NodeMetrics, NodeStatusBase } from '../metrics/node-metrics.js'
import { primaryMetrics } from '../metrics/primary-metrics.js'
import type { DrNode } from './dr-node.js'
import type { PrimaryNode } from './primary-node.js'

/** Observability is a node's metrics and routes; `close` stops the metrics' subscriptions. */
export interface Observability {
  metrics: NodeMetrics<NodeStatusBase>
  routes: ObservabilityRoutes
  close (): void
}

/** observePrimary builds a primary's metrics and routes. */
export function observePrimary (node: PrimaryNode): Observability {
  const metrics = primaryMetrics(() => node.status(), node.opts.log)
  return observability(metrics, node.token, {
    status: () => node.status(),
    regionMap: volume => primaryPicture(node, volume),
  })
}

/** observeDr builds a DR's metrics and routes (`token` guards them). */
export function observeDr (node: DrNode, token: string): Observability {
  const metrics = drMetrics(() => node.status(), node.fetcher, node.opts.log)
  return observability(metrics, token, {
    status: () => node.status(),
    regionMap: async volume => drPicture(node, volume),
  })
}

/**
 * serveDr serves a DR's routes on `listen`: the replication API for
 * downstream DRs (a cascade) and the operator's routes, through the same
 * server a primary uses (authentication, connection limits); `close`
 * frees the address.
 */
export async function serveDr (node: DrNode, listen: { host: string, port: number }, token: string, tls: TlsFiles | undefined, source: PrimaryService): Promise<{ url: string, close: () => Promise<void> }> {
  const o = observeDr(node, token)
  const http = new PrimaryHttpServer(source, { token, log: node.opts.log, ...(tls ? { tls } : {}), ...(node.opts.compress ? { compress: node.opts.compress } : {}) })
  http.observability = o.routes
  try {
    await http.listen(listen.host, listen.port)
  } catch (err) {
    o.close()
    throw err
  }
  return { url: http.url, close: async () => { await http.close(); o.close() } }
}

function observability (metrics: NodeMetrics<NodeStatusBase>, token: string, node: { status: () => Promise<unknown>, regionMap: (v: string) => Promise<RegionPicture> }): Observability {
  const routes = new ObservabilityRoutes({
    ...node,
    metrics: async () => ({ contentType: metrics.contentType, text: await metrics.text() }),
  }, token)
  return { metrics, routes, close: () => metrics.close() }
}

/**
 * primaryPicture: every region of a primary's volume is present; regions
 * some DR must resync after an outage (bitmap mode) are dirty.
 */
async function primaryPicture (node: PrimaryNode, volume: string): Promise<RegionPicture> {
  const v = (await node.source.volumes()).volumes.find(x => x.name === volume)
  if (!v) throw new VolmirrorError('NOT_FOUND', `no volume ${volume}`)
  const rs = node.store.identity.regionSize
  const b = new RegionPictureBuilder(regionCount(v.size, rs), 'present')
  for (const m of node.source.dirtyMaps(volume)) {
    for (let r = m.next(0, true); r >= 0; r = m.next(r + 1, true)) b.set(r, 'dirty')
  }
  return b.picture(volume, rs)
}

/**
 * drPicture: a DR's regions as its region map has them; present regions
 * fetched with an asOf above the applied seq are dirty (not consistent
 * yet), absent ones with a fetch under way are being fetched.
 */
function drPicture (node: DrNode, volume: string): RegionPicture {
  const v = node.volumes.get(volume)
  let map
  try { map = v && node.replica.map(v.id) } catch { map = undefined } // known, not tracked yet
  if (!v || !map) throw new VolmirrorError('NOT_FOUND', `no volume ${volume} on this DR (yet)`)
  const b = new RegionPictureBuilder(map.length, 'absent')
  for (let r = map.next(0, true); r >= 0; r = map.next(r + 1, true)) b.set(r, 'present')
  for (const k of node.replica.rule.aheadOf(node.follower.appliedSeq)) {
    if (keyVolume(k) === v.id && map.get(keyRegion(k))) b.set(keyRegion(k), 'dirty')
  }
  for (let r = map.next(0, false); r >= 0; r = map.next(r + 1, false)) {
    if (node.replica.rule.inFlight(regionKey(v.id, r))) b.set(r, 'fetching')
  }
  return b.picture(volume, node.replica.regionSize)
}
