#!/usr/bin/env node
// Postinstall: builds fuse-native from source with our fixes applied.
//
// Three fixes to fuse-native 2.2.6, so that `touch -m`, `touch -a`, `tar x`, `cp -p` and
// `rsync -t` set the right times through a bazil mount:
// - utimens passes atime in both slots (fuse-native.c hands `l->atime` to JS twice instead
//   of `l->atime, l->mtime`);
// - libfuse 2.9 drops a utimens that leaves one of the times alone (UTIME_OMIT) unless the
//   file system sets `flag_utime_omit_ok`;
// - fuse-native hands times to JS in milliseconds, where UTIME_NOW and UTIME_OMIT (tv_nsec
//   2^30-1 and 2^30-2) both become 1073: UTIME_OMIT becomes 1074 (src/fs/fuse/times.ts).
// We apply them and build the addon with the node-gyp that npm ships (node-gyp-build then
// prefers build/ over the prebuild). Idempotent: a marker records which fixes the build has.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
// BAZIL_FUSE_NATIVE_DIR: build a copy of fuse-native there instead (trying fixes without
// touching a node_modules other checkouts share).
let dir = process.env.BAZIL_FUSE_NATIVE_DIR
try {
  dir ??= path.dirname(require.resolve('fuse-native/package.json'))
} catch {
  console.error('build-fuse-native: fuse-native is not installed; skipping')
  process.exit(0)
}

const source = path.join(dir, 'fuse-native.c')
const marker = path.join(dir, 'build', 'Release', '.bazil-utimens-fixed')
const MARK = 'bazil fixes: utimens-mtime, utime-omit-ok, utime-omit-apart\n'
const FIXES = [
  ['FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)', 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)'],
  ['  struct fuse_operations ops = { };\n', '  struct fuse_operations ops = { };\n  ops.flag_utime_omit_ok = 1;\n'],
  ['static uint64_t timespec_to_uint64 (const struct timespec* ts) {\n', 'static uint64_t timespec_to_uint64 (const struct timespec* ts) {\n  if (ts->tv_nsec == ((1l << 30) - 2l)) return 1074; /* bazil: UTIME_OMIT apart from UTIME_NOW (1073) */\n']
]

let c = fs.readFileSync(source, 'utf8')
for (const [buggy, fixed] of FIXES) {
  if (c.includes(fixed)) continue
  if (!c.includes(buggy)) {
    console.error(`build-fuse-native: fuse-native.c does not look like 2.2.6; cannot apply: ${fixed.trim()}`)
    process.exit(1)
  }
  c = c.replace(buggy, fixed)
}
fs.writeFileSync(source, c)
if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === MARK) process.exit(0)

function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  ]
  for (const p of candidates) if (p && fs.existsSync(p)) return p
  try {
    return require.resolve('node-gyp/bin/node-gyp.js')
  } catch {
    return null
  }
}

const gyp = nodeGyp()
if (!gyp) {
  console.error('build-fuse-native: node-gyp not found (it ships with npm); the mount needs a rebuilt fuse-native: install node-gyp and run `npm rebuild`')
  process.exit(1)
}
// Build against the headers of the Node that runs us, never a download (no network needed).
const args = [gyp, 'rebuild', '--loglevel=warn']
const prefix = path.join(path.dirname(process.execPath), '..')
if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
  args.push(`--nodedir=${prefix}`)
}
try {
  execFileSync(process.execPath, args, { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
} catch {
  console.error('build-fuse-native: building fuse-native failed: install a C compiler, make and python3 (apt-get install build-essential python3), then run `npm rebuild`')
  process.exit(1)
}
fs.writeFileSync(marker, MARK)
console.error('build-fuse-native: built fuse-native with the utimens fixes')
