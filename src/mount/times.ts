// The times a utimens call sets. fuse-native hands times over in milliseconds; with our build
// (scripts/build-fuse-native.mjs) UTIME_NOW arrives as 1073 and UTIME_OMIT as 1074. A build
// without that fix sends 1073 for both: then one special time beside a real one is taken as
// omitted (`touch -a -d`, `touch -m -d`, `tar x`), and two mean "now" (so `touch -a` without
// -d also sets mtime there).
import { hasFuseFix } from './native-lib.js'

/** UTIME_NOW (tv_nsec 2^30-1) as fuse-native's milliseconds. */
export const UTIME_NOW_MS = 1073
/** UTIME_OMIT (tv_nsec 2^30-2), apart from UTIME_NOW in our fuse-native build. */
export const UTIME_OMIT_MS = 1074

export interface SetTimes { atime?: number; mtime?: number }

/** Whether the loaded fuse-native tells UTIME_OMIT from UTIME_NOW. */
export function omitApart(): boolean {
  return hasFuseFix('utime-omit-apart')
}

/** The times to set for a utimens(atime, mtime) call at time `now` (an omitted time is absent). */
export function utimensTimes(atime: number, mtime: number, now: number, distinct = omitApart()): SetTimes {
  const special = (t: number): boolean => t === UTIME_NOW_MS || t === UTIME_OMIT_MS
  const one = (t: number, other: number): number | undefined => {
    if (t === UTIME_OMIT_MS) return undefined
    if (t !== UTIME_NOW_MS) return t
    // Without the fix, 1073 beside a real time is the UTIME_OMIT of touch -a/-m -d and tar x.
    return distinct || special(other) ? now : undefined
  }
  const out: SetTimes = {}
  const a = one(atime, mtime)
  const m = one(mtime, atime)
  if (a !== undefined) out.atime = a
  if (m !== undefined) out.mtime = m
  return out
}
