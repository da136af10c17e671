#!/bin/sh
# test.sh is `npm test`: the whole suite on the native data path (the
# default), then every suite that drives the data path itself again on the
# JavaScript one (VOLMIRROR_DATA_PATH=js, what `--data-path js` selects):
# one suite, two paths. The control-plane suites (CLI, HTTP, journal,
# failover and outage logic) do not depend on the path and run once.
# `scripts/test.sh --js-all` runs the whole suite on the JavaScript path too.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup.sh --test
export UV_THREADPOOL_SIZE=32
echo "volmirror tests: native data path (every suite)" >&2
npx mocha
echo "volmirror tests: JavaScript data path (--data-path js)" >&2
if [ "${1:-}" = "--js-all" ]; then
  VOLMIRROR_DATA_PATH=js npx mocha
else
  VOLMIRROR_DATA_PATH=js npx mocha --no-config --require dist/test/helpers/hooks.js --timeout 60000 --slow 5000 --enable-source-maps \
    dist/test/integration/mount-ops.test.js dist/test/integration/tools.test.js dist/test/integration/primary-service.test.js \
    dist/test/integration/region-reader.test.js dist/test/integration/dr-basic.test.js dist/test/integration/watcher.test.js \
    dist/test/e2e/crash.test.js dist/test/e2e/dr.test.js dist/test/e2e/hydrate-race.test.js dist/test/e2e/pair-smoke.test.js
fi
