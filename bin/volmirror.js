#!/usr/bin/env node
// volmirror's launcher. FUSE handlers, image I/O and LevelDB share libuv's
// thread pool (4 threads by default, too few: a full pool stalls the mount),
// so raise it before anything starts it, then run the CLI (bin/cli.ts).
process.env.UV_THREADPOOL_SIZE ??= '64'
try {
  await import('../dist/bin/cli.js')
} catch (err) {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/bin/cli.js')) {
    console.error('volmirror: not built yet; run `npm run setup` (installs what is missing and builds)')
    process.exit(1)
  }
  throw err
}
