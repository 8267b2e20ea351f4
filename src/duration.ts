// Durations the user gives (--grace, BAZIL_GC_INTERVAL): `0`, `90s`, `30m`, `12h`, `7d` (a number alone: seconds).
import { UserError } from './datadir.js'

/** A duration in ms; a clear one-line error naming `what` otherwise. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(text.trim())
  if (!m) throw new UserError(`${what}: "${text}" is not a duration (e.g. 0, 90s, 30m, 12h, 7d)`)
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd']
  return Math.round(Number(m[1]) * unit)
}
