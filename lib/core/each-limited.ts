/**
 * eachLimited runs `fn` over `items`, at most `limit` at a time, in order
 * of start; the first failure stops new starts and is thrown once the
 * running ones settled.
 */
export async function eachLimited<T> (items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  let failed: { err: unknown } | undefined
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length && failed === undefined) {
      const item = items[next++]!
      try { await fn(item) } catch (err) { failed ??= { err } }
    }
  }))
  if (failed !== undefined) throw failed.err
}
