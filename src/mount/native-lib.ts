// Makes fuse-native loadable with nothing but npm. Its addon needs libfuse.so.2; where the
// system has none (no `apt-get install libfuse2`), the copy bundled in fuse-shared-library is
// loaded first with RTLD_GLOBAL, which satisfies the addon's dependency by its soname. Where
// no `fusermount` is on PATH, the bundled one is appended. Imported before 'fuse-native'.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
/** RTLD_NODELETE (glibc 0x1000): Node dlcloses what is not an addon; the library must stay. */
const RTLD_NODELETE = 0x1000
const FLAGS = os.constants.dlopen.RTLD_NOW | os.constants.dlopen.RTLD_GLOBAL | RTLD_NODELETE

/** Loads a plain shared library; Node then complains it is no addon, which is expected. */
function loadLibrary(file: string): boolean {
  try {
    process.dlopen({ exports: {} } as NodeJS.Module, file, FLAGS)
    return true
  } catch (err) {
    return !/cannot open shared object|No such file/i.test((err as Error).message)
  }
}

function bundledDir(): string | null {
  try {
    return path.join(path.dirname(require.resolve('fuse-shared-library-linux/package.json')), 'libfuse')
  } catch {
    return null
  }
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, cmd)))
}

if (process.platform === 'linux') {
  const bundled = bundledDir()
  if (!loadLibrary('libfuse.so.2') && bundled) loadLibrary(path.join(bundled, 'lib', 'libfuse.so'))
  if (!onPath('fusermount') && bundled) process.env.PATH = `${process.env.PATH ?? ''}${path.delimiter}${path.join(bundled, 'bin')}`
}

let fixes: string | null = null
/**
 * Whether the loaded fuse-native was built with one of scripts/build-fuse-native.mjs's fixes
 * (`utime-omit-apart`, `fallocate`): its build marker names them. A build without one still
 * works, without what the fix brings.
 */
export function hasFuseFix(name: string): boolean {
  if (fixes === null) {
    try {
      const dir = path.dirname(require.resolve('fuse-native/package.json'))
      fixes = fs.readFileSync(path.join(dir, 'build', 'Release', '.bazil-utimens-fixed'), 'utf8')
    } catch {
      fixes = ''
    }
  }
  return fixes.replace(/\n/g, ',').split(/[:,]/).map((s) => s.trim()).includes(name)
}
