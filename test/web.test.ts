// The web view (issue 14, spec/web.md) in a real browser: headless Chromium against two real
// servers on a loopback testnet, with FUSE mounts. A file written through one peer's mount
// appears in the other's browser without a reload; a snapshot is taken and browsed; the log
// shows who wrote what; restoring a version from a file's history, and a file from a snapshot,
// brings the old content back in both mounts; a conflict appears in both peers' open pages and
// resolving it in one browser clears it on both; a file is pinned and unpinned; a request
// without the token (or a change from another origin, or without the session's CSRF token) is
// refused. BAZIL_SCREENSHOTS=1 saves the main pages as docs/web-*.png (the README shows them).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import path from 'node:path'
import type { Page } from 'playwright-core'
import { hasChromium, launchBrowser, type TestBrowser } from './browser.js'
import { bazil, repoRoot, tempDir } from './helpers.js'
import { parseWebAddress } from '../src/web/address.js'
import { PeerCluster, eventually, hasFuse, sh } from './peer-setup.js'

const VOL = 'notes'
const asRoot = process.getuid?.() === 0
const skip = !hasChromium ? 'needs /usr/bin/chromium (Debian package chromium; .ci/run installs it)' : !hasFuse || !asRoot ? 'needs /dev/fuse and root (the peers write through FUSE mounts)' : false
const screenshots = process.env.BAZIL_SCREENSHOTS === '1'

/** An HTTP request with headers fetch() would not let us set (Host, Origin, Cookie). */
function request(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

test('--web takes HOST:PORT, loopback unless another address is given; bad input is one line', async () => {
  assert.deepEqual(parseWebAddress('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080, loopback: true })
  assert.deepEqual(parseWebAddress('localhost:0'), { host: 'localhost', port: 0, loopback: true })
  assert.deepEqual(parseWebAddress('[::1]:9000'), { host: '::1', port: 9000, loopback: true })
  assert.deepEqual(parseWebAddress('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080, loopback: false })
  for (const bad of ['8080', '127.0.0.1', '127.0.0.1:99999', '[nope]:80', 'a b:80']) assert.throws(() => parseWebAddress(bad), /--web must be HOST:PORT|not an IPv6 address/, bad)
  const { dir, cleanup } = tempDir()
  try {
    const r = await bazil(path.join(dir, 'data'), ['server', 'run', '--web=8080'])
    assert.notEqual(r.code, 0)
    assert.equal(r.stderr, 'bazil: --web must be HOST:PORT, e.g. --web=127.0.0.1:8080 (got "8080")\n')
  } finally {
    cleanup()
  }
})

describe('the web view in a browser, two peers', { skip }, () => {
  let c: PeerCluster
  let browser: TestBrowser
  const url: Record<string, URL> = {}
  before(async () => {
    c = await PeerCluster.create(['white', 'black'], { env: { BAZIL_REMOTE_TIMEOUT_MS: '3000' }, serverArgs: ['--web=127.0.0.1:0'] })
    await c.start('white', 'black')
    await c.run('white', ['volume', 'create', '--sharing=friends', VOL])
    await c.connect('white', 'black', VOL)
    await c.mount(VOL, 'white', 'black')
    for (const name of ['white', 'black']) url[name] = new URL((await c.run(name, ['web', 'url'])).stdout.trim())
    browser = await launchBrowser()
  })
  after(async () => {
    await browser?.close()
    await c?.close()
  })

  /** Opens a peer's web view by the address `bazil web url` printed, then `pathname`. */
  async function open(name: string, pathname: string): Promise<Page> {
    const page = await browser.context.newPage()
    const first = await page.goto(url[name]!.href)
    assert.equal(first?.status(), 200, `${name}'s web view at its token URL`)
    assert.equal(new URL(page.url()).searchParams.get('token'), null, 'the token leaves the address bar')
    if (pathname !== '/') await page.goto(new URL(pathname, url[name]).href)
    await page.waitForSelector('#live.on') // the event stream is up
    return page
  }

  /** Writes a file through a peer's mount (in a child shell: never this process on a FUSE mount). */
  async function writeIn(name: string, file: string, text: string): Promise<void> {
    const r = await sh(`printf '%s' '${text}' > ${c.get(name).mnt}/${file} && sync ${c.get(name).mnt}/${file}`)
    assert.equal(r.code, 0, r.out)
  }

  async function readsIn(name: string, file: string, text: string): Promise<void> {
    let seen = ''
    await eventually(`${file} in ${name}'s mount reads ${JSON.stringify(text)}`, async () => (seen = (await sh(`cat ${c.get(name).mnt}/${file}`)).out) === text, 60_000, 200).catch((err: Error) => {
      throw new Error(`${err.message} (it reads ${JSON.stringify(seen)})
${c.logs()}`)
    })
  }

  async function shot(page: Page, name: string): Promise<void> {
    if (screenshots) await page.screenshot({ path: path.join(repoRoot, 'docs', `web-${name}.png`), fullPage: true })
  }

  test('a request without the token is refused', async () => {
    const base = url.white!.origin
    for (const p of ['/', '/app.js', '/events', `/v/${VOL}/files`]) {
      const r = await request(base + p)
      assert.equal(r.status, 403, `GET ${p} without a token`)
      assert.match(r.body, /bazil web url/)
    }
    assert.equal((await request(`${base}/?token=not-the-token`)).status, 403, 'a wrong token')
    // The bearer header is the token too, for scripts; a rebinding site's Host is refused even with it.
    const bearer = { authorization: `Bearer ${url.white!.searchParams.get('token')}` }
    assert.equal((await request(`${base}/`, { headers: bearer })).status, 200)
    assert.equal((await request(`${base}/`, { headers: { ...bearer, host: `evil.example:${url.white!.port}` } })).status, 403, 'a foreign Host')
    // In the browser: a page opened without the token is refused, and says how to get one.
    const page = await browser.context.newPage()
    const r = await page.goto(`${base}/v/${VOL}/files`)
    assert.equal(r?.status(), 403)
    assert.match(await page.textContent('body') ?? '', /bazil web url/)
    await page.close()
  })

  test('a change needs this origin and the session\'s CSRF token', async () => {
    const page = await open('white', `/v/${VOL}/snapshots`)
    // The session's own page, a POST without the form's CSRF field: refused, nothing taken.
    const status = await page.evaluate(async (vol) => (await fetch(`/v/${vol}/snapshots`, { method: 'POST', body: new URLSearchParams({ name: 'forged' }) })).status, VOL)
    assert.equal(status, 403)
    // The session cookie with the right CSRF field but from another origin: refused too.
    const cookie = (await browser.context.cookies(url.white!.origin)).map((k) => `${k.name}=${k.value}`).join('; ')
    const csrf = await page.getAttribute('input[name=_csrf]', 'value')
    const other = await request(`${url.white!.origin}/v/${VOL}/snapshots`, {
      method: 'POST',
      headers: { cookie, origin: 'http://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name: 'forged', _csrf: csrf ?? '' }).toString()
    })
    assert.equal(other.status, 403)
    const list = (await c.run('white', ['volume', 'snapshot', 'list', VOL])).stdout
    assert.ok(!list.includes('forged'), `no snapshot was taken:\n${list}`)
    await page.close()
  })

  test('a file written on one peer appears in the other\'s browser without a reload', { timeout: 180_000 }, async () => {
    const page = await open('black', `/v/${VOL}/files`)
    await page.evaluate(() => Object.assign(globalThis, { stayedOpen: true }))
    assert.equal(await page.locator('tr[data-path="/greeting.txt"]').count(), 0)
    await writeIn('white', 'greeting.txt', 'hello, world\n')
    await page.waitForSelector('tr[data-path="/greeting.txt"]', { timeout: 120_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${c.logs()}`)
    })
    assert.equal(await page.evaluate(() => (globalThis as { stayedOpen?: boolean }).stayedOpen), true, 'the page was not reloaded')
    await shot(page, 'files')
    await page.click('a:text("greeting.txt")')
    assert.equal((await page.textContent('pre.content'))?.trim(), 'hello, world')
    await page.close()
  })

  test('a snapshot taken in the browser lists and browses; the log shows who wrote what', { timeout: 120_000 }, async () => {
    const page = await open('black', `/v/${VOL}/snapshots`)
    await page.fill('input[name=name]', 'before-edit')
    await page.click('button:text("Take a snapshot")')
    await page.waitForSelector('tr[data-snapshot="before-edit"]')
    assert.match((await c.run('black', ['volume', 'snapshot', 'list', VOL])).stdout, /before-edit/)
    await shot(page, 'snapshots')
    await page.click('tr[data-snapshot="before-edit"] a:text("Browse")')
    await page.waitForSelector('tr[data-path="/greeting.txt"]')
    assert.match(await page.textContent('.notice') ?? '', /before-edit/)
    // The log: white's write of /greeting.txt, and the filter by writer keeps it.
    await page.goto(new URL(`/v/${VOL}/log`, url.black).href)
    const row = page.locator('table.timeline tr', { hasText: '/greeting.txt' }).first()
    await row.waitFor()
    await shot(page, 'log')
    await row.locator('a').first().click()
    assert.match(new URL(page.url()).search, /writer=/)
    assert.ok(await page.locator('table.timeline tr', { hasText: '/greeting.txt' }).count() > 0)
    const writers = await page.locator('table.timeline tbody tr td:nth-child(2) code').evaluateAll((els) => [...new Set(els.map((e) => e.getAttribute('title')))])
    assert.equal(writers.length, 1, `one writer after filtering: ${writers.join(', ')}`)
    await page.close()
  })

  test('the overview shows the peer connected and the volume in sync with it', async () => {
    const page = await open('white', '/')
    const black = c.get('black').key
    await page.waitForSelector(`tr[data-peer="${black}"] td.on`)
    // The volume: black is in sync with this node (nothing to fetch or send), no conflicts.
    await page.locator(`tr[data-volume="${VOL}"]`, { hasText: 'in sync' }).waitFor({ timeout: 60_000 })
    await shot(page, 'overview')
    await page.close()
  })

  test('restoring a version from the history page brings the old content back in the mount', { timeout: 180_000 }, async () => {
    await writeIn('white', 'greeting.txt', 'second version\n')
    await readsIn('black', 'greeting.txt', 'second version\n')
    const page = await open('black', `/v/${VOL}/file?path=/greeting.txt`)
    await page.locator('pre.content', { hasText: 'second version' }).waitFor()
    // The history, newest first: the first version (13 bytes) has a Restore button.
    const first = page.locator('table.history tbody tr', { hasText: '13B' }).first()
    await shot(page, 'file')
    await first.locator('button:text("Restore")').click()
    await page.locator('pre.content', { hasText: 'hello, world' }).waitFor()
    assert.ok(await page.locator('table.history tbody tr[data-op="restore"]').count() > 0, 'the restore is in the history')
    await readsIn('black', 'greeting.txt', 'hello, world\n')
    await readsIn('white', 'greeting.txt', 'hello, world\n')
    await page.close()
  })

  test('resolving a conflict in the browser clears it on both peers', { timeout: 240_000 }, async () => {
    await writeIn('white', 'greeting.txt', 'second version\n')
    await readsIn('black', 'greeting.txt', 'second version\n')
    type History = { versions: { size?: number; hash?: string; current?: true }[] }
    const v1 = (JSON.parse((await c.run('white', ['volume', 'history', '--json', VOL, '/greeting.txt'])).stdout) as History).versions.find((v) => v.size === 13)!
    // Apart: black (no server: the CLI opens its data dir) restores the first version; white writes another.
    await c.stop('black')
    await c.run('black', ['volume', 'restore', VOL, '/greeting.txt', `--version=${v1.hash}`])
    await writeIn('white', 'greeting.txt', 'white while apart\n')
    const page = await open('white', `/v/${VOL}/conflicts`)
    assert.equal(await page.locator('[data-conflict]').count(), 0)
    await c.start('black')
    url.black = new URL((await c.run('black', ['web', 'url'])).stdout.trim())
    // They meet: the conflict appears in white's open page, pushed, no reload.
    await page.locator('[data-conflict="/greeting.txt"]').waitFor({ timeout: 120_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${c.logs()}`)
    })
    const blackPage = await open('black', `/v/${VOL}/conflicts`)
    await blackPage.locator('[data-conflict="/greeting.txt"]').waitFor({ timeout: 60_000 })
    await shot(page, 'conflicts')
    // White keeps its own version.
    await page.locator('[data-conflict="/greeting.txt"] tr', { hasText: 'this node' }).locator('button').click()
    await page.locator('text=No conflicts.').waitFor()
    await readsIn('white', 'greeting.txt', 'white while apart\n')
    // On black: the open page clears without a reload, the CLI lists none, the mount has white's version.
    await blackPage.locator('text=No conflicts.').waitFor({ timeout: 60_000 })
    for (const name of ['white', 'black']) {
      const listed = JSON.parse((await c.run(name, ['volume', 'conflicts', '--json', VOL])).stdout) as unknown[]
      assert.deepEqual(listed, [], `${name} lists no conflict`)
    }
    await readsIn('black', 'greeting.txt', 'white while apart\n')
    await page.close()
    await blackPage.close()
  })

  test('restoring a file from a snapshot in the browser brings the snapshot\'s content back on both peers', { timeout: 120_000 }, async () => {
    const page = await open('black', `/v/${VOL}/file?path=/greeting.txt&snapshot=before-edit`)
    assert.equal((await page.textContent('pre.content'))?.trim(), 'hello, world')
    await page.click('button:text("Restore this file from snapshot before-edit")')
    // Back on the file as it is now: the snapshot's content, a restore in its history.
    await page.locator('pre.content', { hasText: 'hello, world' }).waitFor()
    assert.equal(await page.locator('.notice').count(), 0, 'the page shows the volume as it is now')
    assert.ok(await page.locator('table.history tbody tr[data-op="restore"]', { hasText: 'before-edit' }).count() > 0)
    await readsIn('black', 'greeting.txt', 'hello, world\n')
    await readsIn('white', 'greeting.txt', 'hello, world\n')
    await page.close()
  })

  test('the sync & storage page shows each writer in sync, the volume\'s use, pins (pinned from a file\'s page, unpinned here), copies and the cache', async () => {
    const page = await open('white', `/v/${VOL}/storage`)
    // Both writers' logs, each held here whole (the two peers met and synced above).
    await page.locator('#writers tbody tr', { hasText: 'in sync' }).nth(1).waitFor({ timeout: 60_000 })
    assert.match(await page.textContent('#usage') ?? '', /Files/)
    // Pin a file from its page: listed here with what is held; then unpinned from here.
    await page.goto(new URL(`/v/${VOL}/file?path=/greeting.txt`, url.white).href)
    await page.click('button:text("Pin (keep it here)")')
    await page.locator('text=pinned').first().waitFor()
    assert.match((await c.run('white', ['pin', '--list'])).stdout, /greeting\.txt/)
    await page.goto(new URL(`/v/${VOL}/storage`, url.white).href)
    await page.locator('tr[data-pin="/greeting.txt"]').waitFor()
    assert.match(await page.textContent('#cache') ?? '', /Budget/)
    await shot(page, 'storage')
    await page.locator('tr[data-pin="/greeting.txt"] button:text("Unpin")').click()
    await page.locator('text=Nothing pinned').waitFor()
    assert.doesNotMatch((await c.run('white', ['pin', '--list'])).stdout, /greeting\.txt/)
    await page.close()
  })
})
