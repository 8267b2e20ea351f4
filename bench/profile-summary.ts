// Where a process's main thread spent its time, from a V8 .cpuprofile (node --cpu-prof): self
// time by function and by package, in % of the busy (non-idle) samples; optionally only those
// of a span of time (a server's profile covers its whole life; a bench wants the part it timed:
// monotonicMicros() before and after). A native addon function (no url: V8 names them
// unreliably) is charged to the JS function that called it, marked "→ native".
import fs from 'node:fs'

interface ProfNode { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
interface Profile { nodes: ProfNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] }

export interface ProfileSummary {
  /** Busy main-thread seconds in the part summarized. */
  busySecs: number
  /** Seconds of wall time summarized. */
  wallSecs: number
  packages: string
  functions: string
}

/** A profile read: its nodes by id and by child, and each sample's time (µs; sample i stands for the time until the next one). */
function loadProfile(file: string): { prof: Profile; byId: Map<number, ProfNode>; parent: Map<number, ProfNode>; times: number[] } {
  const prof = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile
  const byId = new Map<number, ProfNode>()
  const parent = new Map<number, ProfNode>()
  for (const n of prof.nodes) {
    byId.set(n.id, n)
    for (const c of n.children ?? []) parent.set(c, n)
  }
  const times: number[] = []
  let t = prof.startTime
  for (const d of prof.timeDeltas) times.push((t += d))
  return { prof, byId, parent, times }
}

export function summarizeProfile(file: string, opts: { top?: number; span?: [number, number] } = {}): ProfileSummary {
  const top = opts.top ?? 8
  const { prof, byId, parent, times } = loadProfile(file)
  const dur = (i: number): number => (i + 1 < times.length ? times[i + 1]! - times[i]! : 0)
  const idle = (i: number): boolean => {
    const name = byId.get(prof.samples[i]!)?.callFrame.functionName
    return name === '(idle)' || name === '(root)'
  }
  // Only the samples inside the span, if given (µs of CLOCK_MONOTONIC, the clock V8 stamps
  // profiles with and process.hrtime reads: comparable across processes on one machine).
  let from = 0
  let to = prof.samples.length
  if (opts.span) {
    const [a, b] = opts.span
    while (from < to && times[from]! < a) from++
    while (to > from && times[to - 1]! > b) to--
  }
  const byFn = new Map<string, number>()
  const byPkg = new Map<string, number>()
  let busy = 0
  for (let i = from; i < to; i++) {
    if (idle(i)) continue
    const us = dur(i)
    busy += us
    const node = byId.get(prof.samples[i]!)!
    let frame = node.callFrame
    let native = false
    if (!frame.url && !frame.functionName.startsWith('(')) {
      let p = parent.get(node.id)
      while (p && !p.callFrame.url) p = parent.get(p.id)
      if (p) {
        frame = p.callFrame
        native = true
      }
    }
    const url = frame.url
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
    const pkg = (m ? m[1]! : url.startsWith('node:') ? 'node' : url.includes('/dist/src/') ? 'bazil' : url.includes('/bench/') ? 'bench' : url.startsWith('wasm://') ? `${url.split('/').pop()!.replace(/-[0-9a-f]+$/, '')} (wasm)` : url ? 'other' : frame.functionName) + (native ? ' (native)' : '')
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + us)
    const fn = `${frame.functionName || '(anonymous)'} ${m ? m[1] + '/' + url.split('/').slice(-1)[0] : url.split('/').slice(-1)[0] ?? ''}`.trim() + (native ? ' → native' : '')
    byFn.set(fn, (byFn.get(fn) ?? 0) + us)
  }
  const fmt = (m: Map<string, number>): string => [...m].sort((x, y) => y[1] - x[1]).slice(0, top).map(([k, v]) => `${k} ${((v / Math.max(1, busy)) * 100).toFixed(0)}%`).join(', ')
  const wall = to > from ? (times[Math.min(to, times.length) - 1]! - times[from]!) / 1e6 : 0
  return { busySecs: busy / 1e6, wallSecs: wall, packages: fmt(byPkg), functions: fmt(byFn) }
}

/** A frame of a sampled stack, as a split's rules see it. */
export interface StackFrame { fn: string; url: string }
/** A share of a split: its name and whether a sampled stack (leaf first) belongs to it. */
export interface ProfileShare { name: string; test: (stack: StackFrame[]) => boolean }

/**
 * Busy main-thread time split by whole stacks, not by leaf: each busy sample goes to the first
 * share whose test accepts its stack (leaf first), else to "other". For questions like "how much
 * went to applying, whatever library did the work". Returns seconds per share, in `shares` order.
 */
export function splitProfile(file: string, shares: ProfileShare[], span?: [number, number]): { busySecs: number; secs: Map<string, number> } {
  const { prof, byId, parent, times } = loadProfile(file)
  const secs = new Map<string, number>(shares.map((s) => [s.name, 0]))
  secs.set('other', 0)
  const byNode = new Map<number, string>()
  let busy = 0
  for (let i = 0; i + 1 < prof.samples.length; i++) {
    if (span && (times[i]! < span[0] || times[i]! > span[1])) continue
    const id = prof.samples[i]!
    const leaf = byId.get(id)!.callFrame.functionName
    if (leaf === '(idle)' || leaf === '(root)') continue
    let share = byNode.get(id)
    if (share === undefined) {
      const stack: StackFrame[] = []
      for (let n: ProfNode | undefined = byId.get(id); n; n = parent.get(n.id)) stack.push({ fn: n.callFrame.functionName, url: n.callFrame.url })
      share = shares.find((s) => s.test(stack))?.name ?? 'other'
      byNode.set(id, share)
    }
    const us = times[i + 1]! - times[i]!
    busy += us
    secs.set(share, secs.get(share)! + us / 1e6)
  }
  return { busySecs: busy / 1e6, secs }
}

/** Now, in the profiles' clock (µs of CLOCK_MONOTONIC). */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

/** `node dist/bench/profile-summary.js [--span=FROM,TO] FILE...`: prints each profile's summary. */
if (process.argv[1]?.endsWith('profile-summary.js')) {
  const span = process.argv.find((a) => a.startsWith('--span='))?.slice(7).split(',').map(Number) as [number, number] | undefined
  for (const f of process.argv.slice(2).filter((a) => !a.startsWith('--'))) {
    const s = summarizeProfile(f, { top: 12, span })
    console.log(`${f}: busy ${s.busySecs.toFixed(2)} s of ${s.wallSecs.toFixed(2)} s\n  ${s.packages}\n  ${s.functions}`)
  }
}

/** Starts the V8 profiler on this thread (node:inspector); the returned function stops it and writes FILE (no-op without a file). */
export async function profileTo(file: string | null): Promise<() => Promise<void>> {
  if (!file) return async () => {}
  const { Session } = await import('node:inspector/promises')
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 500 })
  await session.post('Profiler.start')
  return async () => {
    const { profile: p } = await session.post('Profiler.stop')
    fs.writeFileSync(file, JSON.stringify(p))
    session.disconnect()
  }
}
