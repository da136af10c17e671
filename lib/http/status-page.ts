/**
 * status-page: the page `GET /` serves on a node's HTTP endpoint: each
 * volume's region map as a picture, lag, mode and seqs, refreshed every
 * second from the node's own JSON routes (`/v1/status`,
 * `/v1/regionmap?volume=NAME`).
 *
 * One self-contained document (no CDN, no framework, nothing to build):
 * the script reads the peer token from its own URL (`/?token=...`) once,
 * keeps it in the tab's sessionStorage, takes it out of the address bar
 * (history), and sends it as a Bearer header, so the token never reaches a log or another
 * site (no referrer, nothing external loaded). The server never puts
 * request data into the page; everything dynamic is set as text by the
 * script. The CSP allows only this exact script (by its hash).
 *
 * The picture draws one pixel per region (scaled up, without smoothing),
 * so its pixels count regions exactly: tests count them. The canvas also
 * carries the counts as data attributes.
 */
import { createHash } from 'node:crypto'

/** STATE_COLORS are the picture's colours (RGB), shared by the legend and the canvas. */
export const STATE_COLORS = {
  present: [46, 157, 79],
  absent: [208, 212, 218],
  dirty: [232, 131, 58],
  fetching: [47, 111, 219],
} as const

const SCRIPT = `
'use strict';
const COLORS = ${JSON.stringify(STATE_COLORS)};
const STATES = ['absent', 'present', 'dirty', 'fetching'];
// The token is taken from the address once, kept for this tab's session,
// and taken out of the address (so not in the browser's history).
const TOKEN_KEY = 'volmirror-token';
const fromUrl = new URLSearchParams(location.search).get('token');
if (fromUrl) {
  try { sessionStorage.setItem(TOKEN_KEY, fromUrl); } catch (e) {}
  history.replaceState(null, '', location.pathname + location.hash);
}
const token = fromUrl || (() => { try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; } })();
const headers = token ? { authorization: 'Bearer ' + token } : {};
const $ = (id) => document.getElementById(id);
const cards = new Map();
let refreshes = 0;

async function get (path) {
  const r = await fetch(path, { headers, cache: 'no-store' });
  if (r.status === 401) throw new Error('the node wants its peer token: open this page as /?token=TOKEN (the token is in the primary\\'s STATE/token)');
  if (!r.ok) throw new Error(path.split('?')[0] + ': HTTP ' + r.status);
  return await r.json();
}

function bytes (n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
}

function el (tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fact (label, value, id) {
  const d = el('div', 'fact');
  d.append(el('span', 'label', label));
  const v = el('span', 'value', value);
  if (id) v.id = id;
  d.append(v);
  return d;
}

function drMode (s) {
  if (s.stalled) return 'stalled';
  if (s.splitBrain) return 'split brain';
  if (s.resync && !s.consistent) return 'resyncing';
  return s.hydration.complete ? 'journaling' : 'hydrating';
}

function renderSummary (s) {
  document.body.dataset.role = s.role;
  appliedSeq = s.seq.applied;
  $('title').textContent = 'volmirror ' + (s.role === 'dr' ? 'DR' : 'primary') + ' ' + s.nodeId.slice(0, 8);
  const facts = $('facts');
  facts.replaceChildren();
  facts.append(fact('epoch', String(s.epoch)));
  if (s.role === 'dr') {
    const mode = drMode(s);
    document.body.dataset.mode = mode;
    facts.append(fact('mode', mode, 'mode'));
    facts.append(fact('state', s.consistent ? 'consistent' : 'inconsistent', 'state'));
    facts.append(fact('applied seq', String(s.seq.applied), 'applied'));
    facts.append(fact('primary seq', s.seq.primaryLast === null ? 'unknown' : String(s.seq.primaryLast)));
    facts.append(fact('lag', s.lag.seconds === null ? 'unknown' : s.lag.seq + ' seq, at most ' + s.lag.seconds.toFixed(1) + ' s', 'lag'));
    facts.append(fact('primary', (s.primary.label || '?') + (s.lag.connected ? ' (up)' : ' (down' + (s.lag.lastError ? ': ' + s.lag.lastError : '') + ')'), 'link'));
    facts.append(fact('fetched', bytes(s.fetched.onDemandBytes) + ' on demand, ' + bytes(s.fetched.hydrationBytes) + ' hydration'));
    $('state').className = 'value ' + (s.consistent ? 'ok' : 'warn');
  } else {
    const modes = s.drs.map(d => d.mode);
    const mode = modes.includes('bitmap') ? 'bitmap' : 'journaling';
    document.body.dataset.mode = mode;
    facts.append(fact('mode', mode, 'mode'));
    facts.append(fact('last seq', String(s.seq.last)));
    facts.append(fact('applied seq', String(s.seq.applied), 'applied'));
    facts.append(fact('journal', bytes(s.journal.bytes) + ', ' + s.journal.records + ' records'));
    const lag = s.drs.length ? Math.max(...s.drs.map(d => d.lagSeq)) : 0;
    facts.append(fact('lag', s.drs.length ? lag + ' seq (slowest DR)' : 'no DR registered', 'lag'));
    for (const d of s.drs) {
      facts.append(fact('DR ' + d.nodeId.slice(0, 8), d.mode + ', acked ' + d.ackedSeq + ' (' + d.lagSeq + ' behind)' + (d.dirtyBytes ? ', ' + bytes(d.dirtyBytes) + ' dirty' : '')));
    }
  }
  if (s.splitBrain) facts.append(fact('split brain', typeof s.splitBrain === 'string' ? s.splitBrain : s.splitBrain.reason));
}

function card (name) {
  let c = cards.get(name);
  if (c) return c;
  const root = el('section', 'volume');
  root.dataset.volume = name;
  const head = el('div', 'head');
  const title = el('h2', null, name);
  const badge = el('span', 'badge');
  const info = el('div', 'info');
  head.append(title, badge);
  const canvas = document.createElement('canvas');
  canvas.dataset.volume = name;
  canvas.width = 1;
  canvas.height = 1;
  // Offsets down the left side; hovering a region says which it is.
  const map = el('div', 'map');
  const axis = el('div', 'axis');
  map.append(axis, canvas);
  root.append(head, info, map);
  $('volumes').append(root);
  c = { root, badge, info, canvas, axis, picture: null, raw: '', cols: 1, scale: 1 };
  canvas.addEventListener('mousemove', (ev) => hover(c, ev));
  canvas.addEventListener('mouseleave', () => { $('tip').hidden = true; });
  cards.set(name, c);
  return c;
}

let appliedSeq = 0;

function hover (c, ev) {
  const p = c.picture;
  if (!p) return;
  const r = c.canvas.getBoundingClientRect();
  const x = Math.floor((ev.clientX - r.left) / c.scale);
  const y = Math.floor((ev.clientY - r.top) / c.scale);
  const i = y * c.cols + x;
  const tip = $('tip');
  if (x < 0 || x >= c.cols || i < 0 || i >= p.regions) { tip.hidden = true; return; }
  const st = STATES[(c.raw.charCodeAt(i >> 2) >> ((i & 3) * 2)) & 3];
  tip.textContent = p.volume + ' · region ' + i + ' · offset ' + bytes(i * p.regionSize) + ' · ' + st + ' · as of seq ' + appliedSeq;
  tip.dataset.region = String(i);
  tip.dataset.state = st;
  tip.style.left = (ev.clientX + 12) + 'px';
  tip.style.top = (ev.clientY + 12) + 'px';
  tip.hidden = false;
}

/** drawAxis labels the rows where round offsets begin (spaced at least 16 px). */
function drawAxis (c, p, cols, rows, scale) {
  const total = p.regions * p.regionSize;
  const perRow = cols * p.regionSize;
  // The smallest power of two (from 1 MiB) whose rows are 16 px apart or more.
  let step = 1024 * 1024;
  while (step < total && step * rows * scale / total < 16) step *= 2;
  const labels = [];
  let lastY = -100;
  for (let off = 0; off < total; off += step) {
    const y = Math.floor(off / perRow) * scale;
    if (y - lastY < 16) continue;
    const l = el('span', 'tick', bytes(off));
    l.style.top = y + 'px';
    labels.push(l);
    lastY = y;
  }
  c.axis.replaceChildren(...labels);
  c.axis.style.height = rows * scale + 'px';
}

function draw (c, p) {
  const n = p.regions;
  const cols = Math.max(1, Math.min(512, n, Math.ceil(Math.sqrt(n * 4))));
  const rows = Math.max(1, Math.ceil(n / cols));
  const raw = atob(p.data);
  const img = new ImageData(cols, rows);
  for (let i = 0; i < n; i++) {
    const st = STATES[(raw.charCodeAt(i >> 2) >> ((i & 3) * 2)) & 3];
    const col = COLORS[st];
    const o = i * 4;
    img.data[o] = col[0]; img.data[o + 1] = col[1]; img.data[o + 2] = col[2]; img.data[o + 3] = 255;
  }
  const cv = c.canvas;
  if (cv.width !== cols || cv.height !== rows) { cv.width = cols; cv.height = rows; }
  cv.getContext('2d').putImageData(img, 0, 0);
  const scale = Math.max(1, Math.floor(720 / cols));
  cv.style.width = cols * scale + 'px';
  cv.style.height = rows * scale + 'px';
  cv.dataset.regions = String(n);
  for (const st of STATES) cv.dataset[st] = String(p.counts[st]);
  c.picture = p;
  c.raw = raw;
  c.cols = cols;
  c.scale = scale;
  drawAxis(c, p, cols, rows, scale);
}

function renderVolume (s, v, p) {
  const c = card(v.name);
  const dr = s.role === 'dr';
  const state = dr ? v.state : (p.counts.dirty > 0 ? 'dirty regions' : 'primary copy');
  c.root.dataset.state = dr ? v.state : 'primary';
  c.badge.textContent = state;
  c.badge.className = 'badge ' + (dr ? (v.state === 'consistent' ? 'ok' : 'warn') : (p.counts.dirty > 0 ? 'warn' : 'ok'));
  const parts = [bytes(v.size), p.regions + ' regions of ' + bytes(p.regionSize)];
  if (dr) parts.push(v.hydratedPercent.toFixed(1) + '% hydrated');
  parts.push(STATES.filter(st => p.counts[st] > 0).map(st => p.counts[st] + ' ' + st).join(', '));
  const f = v.flagged;
  if (f && f.reason === 'apply-failed') {
    c.badge.textContent = (f.errno === 'ENOSPC' ? 'disk full: ' : 'write failed: ') + (f.failedWrites || 1) + ' not applied';
    c.badge.className = 'badge warn';
  } else if (f) parts.push(f.reason + ' since ' + f.since);
  c.info.textContent = parts.join(' · ');
  draw(c, p);
}

async function tick () {
  try {
    const s = await get('/v1/status');
    renderSummary(s);
    const seen = new Set();
    for (const v of s.volumes) {
      let p;
      try { p = await get('/v1/regionmap?volume=' + encodeURIComponent(v.name)); } catch (e) { continue; } // deleted meanwhile
      renderVolume(s, v, p);
      seen.add(v.name);
    }
    for (const [name, c] of cards) if (!seen.has(name)) { c.root.remove(); cards.delete(name); }
    $('empty').hidden = cards.size > 0;
    $('error').hidden = true;
    $('updated').textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
    document.body.dataset.refreshes = String(++refreshes);
  } catch (e) {
    $('error').textContent = e.message;
    $('error').hidden = false;
  } finally {
    setTimeout(tick, 1000);
  }
}

const legend = $('legend');
for (const st of STATES) {
  const item = el('span', 'item');
  const sw = el('span', 'swatch');
  sw.style.background = 'rgb(' + COLORS[st].join(',') + ')';
  item.append(sw, document.createTextNode(st === 'fetching' ? 'being fetched' : st));
  legend.append(item);
}
tick();
`

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2733; }
header { background: #1d2733; color: #fff; padding: 12px 20px; display: flex; align-items: baseline; gap: 16px; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header #updated { color: #aab4c0; font-size: 12px; margin-left: auto; }
main { padding: 16px 20px; max-width: 1100px; }
#facts { display: flex; flex-wrap: wrap; gap: 8px 22px; margin-bottom: 12px; }
.fact .label { color: #5d6b7a; margin-right: 6px; }
.fact .value { font-weight: 600; font-variant-numeric: tabular-nums; }
.ok { color: #1f7a3b; } .warn { color: #b4561b; }
#legend { display: flex; gap: 16px; margin: 6px 0 14px; color: #3b4754; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.volume { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: 10px 14px 14px; margin-bottom: 14px; }
.volume .head { display: flex; align-items: baseline; gap: 10px; }
.volume h2 { font-size: 15px; margin: 0; font-family: ui-monospace, monospace; }
.badge { font-size: 12px; font-weight: 600; }
.info { color: #5d6b7a; margin: 2px 0 8px; font-variant-numeric: tabular-nums; }
canvas { image-rendering: pixelated; border: 1px solid #dde2e8; display: block; }
.map { display: flex; gap: 6px; }
.axis { position: relative; width: 64px; flex: none; color: #5d6b7a; font-size: 11px; font-variant-numeric: tabular-nums; text-align: right; }
.axis .tick { position: absolute; right: 0; line-height: 1; }
#tip { position: fixed; background: #1f2933; color: #fff; font-size: 12px; padding: 4px 8px; border-radius: 4px; pointer-events: none; white-space: nowrap; }
#error { background: #fdecea; color: #8a1c12; padding: 8px 12px; border-radius: 4px; margin-bottom: 12px; }
`

/** STATUS_PAGE_HTML is the whole page. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>volmirror status</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1 id="title">volmirror</h1><span id="updated">connecting…</span></header>
<main>
<div id="error" hidden></div>
<div id="facts"></div>
<div id="legend"></div>
<p id="empty" hidden>No volumes yet.</p>
<div id="volumes"></div>
<div id="tip" hidden></div>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`

/** STATUS_PAGE_HEADERS go with the page: only its own script and style run, it talks only to its node, nothing refers elsewhere. */
export const STATUS_PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'content-security-policy': `default-src 'none'; script-src ${hash(SCRIPT)}; style-src ${hash(STYLE)}; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
}

/** UNAUTHORIZED_PAGE_HTML answers `GET /` without the token: how to open the page. */
export const UNAUTHORIZED_PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>volmirror status: token needed</title></head>
<body style="font: 15px system-ui, sans-serif; margin: 40px">
<h1 style="font-size: 18px">volmirror status</h1>
<p>This page needs the node's peer token. Open it as <code>/?token=TOKEN</code>, where TOKEN is the content of the primary's <code>STATE/token</code> file.</p>
</body></html>
`
