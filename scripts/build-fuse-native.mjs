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
//   2^30-1 and 2^30-2) both become 1073: UTIME_OMIT becomes 1074 (src/mount/times.ts);
// - fallocate is not among its ops (so it answers EOPNOTSUPP): op 34 (its handler table has
//   room for 35), `fallocate(path, fd, mode, offset, length, cb)` in JS.
// - the caller of an op (fuse_get_context: uid, gid, pid) is not passed on, so new nodes cannot
//   be owned by whoever made them: each op records it in its thread locals, and
//   `fuse.caller()` returns `[uid, gid, pid]` of the op being handled (called synchronously in
//   the handler; src/mount/owners.ts). A build without it: caller() is missing.
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
const MARK = 'bazil fixes: utimens-mtime, utime-omit-ok, utime-omit-apart, fallocate, caller\n'
const FIXES = [
  ['FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)', 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)'],
  ['  struct fuse_operations ops = { };\n', '  struct fuse_operations ops = { };\n  ops.flag_utime_omit_ok = 1;\n'],
  ['static uint64_t timespec_to_uint64 (const struct timespec* ts) {\n', 'static uint64_t timespec_to_uint64 (const struct timespec* ts) {\n  if (ts->tv_nsec == ((1l << 30) - 2l)) return 1074; /* bazil: UTIME_OMIT apart from UTIME_NOW (1073) */\n'],
  ['static const uint32_t op_rmdir = 33;\n', 'static const uint32_t op_rmdir = 33;\nstatic const uint32_t op_fallocate = 34; /* bazil */\n'],
  ['static void fuse_native_dispatch_init (', `FUSE_METHOD_VOID(fallocate, 7, 0, (const char *path, int mode, off_t offset, off_t length, struct fuse_file_info *info), {
  l->path = path;
  l->mode = mode;
  l->offset = offset;
  l->len = length;
  l->info = info;
}, {
  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->info != NULL ? l->info->fh : 0, &(argv[3]));
  napi_create_uint32(env, l->mode, &(argv[4]));
  FUSE_UINT64_TO_INTS_ARGV(l->offset, 5)
  FUSE_UINT64_TO_INTS_ARGV(l->len, 7)
})

static void fuse_native_dispatch_init (`],
  ['  if (implemented[op_init]) ops.init = fuse_native_init;\n', '  if (implemented[op_init]) ops.init = fuse_native_init;\n  if (implemented[op_fallocate]) ops.fallocate = fuse_native_fallocate;\n'],
  ['  NAPI_EXPORT_FUNCTION(fuse_native_signal_rmdir)\n', '  NAPI_EXPORT_FUNCTION(fuse_native_signal_rmdir)\n  NAPI_EXPORT_FUNCTION(fuse_native_signal_fallocate)\n'],
  ['  NAPI_EXPORT_UINT32(op_rmdir)\n', '  NAPI_EXPORT_UINT32(op_rmdir)\n  NAPI_EXPORT_UINT32(op_fallocate)\n'],
  ['  int32_t res;\n', '  int32_t res;\n  uid_t caller_uid; /* bazil: fuse_get_context() of the op */\n  gid_t caller_gid;\n  pid_t caller_pid;\n'],
  ['  l->op_fn = fuse_native_dispatch_##name;\\\n', '  l->op_fn = fuse_native_dispatch_##name;\\\n  { struct fuse_context *bazil_fc = fuse_get_context(); l->caller_uid = bazil_fc->uid; l->caller_gid = bazil_fc->gid; l->caller_pid = bazil_fc->pid; }\\\n'],
  ['NAPI_METHOD(fuse_native_unmount) {\n', `NAPI_METHOD(fuse_native_caller) { /* bazil */
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_locals_t *, l, 0);
  napi_value out, v;
  napi_create_array_with_length(env, 3, &out);
  napi_create_uint32(env, l->caller_uid, &v);
  napi_set_element(env, out, 0, v);
  napi_create_uint32(env, l->caller_gid, &v);
  napi_set_element(env, out, 1, v);
  napi_create_uint32(env, l->caller_pid, &v);
  napi_set_element(env, out, 2, v);
  return out;
}

NAPI_METHOD(fuse_native_unmount) {\n`],
  ['  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n', '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n  NAPI_EXPORT_FUNCTION(fuse_native_caller)\n']
]
/** The same for index.js: the fallocate op in the op table and its handler. */
const JS_FIXES = [
  ["  ['rmdir', {\n    op: binding.op_rmdir\n  }]\n])", "  ['rmdir', {\n    op: binding.op_rmdir\n  }],\n  ['fallocate', {\n    op: binding.op_fallocate\n  }]\n])"],
  ['  _op_rmdir (signal, path) {\n', `  _op_fallocate (signal, path, fd, mode, offsetLow, offsetHigh, lengthLow, lengthHigh) {
    this.ops.fallocate(path, fd, mode, getDoubleArg(offsetLow, offsetHigh), getDoubleArg(lengthLow, lengthHigh), err => {
      return signal(err)
    })
  }

  _op_rmdir (signal, path) {\n`],
  ['      return function (nativeHandler, opCode, ...args) {\n', '      return function (nativeHandler, opCode, ...args) {\n        self._caller = nativeHandler // bazil: whose op this is, for caller()\n'],
  ['  _malloc (size) {\n', `  // bazil: [uid, gid, pid] of the process whose op is being handled (call it synchronously in
  // the op's handler), or null when the addon predates this fix.
  caller () {
    return binding.fuse_native_caller && this._caller ? binding.fuse_native_caller(this._caller) : null
  }

  _malloc (size) {\n`]
]

function patch(file, fixes) {
  let c = fs.readFileSync(file, 'utf8')
  for (const [buggy, fixed] of fixes) {
    if (c.includes(fixed)) continue
    if (!c.includes(buggy)) {
      console.error(`build-fuse-native: ${path.basename(file)} does not look like fuse-native 2.2.6; cannot apply: ${fixed.trim().split('\n')[0]}`)
      process.exit(1)
    }
    c = c.replace(buggy, fixed)
  }
  fs.writeFileSync(file, c)
}
patch(source, FIXES)
patch(path.join(dir, 'index.js'), JS_FIXES)
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
