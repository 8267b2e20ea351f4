// Random edits on a tree, from a seeded generator: shared by the index and snapshot-view tests.
import { TreeError, type Tree } from '../src/tree/index.js'

export function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0
    return s / 2 ** 32
  }
}

/** One random op on `t` over the paths it shows (errors of the op itself are fine: nothing changes). */
export function randomOp(t: Tree, r: () => number, n: number): void {
  const all = [...t.walk('/')].filter((s) => !s.id.includes(':'))
  const dirs = all.filter((s) => s.kind === 'dir')
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]
  const dir = pick(dirs).path
  const name = `n${Math.floor(r() * 12)}`
  const at = dir === '/' ? `/${name}` : `${dir}/${name}`
  try {
    const k = r()
    if (k < 0.25) t.writeFile(at, { hash: (n + 1).toString(16).padStart(64, '0'), size: n })
    else if (k < 0.4) t.mkdir(at)
    else if (k < 0.6 && all.length > 1) t.rename(pick(all.slice(1)).path, at)
    else if (k < 0.7 && all.length > 1) {
      const s = pick(all.slice(1))
      if (s.kind === 'dir') t.rmdir(s.path)
      else t.unlink(s.path)
    } else if (k < 0.8 && all.length > 1) t.setattr(pick(all.slice(1)).path, { mode: 0o600 + Math.floor(r() * 64) })
    else if (k < 0.87) {
      // A hard link (spec/tree.md "Hard links"): a further name of a file, in the index as an entry of its own.
      const files = all.filter((s) => s.kind === 'file')
      if (files.length > 0) t.link(pick(files).path, at)
    } else {
      const files = all.filter((s) => s.kind === 'file')
      if (files.length > 0) t.writeFile(pick(files).path, { hash: (n + 7).toString(16).padStart(64, '0'), size: n + 7 })
    }
  } catch (e) {
    if (!(e instanceof TreeError)) throw e
  }
}
