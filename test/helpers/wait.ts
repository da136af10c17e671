/**
 * wait: wait for a condition with a timeout (never a bare sleep).
 */

/** waitFor polls `cond` until it returns a truthy value, or fails after `timeoutMs` saying what it waited for. */
export async function waitFor<T> (what: string, cond: () => T | Promise<T>, timeoutMs = 10_000, intervalMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await cond()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}
