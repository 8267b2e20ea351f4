// The FUSE mount, driven only through child processes (a synchronous fs call from this
// process on its own mount would deadlock: every op is answered on this thread).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { toFileRef } from '../src/volume/volume.js'
import { VolumeMount, recoverSpool } from '../src/mount/index.js'
import { repoRoot, tempDir } from './helpers.js'

const run = promisify(execFile)
/**
 * libfuse 2.9 drops mtime-only changes (touch -m, tar x, which pass atime UTIME_OMIT) unless
 * the file system sets flag_utime_omit_ok, which fuse-native 2.2.6 does not.
 */
const haveFuse = fs.existsSync('/dev/fuse')
if (!haveFuse) console.warn('fuse.test: /dev/fuse is missing: SKIPPING every FUSE mount test')

/** Runs a bash script in `dir` (never `cwd:` into the mount: spawn's chdir would deadlock). */
async function sh(dir: string, script: string): Promise<string> {
  try {
    const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', `cd ${JSON.stringify(dir)}\n${script}`], { maxBuffer: 64 << 20 })
    return stdout
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string }
    throw new Error(`script failed in ${dir}: ${e.message}\nstdout: ${e.stdout}\nstderr: ${e.stderr}`)
  }
}

/** One line per entry: type, mode, size, path, and sha256 or link target (and mtime when asked). */
async function listing(dir: string, withMtime = false): Promise<string> {
  const t = withMtime ? ' %TY-%Tm-%Td_%TH:%TM:%TS' : ''
  const meta = await sh(dir, `find . -mindepth 1 \\( -name .snap -prune \\) -o \\( -type d -printf '%y %m${t} %p\\n' \\) -o \\( -type l -printf '%y${t} %p -> %l\\n' \\) -o -printf '%y %m %s${t} %p\\n'`)
  const sums = await sh(dir, `find . -mindepth 1 \\( -name .snap -prune \\) -o -type f -print0 | xargs -0 -r sha256sum`)
  const hashOf = new Map(sums.split('\n').filter(Boolean).map((l) => [l.slice(66), l.slice(0, 64)]))
  return meta.split('\n').filter(Boolean).map((l) => (l.startsWith('f ') ? `${l} ${hashOf.get(l.slice(l.indexOf(' ./') + 1))}` : l)).sort().join('\n')
}

interface Env {
  root: string
  node: Node
  vol: Volume
  mount: VolumeMount
  mnt: string
  logs: string[]
}

async function setup(root: string, create = true): Promise<Env> {
  const dataDir = path.join(root, 'data')
  const node = await Node.open(create ? DataDir.create(dataDir) : DataDir.open(dataDir))
  const vol = create ? await node.createVolume('v', 'default') : await node.volume('v')
  const mnt = path.join(root, 'mnt')
  fs.mkdirSync(mnt, { recursive: true })
  const logs: string[] = []
  const mount = new VolumeMount(vol, mnt, {
    spoolDir: path.join(root, 'spool'),
    readTimeoutMs: 2000,
    log: (level, msg) => {
      logs.push(`${level} ${msg}`)
      if (level === 'error' && !msg.includes('not held locally')) console.error(`[mount] ${msg}`)
    },
  })
  await mount.mount()
  return { root, node, vol, mount, mnt, logs }
}

async function teardown(env: Env): Promise<void> {
  await env.mount.unmount()
  await env.node.close()
}

/** A tree of mixed files on the native disk. */
async function makeMixedTree(dir: string): Promise<void> {
  await sh(path.dirname(dir), `
    mkdir -p ${dir}/a/b/c ${dir}/empty-dir ${dir}/d
    : > ${dir}/zero
    printf x > ${dir}/one
    head -c 100000 /dev/urandom > ${dir}/a/hundredk
    head -c 3000000 /dev/urandom > ${dir}/a/b/threemeg
    seq 1 20000 > ${dir}/a/b/c/numbers.txt
    for i in $(seq 1 40); do echo "file $i" > ${dir}/d/f$i; done
    ln -s ../one ${dir}/a/link-to-one
    ln -s dangling ${dir}/d/dangling
    chmod 755 ${dir}/a/hundredk
    chmod 600 ${dir}/one`)
}

describe('FUSE mount', { skip: !haveFuse }, () => {
  let tmp: { dir: string; cleanup: () => void }
  let env: Env

  before(async () => {
    tmp = tempDir('bazil-fuse-')
    env = await setup(tmp.dir)
  })

  after(async () => {
    if (env) await teardown(env).catch((err: Error) => console.error(`teardown: ${err.message}`))
    tmp?.cleanup()
  })

  test('cp -r of a mixed tree in and back out keeps every byte, mode and link', async () => {
    const src = path.join(tmp.dir, 'mixed')
    await makeMixedTree(src)
    await sh(tmp.dir, `cp -r mixed ${env.mnt}/mixed && cp -r ${env.mnt}/mixed back`)
    const want = await listing(src)
    assert.equal(await listing(path.join(env.mnt, 'mixed')), want)
    assert.equal(await listing(path.join(tmp.dir, 'back')), want)
    // Committed on release: readable through the volume itself (`bazil volume cat`).
    await env.mount.idle()
    const st = env.vol.tree.stat('/mixed/a/b/threemeg')
    const chunks: Buffer[] = []
    for await (const c of env.vol.cas.readFile(toFileRef(st.content!))) chunks.push(c)
    assert.ok(Buffer.concat(chunks).equals(fs.readFileSync(path.join(src, 'a/b/threemeg'))))
  })

  test('shell operations give the same result as on the native disk', async () => {
    const script = `
      mkdir -p deep/1/2/3/4/5/6/7/8/9/10 other/place
      echo leaf > deep/1/2/3/4/5/6/7/8/9/10/leaf
      mv deep/1/2/3 other/place/
      mv other/place/3/4/5 deep/1/
      mkdir -p gone/x/y && touch gone/x/y/z gone/x/w && rm -r gone
      echo target > t && ln -s t link && ln -s /nowhere abs-link
      cat link > via-link
      chmod 751 t && chmod 600 via-link
      touch -d '2011-12-13 14:15:16' t && touch -d '1999-01-02 03:04:05' deep
      echo one > app && echo two >> app && printf three >> app
      head -c 300000 "$R" > tr && cp tr tr-ref
      truncate -s 100000 tr && truncate -s 500000 tr && truncate -s 70001 tr-ref
      dd if="$R" of=sparse bs=4096 count=2 skip=3 seek=300 status=none
      dd if="$R" of=tr-ref bs=1000 count=3 seek=7 conv=notrunc status=none
      printf 'abc' | dd of=sparse bs=1 seek=5 conv=notrunc status=none
      mv app app2 && mv app2 deep/1/app3
      mkdir -p rd/a rd/b && echo 1 > rd/a/f && mv rd/a rd/b/ && mv rd/b rd-moved
      echo 1 > old && echo 2 > new && mv new old
      mkdir -p d1/sub d2 && mv d1/sub d2/ && rmdir d1`
    const native = path.join(tmp.dir, 'native-ops')
    const inMount = path.join(env.mnt, 'ops')
    fs.mkdirSync(native)
    const rand = path.join(tmp.dir, 'random.bin')
    await sh(tmp.dir, `head -c 1000000 /dev/urandom > ${rand}`)
    await sh(env.mnt, 'mkdir ops')
    await sh(native, `R=${rand}\n${script}`)
    await sh(inMount, `R=${rand}\n${script}`)
    assert.equal(await listing(inMount), await listing(native))
    assert.equal(await sh(inMount, `stat -c '%n %Y' t deep`), await sh(native, `stat -c '%n %Y' t deep`))
    // truncate down then up: the tail is zeros; sparse: zeros then the written blocks.
    assert.equal(await sh(inMount, `cmp <(head -c 100000 tr) <(head -c 100000 "${rand}") && tail -c 400000 tr | tr -d '\\0' | wc -c`), '0\n')
    assert.equal(await sh(inMount, `head -c 5 sparse | tr -d '\\0' | wc -c; head -c 8 sparse | tail -c 3`), '0\nabc')
  })

  test('git init, add, commit; status is clean afterwards', async () => {
    const out = await sh(env.mnt, `
      mkdir repo && cd repo
      git init -q -b main .
      git config user.email t@example.com && git config user.name T
      mkdir -p src/lib && for i in $(seq 1 30); do echo "line $i" > src/lib/f$i.txt; done
      echo '# readme' > README.md && ln -s README.md readme-link && chmod +x src/lib/f1.txt
      git add -A && git commit -q -m first
      echo change >> README.md && git commit -q -am second && git mv src/lib src/lib2 && git commit -q -m third
      git gc -q
      git status --porcelain
      git log --oneline | wc -l
      git fsck --no-progress 2>&1 | grep -v '^dangling' || true`)
    assert.equal(out.trim(), '3')
  })

  test('tar x of a few thousand files, then tar c gives back the same tree', async () => {
    const src = path.join(tmp.dir, 'tarsrc')
    await sh(tmp.dir, `
      mkdir -p tarsrc && cd tarsrc
      for d in $(seq 1 20); do mkdir -p d$d/sub; for f in $(seq 1 100); do echo "$d $f" > d$d/f$f; done; head -c 20000 /dev/urandom > d$d/sub/bin; done
      ln -s d1/f1 top-link && chmod 700 d3 && touch -d '2020-02-02 02:02:02' d1/f1
      cd .. && tar cf tarsrc.tar -C tarsrc .`)
    const t0 = Date.now()
    await sh(tmp.dir, `mkdir ${env.mnt}/tarx && tar xf tarsrc.tar -C ${env.mnt}/tarx`)
    const extractMs = Date.now() - t0
    await sh(tmp.dir, `mkdir tarback && tar cf - -C ${env.mnt}/tarx . | tar xf - -C tarback`)
    // Without mtimes: libfuse 2.9 drops mtime-only setattr (tar x sets atime UTIME_OMIT).
    assert.equal(await listing(path.join(env.mnt, 'tarx')), await listing(src))
    assert.equal(await listing(path.join(tmp.dir, 'tarback')), await listing(src))
    console.log(`# tar x of 2041 entries into the mount: ${extractMs} ms`)
  })

  test('mtime-only changes: touch -m, tar x', async () => {
    const out = await sh(env.mnt, `
      mkdir mt && cd mt && echo x > f && touch -m -d '2005-05-05 05:05:05' f && stat -c %Y f
      touch -a -d '2006-06-06' f && stat -c %Y f
      mkdir -p ../mtsrc && echo y > ../mtsrc/g && touch -d '2007-07-07 07:07:07' ../mtsrc/g && tar cf - -C ../mtsrc . | tar xf - && stat -c %Y g`)
    assert.equal(out, '1115269505\n1115269505\n1183792027\n')
  })

  test('errno table', async () => {
    await sh(env.mnt, `mkdir -p errs/dir/sub errs/empty && echo f > errs/file && mkdir -p .snap/errsnap || true`)
    const py = `
import os, errno, sys
def code(fn):
    try:
        fn()
        return 'OK'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
cases = [
  ('stat missing', lambda: os.stat('missing')),
  ('open missing', lambda: open('missing')),
  ('mkdir existing', lambda: os.mkdir('dir')),
  ('open O_EXCL existing', lambda: os.open('file', os.O_CREAT | os.O_EXCL | os.O_WRONLY)),
  ('mkdir under a file', lambda: os.mkdir('file/x')),
  ('open dir for write', lambda: os.open('dir', os.O_WRONLY)),
  ('unlink a dir', lambda: os.unlink('dir')),
  ('rmdir a file', lambda: os.rmdir('file')),
  ('rmdir non-empty', lambda: os.rmdir('dir')),
  ('rename dir onto non-empty dir', lambda: os.rename('empty', 'dir')),
  ('rename dir into itself', lambda: os.rename('dir', 'dir/sub/x')),
  ('rename file onto dir', lambda: os.rename('file', 'dir')),
  ('rename dir onto file', lambda: os.rename('empty', 'file')),
  ('readlink a file', lambda: os.readlink('file')),
  ('hard link', lambda: os.link('file', 'hard')),
  ('mknod fifo twice', lambda: (os.mkfifo('fifo'), os.mkfifo('fifo'))),
  ('setxattr', lambda: os.setxattr('file', 'user.x', b'1')),
  ('getxattr', lambda: os.getxattr('file', 'user.x')),
  ('long name', lambda: open('x' * 300, 'w')),
  ('write in snapshot', lambda: open('../.snap/errsnap/errs/file', 'w')),
  ('create in snapshot', lambda: open('../.snap/errsnap/new', 'w')),
  ('mkdir in snapshot', lambda: os.mkdir('../.snap/errsnap/newdir')),
  ('unlink in snapshot', lambda: os.unlink('../.snap/errsnap/errs/file')),
  ('snapshot twice', lambda: os.mkdir('../.snap/errsnap')),
]
for name, fn in cases:
    print(name + ': ' + code(fn))
`
    const out = await run('python3', ['-c', `import os; os.chdir(${JSON.stringify(path.join(env.mnt, 'errs'))})\n${py}`])
    const got = Object.fromEntries(out.stdout.trim().split('\n').map((l) => l.split(': ')))
    const want: Record<string, string> = {
      'stat missing': 'ENOENT',
      'open missing': 'ENOENT',
      'mkdir existing': 'EEXIST',
      'open O_EXCL existing': 'EEXIST',
      'mkdir under a file': 'ENOTDIR',
      'open dir for write': 'EISDIR',
      'unlink a dir': 'EISDIR',
      'rmdir a file': 'ENOTDIR',
      'rmdir non-empty': 'ENOTEMPTY',
      'rename dir onto non-empty dir': 'ENOTEMPTY',
      'rename dir into itself': 'EINVAL',
      'rename file onto dir': 'EISDIR',
      'rename dir onto file': 'ENOTDIR',
      'readlink a file': 'EINVAL',
      'hard link': 'OK',
      'mknod fifo twice': 'EEXIST', // fifos are nodes since issue 13 (test/posix-special)
      'setxattr': 'OK', // extended attributes: test/posix-xattrs
      'getxattr': 'OK',
      'long name': 'ENAMETOOLONG',
      'write in snapshot': 'EROFS',
      'create in snapshot': 'EROFS',
      'mkdir in snapshot': 'EROFS',
      'unlink in snapshot': 'EROFS',
      'snapshot twice': 'EEXIST',
    }
    assert.deepEqual(got, want)
  })

  test('.snap: mkdir takes a snapshot, ls lists them, content is frozen', async () => {
    const out = await sh(env.mnt, `
      mkdir snaptest && echo v1 > snaptest/f
      mkdir .snap/before
      echo v2 > snaptest/f && echo new > snaptest/g
      ls .snap | grep -x before
      cat .snap/before/snaptest/f
      ls .snap/before/snaptest
      cat snaptest/f`)
    assert.equal(out, 'before\nv1\nf\nv2\n')
    assert.ok(env.vol.tree.snapshots().some((s) => s.name === 'before'))
  })

  test('open files: readers see unflushed writes; a file unlinked or renamed while open behaves', async () => {
    const py = `
import os
w = open('live', 'w'); w.write('hello'); w.flush()
print(open('live').read())
os.rename('live', 'moved')
w.write(' world'); w.flush()
print(open('moved').read())
os.fsync(w.fileno())
w.close()
d = open('doomed', 'w'); d.write('bye'); d.flush()
os.unlink('doomed')
d.write(' still writable'); d.flush()
d.seek(0)
print(os.path.exists('doomed'), os.fstat(d.fileno()).st_size, sorted(x for x in os.listdir('.') if not x.startswith('.fuse')))
r = open('moved'); os.unlink('moved'); print(r.read()); r.close()
d.close()
`
    await sh(env.mnt, 'mkdir openfiles')
    const out = await run('python3', ['-c', `import os; os.chdir(${JSON.stringify(path.join(env.mnt, 'openfiles'))})\n${py}`])
    assert.equal(out.stdout, "hello\nhello world\nFalse 18 ['moved']\nhello world\n")
    await env.mount.idle()
    assert.deepEqual(env.vol.tree.readdir('/openfiles').map((s) => s.name), [])
    assert.deepEqual(await sh(env.mnt, 'ls -A openfiles'), '')
  })

  test('a random write into the middle of a large file stores only the changed chunks', async () => {
    await sh(env.mnt, `head -c 20000000 /dev/urandom > bigfile`)
    await env.mount.idle()
    const before = await env.node.chunks.stats()
    await sh(env.mnt, `printf 'patched' | dd of=bigfile bs=1 seek=10000000 conv=notrunc status=none`)
    await env.mount.idle()
    const after = await env.node.chunks.stats()
    const added = after.bytes - before.bytes
    assert.ok(added < 1_000_000, `a 7-byte patch added ${added} bytes to the store`)
    assert.equal(await sh(env.mnt, `dd if=bigfile bs=1 skip=10000000 count=7 status=none`), 'patched')
    assert.equal(env.vol.tree.stat('/bigfile').size, 20_000_000)
  })

  test('writing a big file grows the mounting process by a small constant (the spool is on disk)', async () => {
    // Settle allocator pools with a first write, then measure a second one, up to its close
    // (the commit that follows is the content store's work, measured by the benchmark).
    await sh(env.mnt, 'head -c 16000000 /dev/zero > warm')
    await env.mount.idle()
    const before = process.memoryUsage().rss
    let peak = before
    const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 20)
    await sh(env.mnt, 'dd if=/dev/zero of=huge bs=1M count=300 status=none')
    clearInterval(sampler)
    assert.ok(peak - before < 48 * 1024 * 1024, `RSS grew ${((peak - before) / 1048576).toFixed(0)} MiB while writing 300 MiB`)
    await sh(env.mnt, 'rm huge warm')
  })

  test('changes made through the volume appear in the mount without remounting', async () => {
    await sh(env.mnt, 'ls >/dev/null; test ! -e from-cli')
    await env.vol.writeFile('/from-cli', Buffer.from('imported\n'))
    env.vol.mkdir('/cli-dir')
    await env.vol.flush()
    let out = ''
    for (let i = 0; i < 30 && out !== 'imported\n'; i++) {
      out = await sh(env.mnt, 'cat from-cli 2>/dev/null || true')
      if (out !== 'imported\n') await new Promise((r) => setTimeout(r, 100))
    }
    assert.equal(out, 'imported\n')
    assert.equal(await sh(env.mnt, 'test -d cli-dir && echo yes'), 'yes\n')
  })

  test('content that is not held locally fails with EIO and a log line, not a hang', async () => {
    const fake = { hash: Buffer.alloc(32, 7), size: 1000 }
    env.vol.mutate((t) => t.writeFile('/not-here', { hash: fake.hash.toString('hex'), size: fake.size }), () => ({ op: 'write', path: '/not-here' }))
    const t0 = Date.now()
    const out = await sh(env.mnt, 'cat not-here 2>&1 || true')
    assert.match(out, /Input\/output error/)
    assert.ok(Date.now() - t0 < 10_000)
    assert.ok(env.logs.some((l) => l.startsWith('error') && l.includes('not-here')), 'a log line names the file')
    env.vol.unlink('/not-here')
  })

  test('fsynced data is recovered from the spool after a crash', async () => {
    // The crash itself: the spool of an fsynced file whose commit never happened.
    const st = await env.vol.writeFile('/recover-me', Buffer.from('old'))
    await env.vol.flush()
    const spool = path.join(tmp.dir, 'crash-spool')
    fs.mkdirSync(spool)
    const name = `${env.vol.id.toString('hex').slice(0, 16)}-aaaa`
    fs.writeFileSync(path.join(spool, name + '.data'), 'fsynced new content')
    fs.writeFileSync(path.join(spool, name + '.json'), JSON.stringify({ version: 1, volume: env.vol.id.toString('hex'), node: st.id, path: '/recover-me', size: 19, mtime: 1_600_000_000_000, fsynced: true, time: Date.now() }))
    fs.writeFileSync(path.join(spool, `${env.vol.id.toString('hex').slice(0, 16)}-bbbb.data`), 'never fsynced')
    const { recovered } = await recoverSpool(env.vol, spool)
    assert.deepEqual(recovered, ['/recover-me'])
    assert.deepEqual(fs.readdirSync(spool), [])
    assert.equal(await sh(env.mnt, 'cat recover-me'), 'fsynced new content')
    assert.equal(env.vol.tree.stat('/recover-me').mtime, 1_600_000_000_000)
  })

  test('unmount, then a new Volume on the same data dir mounted again: all there', async () => {
    const want = await listing(env.mnt, true)
    await teardown(env)
    env = await setup(tmp.dir, false)
    assert.equal(await listing(env.mnt, true), want)
    assert.equal(await sh(env.mnt, 'ls .snap | grep -c -x -e before -e errsnap'), '2\n')
  })
})

describe('FUSE mount crash', { skip: !haveFuse }, () => {
  test('kill -9 of the mounting process after an fsync: the data is there after restart', async () => {
    const tmp = tempDir('bazil-fuse-crash-')
    try {
      const fromTs = import.meta.url.endsWith('.ts')
      const srcRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), fromTs ? '../src' : '../src')
      const ext = fromTs ? 'ts' : 'js'
      const victim = path.join(tmp.dir, `victim.${fromTs ? 'mts' : 'mjs'}`)
      fs.writeFileSync(victim, `
        import path from 'node:path'
        import fs from 'node:fs'
        import { DataDir } from ${JSON.stringify(path.join(srcRoot, `datadir.${ext}`))}
        import { Node } from ${JSON.stringify(path.join(srcRoot, `node.${ext}`))}
        import { VolumeMount } from ${JSON.stringify(path.join(srcRoot, `mount/index.${ext}`))}
        const root = ${JSON.stringify(tmp.dir)}
        const node = await Node.open(DataDir.create(path.join(root, 'data')))
        const vol = await node.createVolume('v', 'default')
        fs.mkdirSync(path.join(root, 'mnt'))
        const m = new VolumeMount(vol, path.join(root, 'mnt'), { spoolDir: path.join(root, 'spool') })
        await m.mount()
        process.stdout.write('mounted\\n')
        setInterval(() => {}, 1000)
      `)
      const child = spawn(process.execPath, [...(fromTs ? ['--import', 'tsx'] : []), victim], { stdio: ['ignore', 'pipe', 'inherit'] })
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('mounted')) resolve() })
        child.on('exit', (code) => reject(new Error(`victim exited with ${code}`)))
      })
      const mnt = path.join(tmp.dir, 'mnt')
      const exited = new Promise((r) => child.once('exit', r))
      await run('python3', ['-c', `
import os
f = open(${JSON.stringify(path.join(mnt, 'durable'))}, 'w'); f.write('fsynced bytes'); f.flush(); os.fsync(f.fileno())
g = open(${JSON.stringify(path.join(mnt, 'partial'))}, 'w'); g.write('x' * 100000); g.flush(); os.fsync(g.fileno()); g.write('y' * 10); g.flush()
import sys; sys.stdout.flush(); os.kill(${child.pid}, 9)
`])
      await exited
      const dead = await fsp.stat(mnt).then(() => 'alive', (e: NodeJS.ErrnoException) => e.code)
      assert.equal(dead, 'ENOTCONN')

      const node = await Node.open(DataDir.open(path.join(tmp.dir, 'data')))
      const vol = await node.volume('v')
      const m = new VolumeMount(vol, mnt, { spoolDir: path.join(tmp.dir, 'spool') })
      try {
        await recoverSpool(vol, path.join(tmp.dir, 'spool'))
        await m.mount() // recovers the dead mount first
        assert.equal(await sh(mnt, 'cat durable'), 'fsynced bytes')
        const partial = await sh(mnt, 'head -c 100000 partial | tr -d x | wc -c')
        assert.equal(partial, '0\n')
      } finally {
        await m.unmount()
        await node.close()
      }
    } finally {
      tmp.cleanup()
    }
  })
})
