/**
 * hooks: mocha root hooks (loaded with `require` in .mocharc.json).
 */
import { runDeferred, sweep } from './cleanup.js'

export const mochaHooks = {
  async afterEach (): Promise<void> {
    await runDeferred()
  },
  async afterAll (): Promise<void> {
    await runDeferred()
    await sweep()
  },
}
