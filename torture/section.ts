// The contract between `npm run torture` (torture/run.ts) and its sections.
//
// A section is a file torture/NAME.section.ts whose default export is a `Section`. The runner
// loads every dist/torture/*.section.js (or only those named on its command line), runs them
// one at a time and prints a summary table. Sections take their sizes from env vars (each
// documents its own at the top of its file, e.g. BAZIL_TORTURE_ROUNDS) and must finish in a
// few minutes at default sizes. They never run in `npm test`.

/** What the runner gives a section. */
export interface TortureEnv {
  /** A fresh directory for this section alone, removed afterwards unless BAZIL_TORTURE_KEEP=1. */
  tmpDir: string
  /** Progress lines (printed prefixed by the section's name). */
  log: (message: string) => void
}

/** What a section reports: a round count, one line per failure (empty when all held), and its figures. */
export interface SectionResult {
  rounds: number
  failures: string[]
  figures: Record<string, number | string>
}

export interface Section {
  name: string
  run(env: TortureEnv): Promise<SectionResult>
}

/** Env var `name` as a positive integer, else `fallback`. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}=${raw}: expected a whole number`)
  return n
}
