// `npm run torture`: the reliability suite. Loads every section (dist/torture/*.section.js),
// or only those named on the command line (`npm run torture -- kill9 full-disk`), runs them
// one at a time and prints a summary table. Exit status 1 if any section failed or threw.
//
// Env: BAZIL_TORTURE_KEEP=1 keeps each section's temp dir (printed) for a post-mortem.
// Each section documents its own size variables at the top of its file.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Section, SectionResult } from './section.js'

const here = path.dirname(fileURLToPath(import.meta.url))

interface Outcome { name: string; result: SectionResult; secs: number }

async function loadSections(wanted: string[]): Promise<Section[]> {
  const files = fs.readdirSync(here).filter(f => f.endsWith('.section.js')).sort()
  const sections: Section[] = []
  for (const file of files) {
    const mod = await import(pathToFileURL(path.join(here, file)).href) as { default?: Section }
    const section = mod.default
    if (section === undefined || typeof section.run !== 'function' || typeof section.name !== 'string') {
      throw new Error(`${file}: no default export { name, run } (see torture/section.ts)`)
    }
    sections.push(section)
  }
  const unknown = wanted.filter(w => !sections.some(s => s.name === w))
  if (unknown.length > 0) {
    throw new Error(`no torture section named ${unknown.join(', ')} (have: ${sections.map(s => s.name).join(', ') || 'none'})`)
  }
  return wanted.length === 0 ? sections : sections.filter(s => wanted.includes(s.name))
}

async function runOne(section: Section): Promise<Outcome> {
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `bazil-torture-${section.name}-`))
  const log = (message: string): void => { console.log(`[${section.name}] ${message}`) }
  log(`start (temp dir ${tmpDir})`)
  const t0 = process.hrtime.bigint()
  let result: SectionResult
  try {
    result = await section.run({ tmpDir, log })
  } catch (err) {
    result = { rounds: 0, failures: [`threw: ${(err as Error).stack ?? String(err)}`], figures: {} }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  for (const f of result.failures) log(`FAILURE: ${f}`)
  if (process.env.BAZIL_TORTURE_KEEP === '1') log(`kept ${tmpDir}`)
  else {
    try {
      fs.rmSync(tmpDir, { recursive: true, force: true })
    } catch (err) {
      log(`could not remove ${tmpDir} (a mount left behind?): ${(err as Error).message}`)
    }
  }
  log(`done in ${secs.toFixed(1)} s: ${result.failures.length === 0 ? 'ok' : `${result.failures.length} failure(s)`}`)
  return { name: section.name, result, secs }
}

function figures(r: SectionResult): string {
  return Object.entries(r.figures).map(([k, v]) => `${k}=${v}`).join(', ')
}

function printSummary(outcomes: Outcome[]): void {
  const rows = outcomes.map(o => [
    o.name,
    o.result.failures.length === 0 ? 'ok' : 'FAIL',
    String(o.result.rounds),
    String(o.result.failures.length),
    o.secs.toFixed(1),
    figures(o.result),
  ])
  const head = ['section', 'status', 'rounds', 'failures', 'secs', 'figures']
  console.log('\n| ' + head.join(' | ') + ' |')
  console.log('|' + head.map(() => '---').join('|') + '|')
  for (const r of rows) console.log('| ' + r.join(' | ') + ' |')
}

async function main(): Promise<void> {
  const sections = await loadSections(process.argv.slice(2))
  if (sections.length === 0) throw new Error(`no torture sections in ${here}`)
  const outcomes: Outcome[] = []
  for (const s of sections) outcomes.push(await runOne(s))
  printSummary(outcomes)
  if (outcomes.some(o => o.result.failures.length > 0)) process.exitCode = 1
}

main().catch(err => {
  console.error(`torture: ${(err as Error).message}`)
  process.exitCode = 1
})
