// The mount's write path: small writes gathered in the spool, commits of many closed files
// sealed in batches, attributes set while a commit is pending, all landing byte-exact in the
// volume. Driven through child processes only (a synchronous fs call from this process on
// its own mount would deadlock).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import { toFileRef } from '../src/volume/volume.js'
import { VolumeMount } from '../src/mount/index.js'
import { tempDir } from './helpers.js'

const run = promisify(execFile)
const haveFuse = fs.existsSync('/dev/fuse')

async function sh(script: string): Promise<string> {
  return (await run('bash', ['-euo', 'pipefail', '-c', script], { maxBuffer: 64 << 20 })).stdout
}

/** Builds the same tree with the same shell commands in `dir`. */
function makeTree(dir: string): string {
  return `
    d=${JSON.stringify(dir)}
    mkdir -p "$d/small/a" "$d/small/b"
    for i in $(seq 1 300); do head -c $(( (i * 137) % 9000 )) /work/.seed > "$d/small/$(( i % 2 == 0 ))$i" 2>/dev/null || true; done
    for i in $(seq 1 40); do printf 'file %d\\n' $i > "$d/small/a/f$i"; done
    : > "$d/empty"
    dd if=/work/.seed of="$d/small-writes" bs=4k count=700 status=none
    dd if=/work/.seed of="$d/big-writes" bs=1M count=3 status=none
    truncate -s 5M "$d/sparse"; printf 'tail' | dd of="$d/sparse" bs=1 seek=$((5 * 1024 * 1024 - 4)) conv=notrunc status=none
    printf 'mode and time' > "$d/attrs"; chmod 600 "$d/attrs"; touch -d '2020-01-02 03:04:05' "$d/attrs"
  `
}

test('files written through the mount (small writes, many small files, empty, sparse, attributes while committing) land byte-exact', { skip: haveFuse ? false : 'no /dev/fuse' }, async () => {
  const { dir, cleanup } = tempDir('bazil-fuse-write-')
  const data = path.join(dir, 'data')
  const seed = path.join(dir, 'seed')
  await sh(`head -c $((4 * 1024 * 1024)) /dev/urandom > ${JSON.stringify(seed)}`)
  const script = (d: string) => makeTree(d).replaceAll('/work/.seed', seed)
  let node = await Node.open(DataDir.create(data))
  const mnt = path.join(dir, 'mnt')
  fs.mkdirSync(mnt)
  try {
    const vol = await node.createVolume('v', 'default')
    const mount = new VolumeMount(vol, mnt, { spoolDir: path.join(dir, 'spool') })
    await mount.mount()
    try {
      await sh(script(mnt))
      await sh(script(path.join(dir, 'native')))
      await mount.idle()
      const sums = async (d: string) => sh(`cd ${JSON.stringify(d)} && find . -type f -print0 | sort -z | xargs -0 sha256sum && find . -name .snap -prune -o \\( -type d -printf '%y %m %p\\n' \\) -o -printf '%y %m %s %p\\n' | sort`)
      assert.equal(await sums(mnt), await sums(path.join(dir, 'native')))
      const attrs = vol.tree.stat('/attrs')
      assert.equal(attrs.mode, 0o600)
      assert.equal(attrs.mtime, new Date('2020-01-02T03:04:05').getTime())
    } finally {
      await mount.unmount()
    }
    await node.close()
    // Reopened from the log: every file's content reads back from the store.
    node = await Node.open(DataDir.open(data))
    const again = await node.volume('v')
    for (const st of again.tree.walk('/')) {
      if (st.kind !== 'file') continue
      const parts: Buffer[] = []
      for await (const p of again.cas.readFile(toFileRef(st.content!), st.path)) parts.push(p)
      assert.ok(Buffer.concat(parts).equals(fs.readFileSync(path.join(dir, 'native', st.path))), st.path)
    }
    assert.equal(again.tree.stat('/attrs').mode, 0o600)
  } finally {
    await node.close()
    cleanup()
  }
})
