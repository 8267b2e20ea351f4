// What answering xattr requests costs the mount (issue 13): with getxattr implemented the kernel
// asks it for `security.capability` before writes and `ls -l` asks `security.selinux` of every
// file (before, libfuse answered ENOSYS and the kernel stopped asking). Same run, same machine:
// run this file from a build with xattrs and from one without (BENCH_XATTR_LABEL names it).
// Prints: small writes (4 KiB each, one write(2) apiece) into one file, MiB/s; `ls -l` of a
// 2,000-file directory, ms; creating 2,000 files with one user.* attribute each (with xattrs only).
import { MountedVolume, sh } from '../test/posix-helpers.js'

const label = process.env.BENCH_XATTR_LABEL ?? 'this build'
const m = await MountedVolume.open('bazil-bench-xattr-')
try {
  const py = (s: string): Promise<string> => sh(m.mnt, `python3 - <<'PYEOF'\nimport os, time\n${s}\nPYEOF`)
  const out: Record<string, string> = {}
  out.writes = (await py(`
fd = os.open('big', os.O_WRONLY | os.O_CREAT, 0o644)
b = b'x' * 4096
t = time.time()
for i in range(5120):
    os.write(fd, b)
os.close(fd)
print('%.1f MiB/s' % (20 / (time.time() - t)))
`)).trim()
  await py(`
os.mkdir('d')
for i in range(2000):
    open('d/f%d' % i, 'w').close()
`)
  await m.mount.idle()
  const ls: number[] = []
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 1100)) // past the kernel's 1 s attribute cache
    const t = performance.now()
    await sh(m.mnt, 'ls -l d >/dev/null')
    ls.push(performance.now() - t)
  }
  out['ls -l 2k'] = ls.map((x) => `${x.toFixed(0)} ms`).join(', ')
  out['2k creates + setxattr'] = (await py(`
os.mkdir('x')
t = time.time()
n = 'unsupported'
for i in range(2000):
    open('x/f%d' % i, 'w').close()
    try:
        os.setxattr('x/f%d' % i, 'user.tag', b'v%d' % i)
        n = 'with xattrs'
    except OSError:
        pass
print('%.0f files/s (%s)' % (2000 / (time.time() - t), n))
`)).trim()
  console.log(`${label}: ${JSON.stringify(out)}`)
} finally {
  await m.close()
}
