// The times a utimens call sets. fuse-native hands times over in milliseconds; with our build
// (scripts/build-fuse-native.mjs) UTIME_NOW arrives as 1073 and UTIME_OMIT as 1074. A build
// without that fix sends 1073 for both: then both mean "now" (touch -a also sets mtime).

/** UTIME_NOW (tv_nsec 2^30-1) as fuse-native's milliseconds. */
export const UTIME_NOW_MS = 1073
/** UTIME_OMIT (tv_nsec 2^30-2), apart from UTIME_NOW in our fuse-native build. */
export const UTIME_OMIT_MS = 1074

export interface SetTimes { atime?: number; mtime?: number }

/** The times to set for a utimens(atime, mtime) call at time `now` (an omitted time is absent). */
export function utimensTimes(atime: number, mtime: number, now: number): SetTimes {
  const one = (t: number): number | undefined => (t === UTIME_OMIT_MS ? undefined : t === UTIME_NOW_MS ? now : t)
  const out: SetTimes = {}
  const a = one(atime)
  const m = one(mtime)
  if (a !== undefined) out.atime = a
  if (m !== undefined) out.mtime = m
  return out
}
