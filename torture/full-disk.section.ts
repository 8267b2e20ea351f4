// A data dir on a small file system (a tmpfs) that fills up, during an import and during
// writes through the mount: each round must give a clear error (the space guard's ENOSPC,
// never RocksDB's "Batch was not applied"), lose nothing committed before, keep reads
// working while full (export, reads through the mount, `log verify`), and work again once
// the filler is deleted, also across a restart of the server.
//
// Env: BAZIL_TORTURE_FULL_ROUNDS (default 2) rounds, each on a fresh file system of
// BAZIL_TORTURE_DISK_MIB (default 64) MiB holding an 8 MiB filler.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { bazil, startServer, type ServerProcess } from '../test/helpers.js'
import { mountTmpfs, smallFsUnavailable, writeRandomFiles } from '../test/small-fs.js'
import { envInt, type Section, type SectionResult, type TortureEnv } from './section.js'
import { checkStorm, isMounted, readFrom, startStorm } from './storm.js'

const FILLER_MIB = 8
/** Any one step that takes longer is a hang: reported, and the round is torn down. */
const STEP_MS = 120_000

function within<T>(p: Promise<T>, what: string, ms = STEP_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s (hang)`)), ms) })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}
const CLEAR_ERROR = /the disk holding .* is full: .* MiB free.*free some space/


/** Exports the volume to `dest` (reads) and returns the files whose content differs from `want` or is missing. */
async function exportAndCompare(data: string, dest: string, want: Map<string, string>): Promise<{ error: string | null; bad: string[] }> {
  fs.rmSync(dest, { recursive: true, force: true })
  const r = await bazil(data, ['volume', 'export', 'v', dest])
  if (r.code !== 0) return { error: r.stderr.trim(), bad: [] }
  const bad: string[] = []
  for (const [rel, sum] of want) {
    const f = path.join(dest, rel)
    const got = fs.existsSync(f) ? crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex') : null
    if (got !== sum) bad.push(rel)
  }
  fs.rmSync(dest, { recursive: true, force: true })
  return { error: null, bad }
}


const section: Section = {
  name: 'full-disk',
  async run(env: TortureEnv): Promise<SectionResult> {
    const rounds = envInt('BAZIL_TORTURE_FULL_ROUNDS', 2)
    const diskMiB = envInt('BAZIL_TORTURE_DISK_MIB', 64)
    const why = smallFsUnavailable('tmpfs')
    if (why) return { rounds: 0, failures: [`cannot make a small file system here (${why}): SKIPPED`], figures: {} }
    const failures: string[] = []
    const figures: Record<string, number | string> = {}
    let importedMiB = 0
    let fsyncedBeforeFull = 0
    for (let round = 1; round <= rounds; round++) {
      const fail = (msg: string): void => { failures.push(`round ${round}: ${msg}`) }
      const disk = await mountTmpfs(path.join(env.tmpDir, `disk${round}`), diskMiB)
      const mnt = path.join(env.tmpDir, `mnt${round}`)
      fs.mkdirSync(mnt, { recursive: true })
      let server: ServerProcess | null = null
      try {
        const filler = path.join(disk.dir, 'filler')
        fs.writeFileSync(filler, crypto.randomBytes(FILLER_MIB << 20))
        const data = path.join(disk.dir, 'data')
        await bazil(data, ['create'])
        await bazil(data, ['volume', 'create', 'v'])

        // 1. Imports of 2 MiB batches until the disk is full.
        const want = new Map<string, string>()
        let batch = 0
        let fullError = ''
        for (; batch < 200; batch++) {
          const src = path.join(env.tmpDir, `src${round}-${batch}`)
          const sums = writeRandomFiles(src, 8, 256 * 1024)
          const r = await bazil(data, ['volume', 'import', 'v', src, `--to=/b${batch}`])
          fs.rmSync(src, { recursive: true, force: true })
          if (r.code === 0) {
            for (const [f, s] of sums) want.set(`b${batch}/${f}`, s)
            continue
          }
          fullError = r.stderr.trim()
          break
        }
        importedMiB += batch * 2
        env.log(`round ${round}: ${batch} imports of 2 MiB before the disk was full: ${fullError.split('\n')[0]}`)
        if (!CLEAR_ERROR.test(fullError)) fail(`the import on a full disk did not fail with the clear error: ${fullError || '(it never failed)'}`)
        if (/Batch was not applied/.test(fullError)) fail(`RocksDB's own error reached the user: ${fullError}`)
        // Reads while full: everything committed is there.
        const whileFull = await exportAndCompare(data, path.join(env.tmpDir, 'export'), want)
        if (whileFull.error) fail(`export while the disk is full failed: ${whileFull.error}`)
        if (whileFull.bad.length > 0) fail(`${whileFull.bad.length} committed files lost or changed while full: ${whileFull.bad.slice(0, 5).join(', ')}`)
        const v1 = await bazil(data, ['log', 'verify', 'v'])
        if (v1.code !== 0) fail(`log verify while full: ${v1.stdout}${v1.stderr}`)

        // 2. Writes through the mount until the disk is full (after freeing the filler).
        fs.rmSync(filler)
        fs.writeFileSync(filler, crypto.randomBytes((FILLER_MIB / 2) << 20)) // some room, but not much
        server = await startServer(data)
        const m = await bazil(data, ['volume', 'mount', 'v', mnt])
        if (m.code !== 0) throw new Error(`mount failed: ${m.stderr}`)
        const journal = path.join(env.tmpDir, `journal${round}`)
        const storm = startStorm(mnt, journal, `w${round}`, round, 512)
        const stopped = await Promise.race([storm.done, new Promise<string>((r) => setTimeout(() => r('(still running after 120 s)'), 120_000))])
        if (stopped.startsWith('(still')) storm.child.kill('SIGKILL')
        const c1 = checkStorm(journal, readFrom(mnt))
        fsyncedBeforeFull += c1.versions
        env.log(`round ${round}: the mount's writer stopped with "${stopped}" after ${c1.versions} fsynced versions`)
        if (!/^28 /.test(stopped)) fail(`writes through the mount on a full disk did not fail with ENOSPC: ${stopped}`)
        if (c1.lost.length + c1.torn.length > 0) fail(`while full: ${c1.lost.length} fsynced files lost, ${c1.torn.length} torn`)
        if (!/the disk holding .* is full/.test(server.log())) fail('the server did not log the clear full-disk error')

        // 3. Space freed: writing works again, through the mount and the CLI, and across a restart.
        fs.rmSync(filler)
        const after = startStorm(mnt, journal, `after${round}`, round + 100, 64, 20)
        const afterEnd = await within(after.done, 'the writer after freeing space', 60_000)
        if (afterEnd !== '') fail(`writes through the mount after freeing space failed: ${afterEnd}`)
        const c2 = checkStorm(journal, readFrom(mnt))
        if (c2.versions <= c1.versions) fail('no write through the mount succeeded after space was freed')
        if (c2.lost.length + c2.torn.length > 0) fail(`after freeing: ${c2.lost.length} fsynced files lost, ${c2.torn.length} torn`)
        const late = writeRandomFiles(path.join(env.tmpDir, `late${round}`), 2, 100_000)
        const r = await within(bazil(data, ['volume', 'import', 'v', path.join(env.tmpDir, `late${round}`), '--to=/late']), 'import after freeing space')
        if (r.code !== 0) fail(`import after freeing space failed: ${r.stderr}`)
        for (const [f, s] of late) want.set(`late/${f}`, s)
        await within(bazil(data, ['volume', 'unmount', mnt]), 'volume unmount')
        if ((await within(server.stop('SIGTERM'), 'server stop (SIGTERM)')) !== 0) fail(`server did not stop cleanly:\n${server.log().slice(-1500)}`)
        server = null
        const final = await exportAndCompare(data, path.join(env.tmpDir, 'export'), want)
        if (final.error) fail(`export after freeing space failed: ${final.error}`)
        if (final.bad.length > 0) fail(`${final.bad.length} committed files lost or changed: ${final.bad.slice(0, 5).join(', ')}`)
        const v2 = await bazil(data, ['log', 'verify', 'v'])
        if (v2.code !== 0) fail(`log verify after freeing: ${v2.stdout}${v2.stderr}`)
        env.log(`round ${round}: after freeing space: ${c2.versions - c1.versions} more fsynced versions, import ok=${r.code === 0}; ${v2.stdout.trim()}`)
      } catch (err) {
        fail(`threw: ${(err as Error).message}${server ? `\nserver log (end):\n${server.log().slice(-3000)}` : ''}`)
      } finally {
        if (server) await within(server.stop('SIGTERM'), 'server stop', 20_000).catch(() => server!.stop('SIGKILL'))
        if (isMounted(mnt)) execFileSync('umount', ['-l', mnt])
        await disk.destroy()
      }
    }
    figures.disk_mib = diskMiB
    figures.imported_mib_before_full = importedMiB
    figures.fsynced_through_mount_before_full = fsyncedBeforeFull
    return { rounds, failures, figures }
  },
}

export default section
