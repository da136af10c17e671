/**
 * Several DRs of one primary (primary and DRs as separate processes):
 * both follow under steady writes and end byte-equal; kill -9 of one does
 * not hold the other back; a DR gone for good is forgotten (`dr forget`,
 * `--dr-expire`) and stops pinning the primary's journal.
 */
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import type { DrStatus } from '../../lib/node/dr-node.js'
import { startLoopWriter } from '../helpers/loop-writer.js'
import { cmpFiles, drOf, inSync, MiB, primaryOf } from '../helpers/mirror.js'
import { startPair, type Pair } from '../helpers/pair.js'
import { pattern } from '../helpers/pattern.js'
import { cli, startNode, type NodeProcess } from '../helpers/proc.js'
import { waitFor } from '../helpers/wait.js'

/** secondDr starts another DR of the pair's primary, on directories of its own. */
async function secondDr (pair: Pair, name: string, extra: string[] = []): Promise<{ node: NodeProcess, state: string, images: string, mnt: string }> {
  const d = { state: path.join(pair.dirs.root, `${name}-state`), images: path.join(pair.dirs.root, `${name}-images`), mnt: path.join(pair.dirs.root, `${name}-mnt`) }
  await mkdir(d.images, { recursive: true })
  await mkdir(d.mnt, { recursive: true })
  const node = await startNode(['dr', '--images', d.images, '--state', d.state, '--mount', d.mnt, '--primary', pair.url,
    '--token-file', path.join(pair.dirs.state, 'token'), '--hydrate-rate', 'unlimited', ...extra], { state: d.state, mount: d.mnt })
  return { node, ...d }
}

/** sampleLag samples a DR's reported lag (the bound) every 50 ms while `until` is pending. */
async function sampleLag (state: string, until: Promise<unknown>): Promise<number[]> {
  let done = false
  void until.finally(() => { done = true })
  const out: number[] = []
  while (!done) {
    const s: DrStatus = await drOf(state)
    out.push(s.lag.seconds ?? Infinity)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return out
}

describe('fan-out: several DRs of one primary (processes)', function () {
  this.timeout(5 * 60_000)

  it('two DRs follow one primary under writes and end byte-equal; kill -9 of one does not hold the other back; dr forget frees the journal', async () => {
    const pair = await startPair({ images: { 'vm1.raw': pattern(1, 32 * MiB) } })
    const b = await secondDr(pair, 'dr2')
    await inSync(pair.dirs.state, pair.dirs.drState)
    await inSync(pair.dirs.state, b.state)
    const p0 = await primaryOf(pair.dirs.state)
    assert.equal(p0.drs.length, 2, 'the primary lists both DRs')
    const w = await startLoopWriter(pair.dirs.root, 'w', { file: path.join(pair.dirs.mnt, 'vm1.raw'), offset: 0, length: 64 * 1024, slots: 512, seed: 11, group: 4 })
    await w.waitAcks(50, 60_000)
    // Lag of the second DR with both running, then after the first is killed.
    const both = await sampleLag(b.state, w.waitAcks(1500, 60_000))
    const dr1 = (await drOf(pair.dirs.drState)).nodeId
    await pair.dr.kill9()
    const alone = await sampleLag(b.state, w.waitAcks(3000, 60_000))
    const max = (xs: number[]): number => Math.max(...xs)
    console.log(`      DR 2 lag: max ${max(both).toFixed(2)} s with both DRs, ${max(alone).toFixed(2)} s after kill -9 of DR 1 (${both.length} and ${alone.length} samples)`)
    assert.ok(max(alone) < Math.max(1, 3 * max(both)), `the second DR's lag did not grow: ${max(both).toFixed(2)} -> ${max(alone).toFixed(2)} s`)
    const p1 = await primaryOf(pair.dirs.state)
    const d1 = p1.drs.find(d => d.nodeId === dr1)!
    assert.ok(d1.lagSeq > 0, 'the primary shows the dead DR falling behind')
    await w.stop()
    const { p } = await inSync(pair.dirs.state, b.state)
    await cmpFiles(path.join(pair.dirs.images, 'vm1.raw'), path.join(b.images, 'vm1.raw'))
    // The dead DR pins the journal; forgetting it lets it go.
    const before = p.journal.records
    assert.ok(before > 0, 'records kept for the dead DR')
    const f = await cli(['dr', 'forget', dr1.slice(0, 8), '--state', pair.dirs.state])
    assert.equal(f.code, 0, f.stderr)
    assert.match(f.stdout, new RegExp(`forgot DR ${dr1}`))
    const after = await waitFor('the journal to be trimmed', async () => {
      const s = await primaryOf(pair.dirs.state)
      return s.drs.length === 1 && s.journal.records < before ? s : undefined
    }, 60_000, 200)
    console.log(`      dr forget: journal ${before} -> ${after.journal.records} records`)
    const bad = await cli(['dr', 'forget', 'zzzzzzzz', '--state', pair.dirs.state])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /no DR "zzzzzzzz" is registered with this primary .*\[NOT_FOUND\]/)
    // The restarted first DR comes back as a new one and catches up in full.
    await pair.startDr()
    await inSync(pair.dirs.state, pair.dirs.drState)
    await cmpFiles(path.join(pair.dirs.images, 'vm1.raw'), path.join(pair.dirs.drImages, 'vm1.raw'))
  })

  it('--dr-expire forgets a DR not seen for that long', async () => {
    const pair = await startPair({ images: { 'vm1.raw': pattern(1, 4 * MiB) }, primaryArgs: ['--dr-expire', '2s'] })
    await inSync(pair.dirs.state, pair.dirs.drState)
    assert.equal((await primaryOf(pair.dirs.state)).drs.length, 1)
    await pair.dr.stop()
    await waitFor('the stopped DR to be forgotten', async () => (await primaryOf(pair.dirs.state)).drs.length === 0, 20_000, 200)
    assert.match(pair.primary.stderr, /dr\.forgotten/)
  })
})
