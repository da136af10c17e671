#!/usr/bin/env node
// build-native makes the native data path ready: it applies our patch to
// fuse-native (native/patches, with patch-package), rebuilds fuse-native
// from source when the patch changed, and builds our own addon (native/).
//
// Both builds use node-gyp against the headers of the Node that runs this
// (never downloaded) and are skipped when their inputs are unchanged, so
// running it again is cheap. `--force` rebuilds both.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const force = process.argv.includes('--force')
const say = (msg) => console.error(`volmirror setup: ${msg}`)

const gyp = process.env.npm_config_node_gyp ||
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
const prefix = path.join(path.dirname(process.execPath), '..')
const nodedir = process.env.npm_config_nodedir ||
  (existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined)
if (!nodedir) {
  say(`Node's headers are not in ${path.join(prefix, 'include', 'node')}: install the package that has them (Debian: nodejs-dev or libnode-dev)`)
  process.exit(1)
}

/** digest hashes files (their names and bytes): a build is redone when it changes. */
function digest (files) {
  const h = createHash('sha256')
  for (const f of files) h.update(f).update(readFileSync(f))
  return h.digest('hex')
}

/** build runs node-gyp rebuild in `dir` unless `stampFile` already holds `sum`. */
function build (dir, sum, stampFile, what) {
  if (!force && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === sum) return
  say(`building ${what} (node-gyp)`)
  try {
    execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    process.stderr.write(String(err.stderr ?? ''))
    say(`building ${what} failed: a C compiler, make and python3 are needed (Debian: apt-get install build-essential python3)`)
    process.exit(1)
  }
  writeFileSync(stampFile, sum)
}

// 1. fuse-native, patched.
const fuseDir = path.dirname(require.resolve('fuse-native/package.json'))
const patches = path.join(root, 'native', 'patches')
const source = readFileSync(path.join(fuseDir, 'fuse-native.c'), 'utf8')
if (!source.includes('volmirror_hooks_t')) {
  say('patching fuse-native (native/patches)')
  execFileSync(process.execPath, [require.resolve('patch-package/index.js'), '--patch-dir', path.relative(root, patches)], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
}
const fuseSum = digest([path.join(fuseDir, 'fuse-native.c'), path.join(fuseDir, 'index.js')])
build(fuseDir, fuseSum, path.join(fuseDir, 'build', 'Release', '.volmirror-stamp'), 'fuse-native with the volmirror patch')

// 2. Our addon.
const nativeDir = path.join(root, 'native')
const srcDir = path.join(nativeDir, 'src')
const inputs = [path.join(nativeDir, 'binding.gyp'), ...readdirSync(srcDir).sort().map(f => path.join(srcDir, f))]
build(nativeDir, digest(inputs), path.join(nativeDir, 'build', 'Release', '.volmirror-stamp'), 'the native data path (native/)')
