/**
 * cleanup: teardown that runs even when a benchmark fails or the run is
 * interrupted (SIGINT/SIGTERM).
 *
 * Whatever starts a process or a mount registers a step here and removes it
 * once it has stopped that thing itself; `runAll` runs what is left, newest
 * first, and never throws. Only processes this run started are ever killed.
 */

/** Step is one teardown action. */
export type Step = () => unknown

/** Cleanup is a stack of teardown steps. */
export class Cleanup {
  private readonly steps = new Map<number, { label: string, fn: Step }>()
  private next = 0

  /** add registers `fn`; the returned function unregisters it (call it once you cleaned up yourself). */
  add (label: string, fn: Step): () => void {
    const id = this.next++
    this.steps.set(id, { label, fn })
    return () => { this.steps.delete(id) }
  }

  /** runAll runs every registered step, newest first, logging failures. */
  async runAll (): Promise<void> {
    const ids = [...this.steps.keys()].sort((a, b) => b - a)
    for (const id of ids) {
      const step = this.steps.get(id)
      if (!step) continue
      this.steps.delete(id)
      try {
        await step.fn()
      } catch (err) {
        process.stderr.write(`bench: cleanup step "${step.label}" failed: ${(err as Error)?.message ?? String(err)}\n`)
      }
    }
  }

  /** size is how many steps are still registered. */
  get size (): number { return this.steps.size }
}
