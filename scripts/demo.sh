#!/usr/bin/env bash
# The quick-start demo: one node, one volume, driven by the CLI as a user would.
# create -> import a folder -> snapshot -> change it -> show the log -> export the snapshot,
# then the server and a FUSE mount: ordinary tools in the mount, changes seen by the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/src/cli/main.js ] || npm run build >/dev/null

work=$(mktemp -d /tmp/bazil-demo.XXXXXX)
server_pid=
peer_pids=()
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  for p in "${peer_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  for m in "$work/white-mnt" "$work/black-mnt"; do mountpoint -q "$m" 2>/dev/null && fusermount -uz "$m" 2>/dev/null; done
  mountpoint -q "$work/mnt" 2>/dev/null && fusermount -uz "$work/mnt" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
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

if [ ! -e /dev/fuse ]; then
  echo "== /dev/fuse is missing: skipping the mount part of the demo"
  exit 0
fi
echo "== the server and a mount"
node bin/bazil.js --data-dir="$work/data" server run --bootstrap=none 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do grep -q "listening on .*control.sock" "$work/server.log" && break; sleep 0.1; done
mkdir "$work/mnt"
bazil volume mount myfiles "$work/mnt"
echo "\$ ls -l mnt/notes && cat mnt/notes/greeting.txt"
ls -l "$work/mnt/notes" && cat "$work/mnt/notes/greeting.txt"
echo "\$ ls mnt/.snap && cat mnt/.snap/before-edit/notes/greeting.txt"
ls "$work/mnt/.snap" && cat "$work/mnt/.snap/before-edit/notes/greeting.txt"
echo "\$ mkdir -p mnt/new/deep && echo written in the mount > mnt/new/deep/file && sync mnt/new/deep/file"
mkdir -p "$work/mnt/new/deep" && echo "written in the mount" >"$work/mnt/new/deep/file" && sync "$work/mnt/new/deep/file"
bazil volume cat myfiles /new/deep/file
bazil status
bazil volume unmount "$work/mnt"
kill "$server_pid"; wait "$server_pid" || true; server_pid=
echo "== server stopped; the log of the mount's writes:"
bazil log show myfiles | tail -4

echo
echo "== two peers, white and black, on a local DHT (the 2015 walkthrough)"
dht_port=$((40000 + RANDOM % 8000))
node bin/bazil.js dht run --port="$dht_port" >"$work/dht.log" 2>&1 &
peer_pids+=($!)
white() { echo "white\$ bazil $*" >&2; node bin/bazil.js --data-dir="$work/white" "$@"; }
black() { echo "black\$ bazil $*" >&2; node bin/bazil.js --data-dir="$work/black" "$@"; }
white create; black create
BLACK=$(node bin/bazil.js --data-dir="$work/black" debug pubkey)
WHITE=$(node bin/bazil.js --data-dir="$work/white" debug pubkey)
head -c 32 /dev/urandom >"$work/sekrit"
white sharing add friends <"$work/sekrit"
black sharing add friends <"$work/sekrit"
for who in white black; do
  node bin/bazil.js --data-dir="$work/$who" server run --bootstrap="127.0.0.1:$dht_port" 2>"$work/$who.log" &
  peer_pids+=($!)
  for _ in $(seq 1 100); do grep -q "listening on .*control.sock" "$work/$who.log" && break; sleep 0.1; done
done
mkdir "$work/white-mnt" "$work/black-mnt"
white volume create --sharing=friends myfiles
white volume mount myfiles "$work/white-mnt"
white peer add "$BLACK"
white peer storage allow "$BLACK" local
white peer volume allow "$BLACK" myfiles
black peer add "$WHITE"
black volume connect --sharing=friends "$WHITE" myfiles
black volume storage add --sharing=friends myfiles "peerkey:$WHITE"
black volume mount myfiles "$work/black-mnt"
echo "white\$ echo hello, world >mnt/greeting"
echo "hello, world" >"$work/white-mnt/greeting" && sync "$work/white-mnt/greeting"
black volume sync myfiles "$WHITE"
echo "black\$ cat mnt/greeting"
for _ in $(seq 1 50); do [ -e "$work/black-mnt/greeting" ] && break; sleep 0.1; done
cat "$work/black-mnt/greeting"
echo "white\$ echo hello, again >mnt/greeting"
echo "hello, again" >"$work/white-mnt/greeting" && sync "$work/white-mnt/greeting"
black volume sync myfiles "$WHITE"
sleep 0.5
echo "black\$ cat mnt/greeting"
cat "$work/black-mnt/greeting"
white volume unmount "$work/white-mnt"
black volume unmount "$work/black-mnt"
