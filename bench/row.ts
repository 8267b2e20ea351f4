import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

/** One figure of a benchmark: bazil's value, and where there is one the baseline measured in the same run and their ratio. */
export interface Row {
  name: string
  value: number
  unit: string
  baseline?: string
  baselineValue?: number
  ratio?: number
  target?: number
  ok?: boolean
  note?: string
}

/** Prints rows one per line (value, unit, target met or missed, same-run baseline and ratio, note). */
export function printRows(rows: Row[], width = 62): void {
  for (const r of rows) {
    const v = r.unit === 'MiB' || r.unit === 'ms' ? r.value.toFixed(2) : r.value.toFixed(3)
    const target = r.target !== undefined ? `  (target ${/\/s$/.test(r.unit) ? '≥' : '≤'} ${r.target}: ${r.ok ? 'ok' : 'MISSED'})` : ''
    const base = r.baseline && r.baselineValue !== undefined ? `  [${r.baseline}: ${r.baselineValue.toFixed(3)} ${r.unit}, ratio ${r.ratio?.toFixed(2)}]` : ''
    console.log(`${r.name.padEnd(width)} ${v.padStart(9)} ${r.unit}${target}${base}${r.note ? `  ${r.note}` : ''}`)
  }
}

/** Writes bench/results/NAME.json: date, host, the given fields, rows. */
export function writeResults(repoRoot: string, name: string, fields: Record<string, unknown>, rows: Row[]): void {
  const out = path.join(repoRoot, 'bench', 'results', `${name}.json`)
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), host: { cpus: os.cpus().length, node: process.version }, ...fields, rows }, null, 2) + '\n')
}
