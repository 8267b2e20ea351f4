// The cache budget: how many bytes of content this node does not have to keep (blocks of its
// local copies of peers' stores) it may hold. Given as a size (`20GiB`, `500MiB`, `1.5TB`) or
// as a share of the disk holding the data dir (`10%`); kept in DATA/cache.json (spec/datadir.md).
import fs from 'node:fs'
import { UserError } from '../user-error.js'
import { replaceFileSync } from '../atomic-file.js'
import { formatBytes } from '../format-bytes.js'

export { formatBytes }

/** A budget as the user gave it: bytes, or a percentage of the disk's size. */
export type BudgetSpec = { bytes: number } | { percent: number }

/** Without `bazil cache size`: a tenth of the disk holding the data dir (50 GB of a 500 GB laptop SSD). */
export const DEFAULT_BUDGET: BudgetSpec = { percent: 10 }

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4
}

/** Parses `20GiB`, `500MiB`, `1.5TB`, `1048576`, `10%`; a bad size is a UserError naming it. */
export function parseBudget(text: string): BudgetSpec {
  const t = text.trim()
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(t)
  if (pct) {
    const percent = Number(pct[1])
    if (!(percent > 0 && percent <= 100)) throw new UserError(`bad cache size "${text}": a percentage of the disk must be above 0 and at most 100`)
    return { percent }
  }
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(t)
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) throw new UserError(`bad cache size "${text}": use a size like 20GiB, 500MiB, 2GB or 10% (of the disk holding the data dir)`)
  const bytes = Math.floor(Number(m[1]) * unit)
  if (!Number.isSafeInteger(bytes)) throw new UserError(`bad cache size "${text}": too large`)
  return { bytes }
}

/** The spec as a user would write it (`500 MiB` → `500MiB`, percent → `10%`). */
export function formatBudget(spec: BudgetSpec): string {
  return 'percent' in spec ? `${spec.percent}%` : formatBytes(spec.bytes)
}


/** The budget in bytes: a percentage is of the size of the file system holding `dataDir`. */
export function budgetBytes(spec: BudgetSpec, dataDir: string): number {
  if ('bytes' in spec) return spec.bytes
  const st = fs.statfsSync(dataDir)
  return Math.floor((st.blocks * st.bsize * spec.percent) / 100)
}

/** DATA/cache.json: `{"version": 1, "budget": "<size as parseBudget reads it>"}`. */
const CONFIG_VERSION = 1

/** The budget set with `bazil cache size`, or null (the default applies). A damaged file is a UserError naming it. */
export function readBudget(file: string): BudgetSpec | null {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new UserError(`cannot read ${file}: ${(err as Error).message}`)
  }
  let obj: { version?: unknown; budget?: unknown }
  try {
    obj = JSON.parse(text) as typeof obj
  } catch {
    throw new UserError(`${file} is damaged (not JSON): fix it, delete it (the default budget applies) or set one with \`bazil cache size SIZE\``)
  }
  if (typeof obj !== 'object' || obj === null || obj.version !== CONFIG_VERSION || typeof obj.budget !== 'string') {
    throw new UserError(`${file} is damaged or from a newer bazil (expected {"version": 1, "budget": "SIZE"}): set the budget again with \`bazil cache size SIZE\``)
  }
  return parseBudget(obj.budget)
}

export function writeBudget(file: string, spec: BudgetSpec): void {
  replaceFileSync(file, JSON.stringify({ version: CONFIG_VERSION, budget: formatBudget(spec) }) + '\n')
}
