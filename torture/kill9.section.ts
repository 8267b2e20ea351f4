// kill -9 of the server during a write storm through its FUSE mount, N rounds: after each
// restart (which remounts and recovers the spool), every fsynced file holds its fsynced
// content (or a complete later version), and `bazil log verify` is clean.
//
// Env: BAZIL_TORTURE_ROUNDS (default 8) rounds; BAZIL_TORTURE_KILL_MS (default 2500): the
// storm runs a random time up to this before the kill.
import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { bazil, startServer, type ServerProcess } from '../test/helpers.js'
import { envInt, type Section, type SectionResult, type TortureEnv } from './section.js'
import { checkStorm, isMounted, readFrom, startStorm } from './storm.js'


async function waitMounted(dir: string, ms = 20_000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (isMounted(dir)) {
      try {
        fs.readdirSync(dir)
        return true
      } catch {
        // dead mount not cleaned yet
      }
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}

const section: Section = {
  name: 'kill9',
  async run(env: TortureEnv): Promise<SectionResult> {
    const rounds = envInt('BAZIL_TORTURE_ROUNDS', 8)
    const killMs = envInt('BAZIL_TORTURE_KILL_MS', 2500)
    const failures: string[] = []
    if (!fs.existsSync('/dev/fuse')) return { rounds: 0, failures: ['/dev/fuse is missing: cannot run'], figures: {} }
    const data = path.join(env.tmpDir, 'data')
    const mnt = path.join(env.tmpDir, 'mnt')
    fs.mkdirSync(mnt)
    const journal = path.join(env.tmpDir, 'journal')
    await bazil(data, ['create'])
    await bazil(data, ['volume', 'create', 'v'])
    let server: ServerProcess | null = await startServer(data)
    let versions = 0
    let restartMs = 0
    let checked = 0
    try {
      const m = await bazil(data, ['volume', 'mount', 'v', mnt])
      if (m.code !== 0) throw new Error(`mount failed: ${m.stderr}`)
      for (let round = 1; round <= rounds; round++) {
        const storm = startStorm(mnt, journal, `r${round}`, round * 7919)
        await new Promise((r) => setTimeout(r, 300 + Math.floor(Math.random() * killMs)))
        await server.stop('SIGKILL')
        server = null
        const stopped = await Promise.race([storm.done, new Promise<string>((r) => setTimeout(() => r('(still running)'), 20_000))])
        if (stopped === '(still running)') storm.child.kill('SIGKILL')
        const t0 = Date.now()
        server = await startServer(data)
        if (!(await waitMounted(mnt))) {
          failures.push(`round ${round}: the mount was not restored after restart:\n${server.log().slice(-2000)}`)
          break
        }
        restartMs += Date.now() - t0
        const c = checkStorm(journal, readFrom(mnt))
        checked = c.fsynced
        versions = c.versions
        if (c.lost.length > 0) failures.push(`round ${round}: ${c.lost.length} fsynced file(s) lost: ${c.lost.slice(0, 5).join(', ')}`)
        if (c.torn.length > 0) failures.push(`round ${round}: ${c.torn.length} fsynced file(s) torn: ${c.torn.slice(0, 5).join(', ')}`)
        const v = await bazil(data, ['log', 'verify', 'v'])
        if (v.code !== 0) failures.push(`round ${round}: log verify: ${v.stdout}${v.stderr}`)
        env.log(`round ${round}: killed after the storm's "${stopped.split('\n').pop()}"; ${c.fsynced} fsynced files checked, ${c.lost.length} lost, ${c.torn.length} torn; ${v.stdout.trim()}`)
      }
    } finally {
      if (server) {
        await bazil(data, ['volume', 'unmount', mnt]).catch(() => null)
        await server.stop('SIGTERM')
      }
      if (isMounted(mnt)) execFileSync('umount', ['-l', mnt])
    }
    return {
      rounds,
      failures,
      figures: { fsynced_versions: versions, files_checked: checked, restart_ms_avg: Math.round(restartMs / Math.max(1, rounds)) },
    }
  },
}

export default section
