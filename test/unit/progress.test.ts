/**
 * progress: rate and ETA from samples, the plain form of a ProgressView,
 * and the config file's checks (lib/cli/progress.ts, lib/cli/config.ts).
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Writable } from 'node:stream'
import { configPath, readConfig, type FlagSpec } from '../../lib/cli/config.js'
import { formatEta, ProgressView, RateMeter } from '../../lib/cli/progress.js'
import { VolmirrorError } from '../../lib/errors.js'
import { tmpDir } from '../helpers/tmp.js'

function sink (): { stream: Writable, text: () => string } {
  let out = ''
  const stream = new Writable({ write (c: Buffer, _e, cb) { out += c.toString(); cb() } })
  return { stream, text: () => out }
}

describe('progress (unit)', () => {
  it('RateMeter: no rate before 1 s of samples, then units per second over the window, and an ETA', () => {
    const m = new RateMeter(10_000)
    m.add(0, 0)
    m.add(100, 500)
    assert.equal(m.rate(), undefined)
    assert.equal(m.eta(1000), undefined)
    m.add(200, 1000)
    assert.equal(m.rate(), 200)
    assert.equal(m.eta(1000), 4)
    // Old samples leave the window: the rate follows the recent pace.
    m.add(200, 20_000)
    m.add(300, 21_000)
    assert.equal(m.rate(), 100)
    assert.equal(m.eta(300), 0)
  })

  it('RateMeter: a value that goes down (work added) starts over', () => {
    const m = new RateMeter()
    m.add(0, 0)
    m.add(500, 2000)
    m.add(100, 3000)
    assert.equal(m.rate(), undefined)
  })

  it('formatEta', () => {
    assert.equal(formatEta(undefined), '-')
    assert.equal(formatEta(Infinity), '-')
    assert.equal(formatEta(4.2), '5s')
    assert.equal(formatEta(185), '3m05s')
    assert.equal(formatEta(7800), '2h10m')
  })

  it('ProgressView off a terminal: a line per unfinished item and per text on flush, one line when an item finishes, no escapes', () => {
    const s = sink()
    const v = new ProgressView({ stream: s.stream as unknown as NodeJS.WriteStream, tty: false, plainIntervalMs: 0, timestamps: false })
    v.update('a', { label: 'disk.img', kind: 'hydrate', done: 0, total: 4 << 20 })
    v.text('lag', 'lag 0.10 s')
    v.flush()
    assert.equal(s.text(), 'hydrate disk.img  0.0%  0 B of 4.00 MiB  -  eta -\nlag 0.10 s\n')
    v.update('a', { label: 'disk.img', kind: 'hydrate', done: 4 << 20, total: 4 << 20 })
    assert.match(s.text().split('\n').at(-2)!, /^hydrate disk\.img {2}done {2}4\.00 MiB {2}in [\d.]+ s$/)
    v.update('b', { label: 'verify', done: 10, total: 10, unit: { name: 'regions' } })
    assert.equal(s.text().split('\n').at(-2), 'verify  complete  10 regions')
    const before = s.text()
    v.flush()
    assert.equal(s.text().slice(before.length), 'lag 0.10 s\n', 'finished items are not repeated')
    v.stop()
    v.flush()
    assert.doesNotMatch(s.text(), /\x1b/)
  })

  it('ProgressView in a terminal draws cli-progress bars', async () => {
    const s = sink()
    const v = new ProgressView({ stream: s.stream as unknown as NodeJS.WriteStream, tty: true })
    v.update('a', { label: 'disk.img', kind: 'hydrate', done: 1 << 20, total: 4 << 20 })
    v.text('lag', 'lag 0.10 s')
    v.print('hello')
    v.stop()
    assert.match(s.text(), /hydrate disk\.img +\u2588+\u2591+ +25\.0% 1\.00 MiB of 4\.00 MiB/)
    assert.match(s.text(), /lag 0\.10 s/)
    assert.match(s.text(), /hello/)
  })
})

describe('progress in a narrow terminal (unit)', () => {
  it('every row fits the terminal\'s width, cut at the end: the state that leads a row stays', async () => {
    const s = sink()
    const stream = Object.assign(s.stream, { columns: 60 })
    const v = new ProgressView({ stream: stream as unknown as NodeJS.WriteStream, tty: true })
    v.update('a', { label: 'a-rather-long-volume-name-for-a-vm-disk.qcow2', kind: 'hydrate', done: 1 << 20, total: 4 << 20 })
    v.text('lag', 'DR CONSISTENT  lag at most 0.10 s (1 record behind), applied seq 123456 of 123457, primary http://10.0.0.1:7070 (up)')
    v.stop()
    // eslint-disable-next-line no-control-regex
    const lines = s.text().replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '\n').split(/[\r\n]+/).filter(l => l.trim() !== '')
    assert.ok(lines.length > 0)
    for (const l of lines) assert.ok(l.length <= 59, `a row of ${l.length} characters in 60 columns: ${JSON.stringify(l)}`)
    assert.ok(lines.some(l => l.startsWith('DR CONSISTENT  lag at most')), 'the state leads its row and is kept')
  })
})

describe('config file (unit)', () => {
  const flags: FlagSpec[] = [
    { key: 'state', boolean: false },
    { key: 'json', boolean: true },
    { key: 'log-level', boolean: false, choices: ['error', 'info'] },
    { key: 'read-ahead', boolean: false },
  ]

  async function file (content: unknown): Promise<string> {
    const f = path.join(await tmpDir('config'), 'volmirror.json')
    await writeFile(f, typeof content === 'string' ? content : JSON.stringify(content))
    return f
  }

  async function usage (p: Promise<unknown>): Promise<string> {
    const err = await p.then(() => undefined, (e: unknown) => e)
    assert.ok(err instanceof VolmirrorError, String(err))
    assert.equal(err.code, 'USAGE')
    return err.message
  }

  it('takes this command\'s keys, numbers as text, ignores other commands\' keys', async () => {
    const f = await file({ state: './s', json: true, 'read-ahead': 8, images: './i' })
    assert.deepEqual([...await readConfig(f, flags, ['images'])], [['state', './s'], ['json', true], ['read-ahead', '8']])
  })

  it('unknown keys (all named), wrong types and bad choices are usage errors', async () => {
    const m = await usage(readConfig(await file({ stat: 1, imagez: 2 }), flags, ['images']))
    assert.match(m, /"stat", "imagez"/)
    assert.match(await usage(readConfig(await file({ json: 'yes' }), flags, [])), /"json" is a switch/)
    assert.match(await usage(readConfig(await file({ state: ['a'] }), flags, [])), /"state" takes a value as text/)
    assert.match(await usage(readConfig(await file({ 'log-level': 'loud' }), flags, [])), /"loud" is not one of error, info/)
    assert.match(await usage(readConfig(await file({ config: 'x' }), flags, ['config'])), /"config"/)
    assert.match(await usage(readConfig(await file('nope'), flags, [])), /not JSON/)
  })

  it('configPath finds --config FILE and --config=FILE, not after --', () => {
    assert.equal(configPath(['--state', 's', '--config', 'a.json']), 'a.json')
    assert.equal(configPath(['--config=b.json']), 'b.json')
    assert.equal(configPath(['--', '--config', 'c.json']), undefined)
    assert.throws(() => configPath(['--config']), /a file name is needed/)
  })
})
