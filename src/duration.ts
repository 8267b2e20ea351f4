// Durations the user gives (--grace, BAZIL_GC_INTERVAL): `0`, `90s`, `30m`, `12h`, `7d` (a number alone: seconds).
import { UserError } from './user-error.js'

/** A duration in ms; a clear one-line error naming `what` otherwise. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(text.trim())
  if (!m) throw new UserError(`${what}: "${text}" is not a duration (e.g. 0, 90s, 30m, 12h, 7d)`)
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd']
  return Math.round(Number(m[1]) * unit)
}

/**
 * A point in time the user gives (`log show --since`): ISO 8601 (`2026-12-06`,
 * `2026-12-06T09:30:00Z`; no zone: UTC) or a duration before `now` (`90s`, `2h`, `3d`), in ms.
 */
export function parseTime(text: string, what: string, now = Date.now()): number {
  const t = text.trim()
  if (/^\d{4}-\d{2}-\d{2}/.test(t)) {
    // Date.parse reads a date-time without a zone as local time: UTC is the one every peer reads alike.
    const zoned = /T.*(Z|[+-]\d{2}:?\d{2})$/i.test(t) || !t.includes('T') ? t : t + 'Z'
    const ms = Date.parse(zoned)
    if (Number.isFinite(ms)) return ms
    throw new UserError(`${what}: "${text}" is not a valid ISO 8601 time (e.g. 2026-12-06, 2026-12-06T09:30:00Z)`)
  }
  if (!/^\d+(?:\.\d+)?[smhd]?$/.test(t)) throw new UserError(`${what}: "${text}" is neither an ISO 8601 time (2026-12-06T09:30:00Z) nor a time ago (90s, 30m, 2h, 3d)`)
  return now - parseDuration(t, what)
}
