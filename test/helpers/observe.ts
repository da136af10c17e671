/**
 * observe: read a node's operator routes the way Prometheus and a browser
 * do: `/metrics` parsed by a real Prometheus text parser (never a regex),
 * `/v1/status` and `/v1/regionmap` as JSON, with or without the token.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format'

/** freePort finds a port free on 127.0.0.1 now (for a node's --listen). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

/** pairToken reads a pair's peer token (the primary's STATE/token). */
export async function pairToken (state: string): Promise<string> {
  return (await readFile(path.join(state, 'token'), 'utf8')).trim()
}

/** get fetches `url` with the token as a Bearer header (none if undefined). */
export async function get (url: string, token: string | undefined): Promise<Response> {
  return await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} })
}

/** Metrics is one parsed scrape. */
export class Metrics {
  readonly families: Map<string, ParsedFamily>

  constructor (readonly text: string) {
    this.families = new Map(parsePrometheusTextFormat(text).map(f => [f.name, f]))
  }

  /** family returns a metric family, failing the test if it is missing. */
  family (name: string): ParsedFamily {
    const f = this.families.get(name)
    assert.ok(f, `metric family ${name} is missing`)
    return f
  }

  /** value returns the sample of `name` whose labels include `labels` (fails if there is none). */
  value (name: string, labels: Record<string, string> = {}): number {
    const f = this.family(name)
    const s = f.metrics.find(m => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    assert.ok(s && s.value !== undefined, `${name}${JSON.stringify(labels)} has no sample`)
    return Number(s.value)
  }

  /**
   * histogramCount is a histogram's observation count (its +Inf bucket).
   * The parser folds a labelled histogram into one sample (the buckets of
   * its last label set; count and sum dropped): read it where one label
   * set has observations.
   */
  histogramCount (name: string): number {
    const f = this.family(name)
    assert.equal(f.type, 'HISTOGRAM', `${name} is a ${f.type}`)
    const inf = f.metrics[0]?.buckets?.['+Inf']
    return inf === undefined ? 0 : Number(inf)
  }
}

/** scrape GETs `/metrics` of `base` and parses it. */
export async function scrape (base: string, token: string): Promise<Metrics> {
  const res = await get(`${base}/metrics`, token)
  assert.equal(res.status, 200, `GET /metrics: ${res.status} ${await res.clone().text()}`)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  return new Metrics(await res.text())
}
