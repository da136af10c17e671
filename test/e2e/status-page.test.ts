/**
 * The status page in a real headless Chromium (Debian's, driven by
 * playwright-core): a DR hydrating slowly serves its page on --listen, and
 * the region picture on the canvas fills in, pixel by pixel, until the
 * volume is consistent. Screenshots go to the test's temp dir (and to
 * $VOLMIRROR_SCREENSHOTS when set, to look at them).
 */
import assert from 'node:assert/strict'
import { copyFile, mkdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { STATE_COLORS } from '../../lib/http/status-page.js'
import { defer } from '../helpers/cleanup.js'
import { fsop } from '../helpers/fsop.js'
import { freePort, pairToken } from '../helpers/observe.js'
import { startPair } from '../helpers/pair.js'
import { pattern } from '../helpers/pattern.js'
import { waitFor } from '../helpers/wait.js'

const MiB = 1 << 20
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

type Counts = Record<keyof typeof STATE_COLORS | 'other', number>

/** pixels counts the canvas pixels of each state's colour (one pixel per region), and the canvas's own counts. */
async function pixels (page: Page, volume: string): Promise<{ px: Counts, data: Record<string, string>, size: [number, number] } | undefined> {
  return await page.evaluate(({ volume, colors }) => {
    // Runs in the page (the test compiles without DOM types).
    const doc = (globalThis as any).document
    const c = [...doc.querySelectorAll('canvas')].find((x: any) => x.dataset.volume === volume)
    if (!c || !c.dataset.regions) return undefined
    const d: Uint8ClampedArray = c.getContext('2d').getImageData(0, 0, c.width, c.height).data
    const px: Record<string, number> = { present: 0, absent: 0, dirty: 0, fetching: 0, other: 0 }
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3] === 0) continue // past the last region
      const st = Object.keys(colors).find(k => colors[k]![0] === d[i] && colors[k]![1] === d[i + 1] && colors[k]![2] === d[i + 2])
      px[st ?? 'other']!++
    }
    return { px: px as Counts, data: { ...c.dataset } as Record<string, string>, size: [c.getBoundingClientRect().width, c.getBoundingClientRect().height] as [number, number] }
  }, { volume, colors: STATE_COLORS as unknown as Record<string, number[]> })
}

async function text (page: Page, id: string): Promise<string> {
  return await page.evaluate(id => (globalThis as any).document.getElementById(id)?.textContent ?? '', id)
}

describe('status page', function () {
  this.timeout(180_000)

  it('shows the region map filling in as the DR hydrates, then the volume consistent', async () => {
    // The browser first: hydration starts with the DR, and the page must see it under way.
    const browser: Browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, timeout: 60_000 })
    defer(() => browser.close())
    const port = await freePort()
    const regions = 256 // 64 MiB of 256 KiB regions, hydrated at 8 MiB/s: about 8 s
    const pair = await startPair({
      images: { 'vm1.raw': pattern(3, 64 * MiB) },
      primaryArgs: ['--region-size', '256K'],
      hydrateRate: '8M',
      drArgs: ['--listen', `127.0.0.1:${port}`],
    })
    const token = await pairToken(pair.dirs.state)
    const shots = path.join(pair.dirs.root, 'screenshots')
    await mkdir(shots)
    const page = await browser.newPage({ viewport: { width: 1000, height: 640 } })
    const problems: string[] = []
    page.on('pageerror', err => problems.push(`page error: ${err.message}`))
    page.on('console', msg => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`) })
    const shot = async (name: string): Promise<void> => {
      const file = path.join(shots, name)
      await page.screenshot({ path: file, fullPage: true })
      const png = await readFile(file)
      assert.equal(png.subarray(1, 4).toString(), 'PNG')
      assert.ok(png.length > 5000, `${name} is a real picture (${png.length} bytes)`)
      if (process.env.VOLMIRROR_SCREENSHOTS) {
        await mkdir(process.env.VOLMIRROR_SCREENSHOTS, { recursive: true })
        await copyFile(file, path.join(process.env.VOLMIRROR_SCREENSHOTS, name))
      }
    }

    const res = await page.goto(`http://127.0.0.1:${port}/?token=${encodeURIComponent(token)}`)
    assert.equal(res?.status(), 200)
    // The token leaves the address bar (and the history) at once, and the page keeps it for the tab.
    await waitFor('the token to leave the address', () => !page.url().includes('token'), 5000, 20)

    // Early: some regions present, some not; the page says hydrating and inconsistent.
    const early = await waitFor('a picture with present and absent regions', async () => {
      const p = await pixels(page, 'vm1.raw')
      return p && p.px.present > 0 && p.px.absent > 0 ? p : undefined
    }, 60_000, 50)
    assert.equal(early.px.other, 0)
    assert.equal(Number(early.data.regions), regions)
    assert.equal(early.px.present + early.px.absent + early.px.dirty + early.px.fetching, regions)
    assert.ok(early.size[0] >= 200 && early.size[1] >= 20, `the picture is drawn large enough to see (${early.size.join('x')} CSS px)`)
    assert.equal(await text(page, 'mode'), 'hydrating')
    assert.equal(await text(page, 'state'), 'inconsistent')
    assert.equal(await page.evaluate(() => (globalThis as any).document.querySelectorAll('#legend .item').length), 4)
    await shot('hydrating.png')

    // A write on the primary shows up as the applied seq on the page.
    await fsop({ op: 'write', path: path.join(pair.dirs.mnt, 'vm1.raw'), offset: 40 * MiB, seed: 9, length: 64 * 1024, fsync: true })
    const last = (await pair.primaryStatus()).seq.last
    assert.ok(last > 0)
    await waitFor(`the page to show applied seq ${last}`, async () => Number(await text(page, 'applied')) >= last, 30_000, 50)

    // Later: more regions present than before.
    const later = await waitFor('more present regions in the picture', async () => {
      const p = await pixels(page, 'vm1.raw')
      return p && p.px.present > early.px.present ? p : undefined
    }, 60_000, 50)
    assert.equal(Number(later.data.present), later.px.present, 'the canvas\'s own count matches its pixels')

    // At the end: every region present, the volume and the DR consistent.
    await pair.consistent(120_000)
    const done = await waitFor('the page to show the volume consistent', async () => {
      const state = await page.evaluate(() => (globalThis as any).document.querySelector('section.volume')?.dataset.state as string | undefined)
      const p = await pixels(page, 'vm1.raw')
      return state === 'consistent' && p && p.px.present === regions ? p : undefined
    }, 30_000, 50)
    assert.equal(done.px.absent + done.px.dirty + done.px.fetching + done.px.other, 0)
    assert.equal(await text(page, 'state'), 'consistent')
    assert.equal(await text(page, 'mode'), 'journaling')
    await shot('consistent.png')
    // Hovering a region says which it is; offsets run down the side; times are UTC.
    const box = await page.locator('canvas[data-volume="vm1.raw"]').boundingBox()
    assert.ok(box)
    await page.mouse.move(box.x + 2, box.y + 2)
    const tip = await waitFor('the region tooltip', async () => await page.evaluate(() => {
      const t = (globalThis as any).document.getElementById('tip')
      return t && !t.hidden ? t.textContent as string : undefined
    }), 5000, 50)
    assert.match(tip, /^vm1\.raw · region 0 · offset 0 B · present · as of seq \d+$/)
    const ticks = await page.evaluate(() => [...(globalThis as any).document.querySelectorAll('section.volume .axis .tick')].map((e: any) => e.textContent as string))
    assert.ok(ticks.length >= 2 && ticks[0] === '0 B', `offsets down the side: ${ticks.join(', ')}`)
    assert.match(await text(page, 'updated'), /UTC$/)
    // A reload (no token in the address now) still shows the node: the tab kept the token.
    await page.reload()
    await waitFor('the reloaded page to show the node', async () => await text(page, 'state') === 'consistent', 30_000, 50)
    assert.ok(!page.url().includes('token'))

    // The primary's page: the same volume, every region present, its DR listed.
    await page.goto(`${pair.url}/?token=${encodeURIComponent(token)}`)
    const drId = (await pair.drStatus()).nodeId
    await waitFor('the primary\'s page', async () => {
      const p = await pixels(page, 'vm1.raw')
      const facts = await text(page, 'facts')
      return p?.px.present === regions && facts.includes(`DR ${drId.slice(0, 8)}`) && facts.includes('journaling')
    }, 30_000, 50)
    assert.equal(await page.evaluate(() => (globalThis as any).document.body.dataset.role as string), 'primary')
    await shot('primary.png')
    assert.deepEqual(problems, [])
  })
})
