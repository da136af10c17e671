/**
 * chart: the table of `npm run bench` as a picture — one horizontal bar per
 * comparison, its length the ratio on a log scale around 1x (right of the
 * line: volmirror better; left: worse), green where the issue's target is
 * met, red where it is missed, grey where there is none (references).
 * Absolute-target rows show volmirror's headroom against the limit
 * (limit/figure for times, figure/limit for rates), so that 1x is the limit.
 *
 * `chartSvg` is pure (rows in, SVG text out); `writeChart` writes it next to
 * the JSON and has headless Chromium (playwright-core, the Debian
 * `chromium`, as the status-page test uses) render it to PNG.
 */
import { access, rename, writeFile } from 'node:fs/promises'
import { pathToFileURL } from 'node:url'
import type { Row } from './report.js'
import type { MachineInfo } from './system.js'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

const MIN = 1 / 16
const MAX = 16
const BAR_H = 18
const GAP = 6
/** Narrowest label column; wider when a label needs it (CHAR_W: a generous 12 px DejaVu Sans advance). */
const MIN_LABEL_W = 600
const CHAR_W = 7
const PLOT_W = 560
const VALUE_W = 90
const TOP = 70

/** Bar is one row of the chart. */
interface Bar { label: string, ratio: number, target?: number, status?: 'met' | 'missed', benchmark: string }

/** barsOf turns table rows into bars: every comparison with a ratio, and absolute targets as headroom. */
export function barsOf (rows: Row[]): Bar[] {
  const bars: Bar[] = []
  for (const r of rows) {
    if (r.role === 'target') {
      if (r.limit === undefined || !Number.isFinite(r.volmirror) || r.volmirror <= 0) continue
      const headroom = r.better === 'lower' ? r.limit / r.volmirror : r.volmirror / r.limit
      bars.push({ benchmark: r.benchmark, label: `${r.metric} vs absolute target`, ratio: headroom, target: 1, ...(r.status ? { status: r.status } : {}) })
      continue
    }
    if (!Number.isFinite(r.ratio) || r.ratio <= 0) continue
    bars.push({
      benchmark: r.benchmark,
      label: `${r.metric} vs ${r.against}${r.role === 'peer' ? ' [peer]' : ''}`,
      ratio: r.ratio,
      ...(r.target !== undefined ? { target: r.target } : {}),
      ...(r.status ? { status: r.status } : {}),
    })
  }
  return bars
}

/** chartSvg draws the bars of `rows` with a title naming the machine and the run. */
export function chartSvg (rows: Row[], machine: MachineInfo, title: string): string {
  const bars = barsOf(rows)
  const labelW = Math.max(MIN_LABEL_W, 20 + CHAR_W * Math.max(0, ...bars.map(b => b.benchmark.length + 2 + b.label.length)))
  const x0 = labelW + PLOT_W / 2
  const scale = (ratio: number): number => {
    const clamped = Math.min(MAX, Math.max(MIN, ratio))
    return x0 + (Math.log2(clamped) / Math.log2(MAX)) * (PLOT_W / 2)
  }
  const height = TOP + bars.length * (BAR_H + GAP) + 60
  const width = labelW + PLOT_W + VALUE_W + 20
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`)
  out.push(`<rect width="100%" height="100%" fill="white"/>`)
  out.push(`<text x="10" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`)
  out.push(`<text x="10" y="42" fill="#555">${esc(`${machine.cpu}, ${machine.cores} cores, ${machine.ramGiB} GiB, ${machine.kernel}; ${machine.benchFs}; node ${machine.node}; load ${machine.loadAvg.join(' ')}`)}</text>`)
  // Grid: powers of two from 1/16x to 16x.
  for (let e = -4; e <= 4; e++) {
    const x = scale(2 ** e)
    out.push(`<line x1="${x}" y1="${TOP - 8}" x2="${x}" y2="${height - 40}" stroke="${e === 0 ? '#000' : '#ddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`)
    out.push(`<text x="${x}" y="${height - 24}" text-anchor="middle" fill="#555">${e < 0 ? `1/${2 ** -e}` : 2 ** e}x</text>`)
  }
  out.push(`<text x="${x0}" y="${height - 8}" text-anchor="middle" fill="#555">ratio (log scale): right of 1x volmirror is better; green target met, red missed, grey no target</text>`)
  let y = TOP
  let lastBench = ''
  for (const b of bars) {
    if (b.benchmark !== lastBench) {
      out.push(`<line x1="10" y1="${y - GAP / 2}" x2="${width - 10}" y2="${y - GAP / 2}" stroke="#bbb"/>`)
      lastBench = b.benchmark
    }
    const x = scale(b.ratio)
    const color = b.status === 'met' ? '#2e9d4a' : b.status === 'missed' ? '#d0453a' : '#9aa3ad'
    out.push(`<text x="${labelW - 8}" y="${y + BAR_H - 5}" text-anchor="end">${esc(`${b.benchmark}: ${b.label}`)}</text>`)
    out.push(`<rect x="${Math.min(x, x0)}" y="${y}" width="${Math.max(1, Math.abs(x - x0))}" height="${BAR_H}" fill="${color}"/>`)
    if (b.target !== undefined) {
      const tx = scale(b.target)
      out.push(`<line x1="${tx}" y1="${y - 2}" x2="${tx}" y2="${y + BAR_H + 2}" stroke="#000" stroke-width="2" stroke-dasharray="3,2"/>`)
    }
    out.push(`<text x="${labelW + PLOT_W + 8}" y="${y + BAR_H - 5}">${b.ratio.toFixed(2)}x</text>`)
    y += BAR_H + GAP
  }
  out.push('</svg>')
  return out.join('\n') + '\n'
}

/**
 * writeChart writes `base.svg` and renders `base.png` from it; resolves with
 * the files written and, when there is no PNG, why.
 */
export async function writeChart (base: string, svg: string): Promise<{ files: string[], pngSkipped?: string }> {
  await writeAtomic(`${base}.svg`, svg)
  const files = [`${base}.svg`]
  try {
    await access(CHROMIUM)
  } catch {
    return { files, pngSkipped: `no ${CHROMIUM} (apt-get install chromium) to render the PNG` }
  }
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 60_000 })
  try {
    const page = await browser.newPage()
    await page.goto(pathToFileURL(`${base}.svg`).href)
    const svgEl = await page.$('svg')
    if (!svgEl) throw new Error('the chart SVG did not load in Chromium')
    await svgEl.screenshot({ path: `${base}.png.tmp`, type: 'png' })
    await rename(`${base}.png.tmp`, `${base}.png`)
    files.push(`${base}.png`)
  } finally {
    await browser.close()
  }
  return { files }
}

async function writeAtomic (file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text)
  await rename(`${file}.tmp`, file)
}

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}
