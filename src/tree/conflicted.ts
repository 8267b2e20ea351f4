/**
 * Which records with concurrent values an apply may have changed without a patch (spec/tree.md
 * "Applying changes"): Automerge emits none when a further losing value joins an already
 * conflicted key, so such records are re-read by id. Only those whose record object an applied
 * change wrote `content` or `del` on (CheckedChange.valueObjs) can have gained a value: the
 * others are left alone, so an apply costs what it touches, not every conflict of the shard.
 */
import type { Handle } from './shards.js'

/** The ids among `multi` whose record object (the map under their root key in `h`) is in `objs`. */
export function conflictedTouched(h: Handle, multi: Iterable<string>, objs: ReadonlySet<string>): string[] {
  const out: string[] = []
  if (objs.size === 0) return out
  for (const id of multi) {
    const v = h.getWithType('_root', id)
    if (v !== null && v[0] === 'map' && objs.has(v[1] as string)) out.push(id)
  }
  return out
}
