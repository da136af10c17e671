/**
 * app: the volmirror build a run measures.
 *
 * The run copies the built program (bin/, dist/, native/ with its built
 * addon, package.json; node_modules linked) into its scratch directory before it starts anything, so every
 * setup of every run uses the same code even when the checkout is rebuilt
 * meanwhile (`npm test` in the same tree rewrites dist/). The report records
 * which commit that was and whether lib/ or bin/ had uncommitted changes.
 */
import { cp, mkdir, symlink } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from './exec.js'

/** ROOT is the repository root (this file runs from dist/bench/lib). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

/** AppInfo says what code the figures are for. */
export interface AppInfo {
  /** Root of the snapshot the setups run from. */
  root: string
  commit: string
  /** True when lib/, bin/, bench/ or native/ differed from the commit when the run started. */
  dirty: boolean
}

/** snapshotApp copies the build at `repo` into `dir/app` and describes it. */
export async function snapshotApp (repo: string, dir: string): Promise<AppInfo> {
  const root = path.join(dir, 'app')
  await mkdir(root, { recursive: true })
  await cp(path.join(repo, 'bin'), path.join(root, 'bin'), { recursive: true })
  await cp(path.join(repo, 'dist'), path.join(root, 'dist'), { recursive: true, filter: src => !src.endsWith('.map') })
  await cp(path.join(repo, 'native'), path.join(root, 'native'), { recursive: true, filter: src => !src.includes('obj.target') })
  await cp(path.join(repo, 'package.json'), path.join(root, 'package.json'))
  await symlink(path.join(repo, 'node_modules'), path.join(root, 'node_modules'), 'dir')
  const head = await run('git', ['-C', repo, 'rev-parse', '--short=12', 'HEAD']).catch(() => undefined)
  const status = await run('git', ['-C', repo, 'status', '--porcelain', '--', 'lib', 'bin', 'bench', 'native']).catch(() => undefined)
  return {
    root,
    commit: head?.code === 0 ? head.stdout.trim() : 'unknown',
    dirty: status?.code === 0 ? status.stdout.trim().length > 0 : false,
  }
}
