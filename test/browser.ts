// A real browser for the web view's tests: Debian's chromium (/usr/bin/chromium; .ci/run
// installs it), headless, driven by playwright-core, with a fresh profile each time.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { BrowserContext } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
export const hasChromium = fs.existsSync(CHROMIUM)

/** Nothing leaves the machine and nothing is remembered: the flags every launch gets. */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

export interface TestBrowser {
  context: BrowserContext
  close(): Promise<void>
}

export async function launchBrowser(): Promise<TestBrowser> {
  const { chromium } = await import('playwright-core')
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'bazil-chromium-'))
  // A persistent context is how playwright takes a --user-data-dir of our own: a fresh one.
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1100, height: 720 } })
  return {
    context,
    close: async () => {
      await context.close().catch(() => {})
      fs.rmSync(profile, { recursive: true, force: true })
    }
  }
}
