/**
 * The times `--at` takes (lib/cli/history-commands.ts): ISO 8601, now,
 * now minus a duration; anything else is a usage error naming the flag.
 */
import assert from 'node:assert/strict'
import { parseWhen } from '../../lib/cli/history-commands.js'

describe('--at times (unit)', () => {
  it('reads ISO 8601, now and now-DURATION', () => {
    assert.equal(parseWhen('2026-12-04T10:42:07Z', '--at'), Date.UTC(2026, 11, 4, 10, 42, 7))
    assert.equal(parseWhen('2026-12-04T10:42:07.250+01:00', '--at'), Date.UTC(2026, 11, 4, 9, 42, 7, 250))
    const t0 = Date.now()
    const now = parseWhen('now', '--at')
    assert.ok(now >= t0 && now <= Date.now())
    const ago = parseWhen('now-15m', '--at')
    assert.ok(Math.abs(Date.now() - 15 * 60_000 - ago) < 1000)
    assert.ok(Math.abs(Date.now() - 2 * 3600_000 - parseWhen('now-2h', '--at')) < 1000)
  })

  it('refuses anything else with a usage error that shows what was given', () => {
    for (const bad of ['yesterday', 'now+5m', '', 'now-', '2026-13-45']) {
      assert.throws(() => parseWhen(bad, '--at'), (e: { code?: string, message: string }) => e.code === 'USAGE' && e.message.startsWith('--at'), bad)
    }
  })
})
