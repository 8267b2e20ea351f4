// Who may use the web view: whoever holds its token (printed by `bazil web url`, never logged).
// A browser brings it once in the URL (`?token=`), gets a session cookie for it and is sent on
// without it; a script sends `Authorization: Bearer TOKEN`. A session's state-changing
// requests (POST only) also carry that session's CSRF token and come from this origin. On a
// loopback address the Host header must name this server, so a page on another site that
// rebinds its DNS name to 127.0.0.1 reaches nothing. spec/web.md "Access".
import { equal, hash, randomBytes } from '../crypto.js'

/** Sessions kept (oldest dropped first): a browser that loses its cookie opens the printed URL again. */
const MAX_SESSIONS = 256

export type Access = { kind: 'session'; csrf: string } | { kind: 'bearer' }

export class WebAuth {
  readonly token = randomBytes(32).toString('base64url')
  /** Cookies are per host, not per port: each server run names its own, so two on one machine never share one. */
  readonly cookieName = `bazil_web_${randomBytes(4).toString('hex')}`
  private readonly sessions = new Set<string>()
  private readonly secret = randomBytes(32)

  isToken(candidate: string | undefined): boolean {
    return candidate !== undefined && same(candidate, this.token)
  }

  /** A new browser session for the holder of the token: its cookie value. */
  openSession(): string {
    const id = randomBytes(32).toString('base64url')
    this.sessions.add(id)
    if (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.values().next().value!)
    return id
  }

  /** How a request is allowed in (session cookie or bearer header), or null. */
  access(cookie: string | undefined, authorization: string | undefined): Access | null {
    const bearer = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1]
    if (this.isToken(bearer)) return { kind: 'bearer' }
    if (cookie !== undefined && this.sessions.has(cookie)) return { kind: 'session', csrf: this.csrfToken(cookie) }
    return null
  }

  /** The session's CSRF token: a keyed BLAKE2b of its id under this run's secret (nothing to store). */
  private csrfToken(session: string): string {
    return hash(Buffer.from(session), this.secret).toString('base64url')
  }
}

/** Equal strings, compared in time that does not depend on where they differ. */
export function same(a: string, b: string): boolean {
  return equal(Buffer.from(a), Buffer.from(b))
}
