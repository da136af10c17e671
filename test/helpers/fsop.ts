/**
 * fsop: run file operations in a child process (see fsop-child.ts).
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from './proc.js'

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fsop-child.js')

/** FsResult is the outcome of one operation: `ok`, or the errno `code`. */
export type FsResult = Record<string, any> & { ok: boolean, code?: string, message?: string }

/** fsops runs the operations in order in a fresh child process and returns one result each. */
export async function fsops (ops: Array<Record<string, unknown> & { op: string }>): Promise<FsResult[]> {
  const r = await run(process.execPath, [CHILD], { input: JSON.stringify(ops), timeoutMs: 60_000 })
  if (r.code !== 0) throw new Error(`fsop child failed (${r.code ?? r.signal}): ${r.stderr}`)
  return JSON.parse(r.stdout) as FsResult[]
}

/** fsop runs one operation and fails the test if it fails. */
export async function fsop (op: Record<string, unknown> & { op: string }): Promise<Record<string, any>> {
  const [res] = await fsops([op])
  if (!res!.ok) throw new Error(`${op.op} failed: ${res!.code} ${res!.message}`)
  return res!
}
