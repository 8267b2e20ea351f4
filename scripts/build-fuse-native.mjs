#!/usr/bin/env node
// Postinstall: builds fuse-native from source with one fix applied.
//
// fuse-native 2.2.6 passes atime in both slots of utimens (fuse-native.c hands `l->atime`
// to JS twice instead of `l->atime, l->mtime`), so `touch -m`, `tar x`, `cp -p` and
// `rsync -t` would set wrong mtimes through a bazil mount. We fix that one line and build
// the addon with the node-gyp that npm ships (node-gyp-build then prefers build/ over the
// prebuild). Idempotent: a marker records that the fixed build exists.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
let dir
try {
  dir = path.dirname(require.resolve('fuse-native/package.json'))
} catch {
  console.error('build-fuse-native: fuse-native is not installed; skipping')
  process.exit(0)
}

const source = path.join(dir, 'fuse-native.c')
const marker = path.join(dir, 'build', 'Release', '.bazil-utimens-fixed')
const BUGGY = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)'
const FIXED = 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)'

let c = fs.readFileSync(source, 'utf8')
if (c.includes(BUGGY)) {
  c = c.replace(BUGGY, FIXED)
  fs.writeFileSync(source, c)
} else if (!c.includes(FIXED)) {
  console.error('build-fuse-native: fuse-native.c does not look like 2.2.6; not patching utimens')
}
if (fs.existsSync(marker)) process.exit(0)

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
try {
  execFileSync(process.execPath, [gyp, 'rebuild'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
} catch {
  console.error('build-fuse-native: building fuse-native failed: install a C compiler, make and python3 (apt-get install build-essential python3), then run `npm rebuild`')
  process.exit(1)
}
fs.writeFileSync(marker, 'utimens passes mtime in its second slot\n')
console.error('build-fuse-native: built fuse-native with the utimens fix')
