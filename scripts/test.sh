#!/usr/bin/env bash
# The test command (npm test): builds, then runs every test file one at a time. Where it can
# (root, unshare and ip present), inside a fresh network namespace with only loopback up, so
# no test can reach any network but 127.0.0.1/::1 (the DHT testnets the tests start). Set
# BAZIL_TEST_NETNS=0 to run in the host's network.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
run=(node --test --test-concurrency=1 --test-timeout=600000 "${@:-dist/test/}")
if [ "${BAZIL_TEST_NETNS:-1}" != 0 ] && command -v ip >/dev/null && unshare -n true 2>/dev/null; then
  echo "tests: in a loopback-only network namespace (unshare -n)"
  exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh "${run[@]}"
fi
echo "WARNING: tests run in the host's network namespace (unshare -n or ip unavailable, or BAZIL_TEST_NETNS=0); they still use only 127.0.0.1" >&2
exec "${run[@]}"
