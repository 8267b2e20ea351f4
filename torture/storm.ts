// A write storm through a mount, for the torture sections: a python child process writes
// files (new ones, and overwrites of a few hot ones) with write+fsync+close, and journals on
// the native disk, per file version, "I name sha256" before writing and "S name sha256" once
// fsync and close returned. checkStorm() then says which fsynced files are lost or torn.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

const WRITER = `
import os, sys, random, hashlib
mnt, journal, tag, seed, maxkib, maxfiles = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rnd = random.Random(seed)
j = open(journal, 'a', buffering=1)
i = 0
try:
    while maxfiles == 0 or i < maxfiles:
        i += 1
        name = f'hot{rnd.randrange(8)}' if rnd.random() < 0.3 else f'{tag}-{i}'
        data = os.urandom(rnd.randrange(1, maxkib * 1024))
        h = hashlib.sha256(data).hexdigest()
        j.write(f'I {name} {h}\\n')
        fd = os.open(os.path.join(mnt, name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        view = memoryview(data)
        while view:
            n = os.write(fd, view[:131072]); view = view[n:]
        os.fsync(fd)
        os.close(fd)
        j.write(f'S {name} {h}\\n')
except OSError as e:
    j.write(f'E {e.errno} {e.strerror}\\n')
    print(f'{e.errno} {e.strerror}', flush=True)
`

export interface Storm {
  child: ChildProcess
  /** Resolves with the writer's last line (the error that stopped it) when it exits. */
  done: Promise<string>
}

/** `maxFiles` 0: until an error stops it. */
export function startStorm(mnt: string, journal: string, tag: string, seed: number, maxKiB = 256, maxFiles = 0): Storm {
  const child = spawn('python3', ['-c', WRITER, mnt, journal, tag, String(seed), String(maxKiB), String(maxFiles)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const done = new Promise<string>((resolve) => child.on('exit', () => resolve(out.trim())))
  return { child, done }
}

export interface StormCheck {
  /** Files with at least one fsynced version. */
  fsynced: number
  lost: string[]
  torn: string[]
  /** Versions fsynced in all. */
  versions: number
}

/**
 * Reads the journal and each file through `read`: a file whose last fsynced version is H must
 * hold H or a version it started writing after H (complete); missing is lost, other content torn.
 */
export function checkStorm(journal: string, read: (name: string) => Buffer | null): StormCheck {
  const lines = fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8').split('\n') : []
  const synced = new Map<string, string>()
  const later = new Map<string, Set<string>>()
  let versions = 0
  for (const l of lines) {
    const [kind, name, hash] = l.split(' ')
    if (!name || !hash) continue
    if (kind === 'I') {
      if (!later.has(name)) later.set(name, new Set())
      later.get(name)!.add(hash)
    } else if (kind === 'S') {
      synced.set(name, hash)
      later.set(name, new Set())
      versions++
    }
  }
  const lost: string[] = []
  const torn: string[] = []
  for (const [name, hash] of synced) {
    const data = read(name)
    if (data === null) {
      lost.push(name)
      continue
    }
    const got = crypto.createHash('sha256').update(data).digest('hex')
    if (got !== hash && !later.get(name)?.has(got)) torn.push(`${name} (${data.length} bytes)`)
  }
  return { fsynced: synced.size, lost, torn, versions }
}

/** Reads a file from a mount (from this process: the mount belongs to another one). */
export function readFrom(dir: string): (name: string) => Buffer | null {
  return (name) => {
    try {
      return fs.readFileSync(path.join(dir, name))
    } catch {
      return null
    }
  }
}

/** Whether `dir` is a mount point now. */
export function isMounted(dir: string): boolean {
  try {
    execFileSync('mountpoint', ['-q', dir])
    return true
  } catch {
    return false
  }
}
