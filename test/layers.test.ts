// The layers stay layers: no import cycle among src/ modules (type-only imports count: they tie
// the modules' concepts together just the same), and the folders below Volume (logs, tree, cas)
// import nothing from the ones above it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { repoRoot } from './helpers.js'

const src = path.join(repoRoot, 'src')

/** Every .ts module under src/ with the src/ modules it imports or re-exports from (static only). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) graph.set(p, [])
    }
  }
  walk(src)
  const re = /^\s*(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]/gm
  for (const [file, out] of graph) {
    for (const m of fs.readFileSync(file, 'utf8').matchAll(re)) {
      const target = path.join(path.dirname(file), m[1]!).replace(/\.js$/, '.ts')
      if (graph.has(target)) out.push(target)
    }
  }
  return graph
}

test('no import cycle among the modules of src/', () => {
  const graph = importGraph()
  const state = new Map<string, 'open' | 'done'>()
  const cycles: string[] = []
  const visit = (f: string, stack: string[]): void => {
    state.set(f, 'open')
    for (const t of graph.get(f)!) {
      if (state.get(t) === 'open') cycles.push([...stack.slice(stack.indexOf(t)), t].map((x) => path.relative(src, x)).join(' -> '))
      else if (!state.has(t)) visit(t, [...stack, t])
    }
    state.set(f, 'done')
  }
  for (const f of graph.keys()) if (!state.has(f)) visit(f, [f])
  assert.deepEqual(cycles, [])
})

test('logs/, tree/ and cas/ import nothing from the layers above them', () => {
  const below = ['logs', 'tree', 'cas']
  const above = ['volume', 'mount', 'copy', 'net', 'server', 'cli', 'node.ts']
  const bad: string[] = []
  for (const [file, targets] of importGraph()) {
    const layer = path.relative(src, file).split(path.sep)[0]!
    if (!below.includes(layer)) continue
    for (const t of targets) if (above.includes(path.relative(src, t).split(path.sep)[0]!)) bad.push(`${path.relative(src, file)} -> ${path.relative(src, t)}`)
  }
  assert.deepEqual(bad, [])
})
