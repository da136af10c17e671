#!/usr/bin/env node
// patch-fuse-native rebuilds fuse-native 2.2.6 from source with our fixes.
//
// Why: the published addon passes atime twice to `utimens` (the mtime a
// caller sets is lost: `touch -m`, `cp -p`, rsync). The fix is one line in the
// C source; JavaScript cannot recover the lost value, so we patch and rebuild
// with node-gyp (npm provides it; Node's headers are on every machine we run
// on). Idempotent: does nothing when the built addon is already patched.
import { readFileSync, writeFileSync, existsSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'

const require = createRequire(import.meta.url)
const dir = path.dirname(require.resolve('fuse-native/package.json'))
const src = path.join(dir, 'fuse-native.c')
const built = path.join(dir, 'build', 'Release', 'fuse.node')
const BUG = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)'
const FIX = 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5) /* volmirror: was l->atime */'

let code = readFileSync(src, 'utf8')
const needsPatch = code.includes(BUG)
if (!needsPatch && existsSync(built)) process.exit(0)
if (needsPatch) {
  code = code.replace(BUG, FIX)
  writeFileSync(src, code)
}
const gyp = process.env.npm_config_node_gyp ||
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
// Build against the headers of the Node we run on (never download them).
const prefix = path.join(path.dirname(process.execPath), '..')
const nodedir = process.env.npm_config_nodedir ||
  (existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined)
const args = [gyp, 'rebuild', ...(nodedir ? ['--nodedir=' + nodedir] : [])]
console.error('volmirror: rebuilding fuse-native with the utimens fix (node-gyp)')
execFileSync(process.execPath, args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
