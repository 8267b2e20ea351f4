#!/usr/bin/env bash
# The quick-start demo: one node, one volume, driven by the CLI as a user would.
# create -> import a folder -> snapshot -> change it -> show the log -> export the snapshot.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/src/cli/main.js ] || npm run build >/dev/null

work=$(mktemp -d /tmp/bazil-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
bazil() { echo "\$ bazil $*" >&2; node bin/bazil.js --data-dir="$work/data" "$@"; }

echo "== a folder to import"
mkdir -p "$work/photos/2014/wedding" "$work/photos/notes"
head -c 3000000 /dev/urandom >"$work/photos/2014/wedding/cake.raw"
echo "hello, world" >"$work/photos/notes/greeting.txt"
printf '#!/bin/sh\necho hi\n' >"$work/photos/notes/hi.sh"; chmod 755 "$work/photos/notes/hi.sh"
ln -s notes/greeting.txt "$work/photos/latest"
cp -a "$work/photos" "$work/original"

echo "== identity and a volume"
bazil create
bazil debug pubkey
bazil volume create myfiles
bazil volume import myfiles "$work/photos"
bazil volume ls -l myfiles /notes

echo "== snapshot, then change the live volume"
bazil volume snapshot create myfiles before-edit
echo "hello, again" >"$work/photos/notes/greeting.txt"
bazil volume import myfiles "$work/photos"
bazil volume mv myfiles /2014 /archive-2014
bazil volume rm myfiles /notes/hi.sh
bazil volume cat myfiles /notes/greeting.txt
bazil volume snapshot list myfiles

echo "== the op log"
bazil log show myfiles
bazil log verify myfiles

echo "== export the snapshot and compare with the original folder"
bazil volume export --snapshot=before-edit myfiles "$work/restored"
diff -r "$work/original" "$work/restored" && echo "snapshot before-edit equals the original folder"
