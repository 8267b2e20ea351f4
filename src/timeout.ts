// Bounding a wait: one helper for every "this, or give up after ms" (a remote read falling
// back to "not found", a mount read failing with EIO), so the timer is always cleared.

/**
 * Settles as `p` does, or, if it hasn't after `ms`, as `late()` does: its value, or what it
 * throws. The timer is cleared either way; `p` itself is not cancelled.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, late: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(late())
      } catch (err) {
        reject(err as Error)
      }
    }, ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

/** `p`'s value, or `fallback` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  return withTimeout(p, ms, () => fallback)
}
