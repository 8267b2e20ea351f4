#!/usr/bin/env bash
# A POSIX conformance suite run inside a bazil mount (not part of `npm test`).
# The suite is pjdfstest (https://github.com/pjd/pjdfstest), built outside this repo:
#   PJDFSTEST_DIR=/path/to/pjdfstest bash scripts/posix-suite.sh [TEST-SUBDIR...]
# PJDFSTEST_DIR holds the built `pjdfstest` binary and its tests/ folder (build without autotools:
# write config.h with the HAVE_* of configure.ac that your libc has, `cc -o pjdfstest pjdfstest.c`).
# Runs as root (the suite switches to other uids), in a fresh data dir and server; prints prove's
# summary and writes the full TAP output to $POSIX_OUT (default /tmp/bazil-posix.tap).
# TEST-SUBDIR: chmod, open, rename, ... (default: all of tests/).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PJDFSTEST_DIR:?set PJDFSTEST_DIR to a built pjdfstest checkout}"
[ -x "$PJDFSTEST_DIR/pjdfstest" ] || { echo "bazil: no pjdfstest binary in $PJDFSTEST_DIR (build it first)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bazil: the suite needs root (it switches users)" >&2; exit 2; }
[ -f dist/src/cli/main.js ] || npx tsc -p tsconfig.json
out=${POSIX_OUT:-/tmp/bazil-posix.tap}
work=$(mktemp -d /tmp/bazil-posix.XXXXXX)
chmod 755 "$work"
server_pid=
cleanup() {
  cd /
  mountpoint -q "$work/mnt" 2>/dev/null && node "$OLDPWD/bin/bazil.js" --data-dir="$work/data" volume unmount "$work/mnt" >/dev/null 2>&1 || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  mountpoint -q "$work/mnt" 2>/dev/null && fusermount -uz "$work/mnt" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
bazil() { node bin/bazil.js --data-dir="$work/data" "$@"; }
bazil create >/dev/null
bazil volume create posix >/dev/null
node bin/bazil.js --data-dir="$work/data" server run --bootstrap=none 2>"$work/server.log" >/dev/null &
server_pid=$!
for _ in $(seq 1 200); do grep -q "listening on .*control.sock" "$work/server.log" && break; sleep 0.1; done
mkdir "$work/mnt"
bazil volume mount --allow-other posix "$work/mnt"
chmod 755 "$work/mnt"
tests=()
if [ $# -eq 0 ]; then tests=("$PJDFSTEST_DIR/tests"); else for t in "$@"; do tests+=("$PJDFSTEST_DIR/tests/$t"); done; fi
cd "$work/mnt"
set +e
prove -r --merge -v "${tests[@]}" >"$out" 2>&1
status=$?
set -e
cd - >/dev/null
# prove's summary: files and assertions that failed, then the totals.
sed -n '/^Test Summary Report/,$p' "$out"
grep -E '^(Files=|Result:)' "$out" | tail -2
echo "full output: $out"
exit $status
