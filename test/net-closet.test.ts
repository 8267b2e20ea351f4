// A storage-only ("closet") peer, end to end with the CLI: three data dirs (white, black,
// closet), real servers on a loopback DHT testnet, a FUSE mount on black. The closet holds
// the volume without its sharing key: it keeps every writer log and a full replica of each
// peer's content store, serves them to the volume's other peers while the owner is away, and
// never holds a plaintext name or byte of content.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import createTestnet from '@hyperswarm/testnet'
import type { Hypercore } from 'hypercore'
import { bazil, runInProcess, startServer, summaryOf, tempDir, type ServerProcess } from './helpers.js'
import { startPeer, sleep, type TestPeer } from './net-helpers.js'
import { hasFuse, isMounted, ok, sh } from './peer-setup.js'
import { decodeKey, encodeKey, randomBytes } from '../src/crypto.js'
import { PeerRegistry, ProtocolError, decodeMessage, encodeMessage, type Message } from '../src/net/index.js'
import { MAX_STORES } from '../src/net/protocol.js'
import { DataDir } from '../src/datadir.js'

if (!hasFuse) console.warn('\n*** /dev/fuse is missing: the closet test reads on black with the CLI instead of a mount ***\n')

/**
 * The CLI run in this process: with a server running, it hands the command to the server
 * over the control socket as the `bazil` binary does, without a process start per command.
 */
function cli(dataDir: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runInProcess(dataDir, argv)
}

/** Every regular file under `root` whose bytes contain `needle` (RocksDB's files included: it stores uncompressed here). */
function filesContaining(root: string, needle: Buffer): string[] {
  const hits: string[] = []
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile() && fs.readFileSync(p).includes(needle)) hits.push(path.relative(root, p))
    }
  }
  walk(root)
  return hits
}

/** Behaves like a peer that learned keys it was not given: opens the core and asks `from` for it. */
async function tryToSteal(thief: TestPeer, from: Buffer, key: Buffer): Promise<Hypercore> {
  const core = thief.node.store.get({ key })
  await core.ready()
  const mux = thief.net.muxer(from)
  assert.ok(mux, 'the thief is connected')
  ;(core as unknown as { replicate(m: unknown): void }).replicate(mux)
  return core
}

test('STORES round-trips; the decoder rejects duplicates, overlong counts, truncation and non-canonical forms', () => {
  const key = (n: number): Buffer => Buffer.alloc(32, n)
  const stores: Message = { type: 'stores', stores: [{ node: key(1), cas: key(2), index: key(3) }, { node: key(4), cas: key(5), index: key(6) }] }
  for (const m of [stores, { type: 'stores', stores: [] } as Message]) assert.deepEqual(decodeMessage(encodeMessage(m)), m)
  const reject = (buf: Buffer, re: RegExp): void => {
    assert.throws(() => decodeMessage(buf), (err: Error) => err instanceof ProtocolError && re.test(err.message))
  }
  const enc = encodeMessage(stores)
  assert.equal(enc.length, 2 + 1 + 2 * 96)
  reject(Buffer.concat([Buffer.from([1, 3, 2]), key(1), key(2), key(3), key(1), key(5), key(6)]), /twice/)
  reject(enc.subarray(0, enc.length - 1), /malformed|fit/)
  reject(Buffer.concat([enc, Buffer.from([0])]), /trailing/)
  reject(Buffer.from([1, 3, 0xfd, 1, 1]), /over the limit/)
  reject(Buffer.from([1, 3, 0xfd, 0, 0]), /canonical/)
  assert.throws(() => encodeMessage({ type: 'stores', stores: Array.from({ length: MAX_STORES + 1 }, (_, i) => ({ node: key(i % 250), cas: key(1), index: key(2) })) }), RangeError)
})

test('volume records: readable or storage-only, anything in between is refused', () => {
  const { dir, cleanup } = tempDir('bazil-closet-rec-')
  try {
    const d = DataDir.create(path.join(dir, 'n'))
    const id = randomBytes(32).toString('hex')
    d.addVolume({ version: 1, name: 'held', id, storageOnly: true, created: 1 })
    assert.equal(d.volumeEntry('held').storageOnly, true)
    assert.throws(() => d.volume('held'), (err: Error) => err.message === 'volume held is storage-only on this node: it holds ciphertext and has no sharing key')
    assert.deepEqual(d.listVolumes().map((v) => [v.name, !!v.storageOnly]), [['held', true]])
    const write = (name: string, rec: object): void => fs.writeFileSync(path.join(d.root, 'volumes', `${name}.json`), JSON.stringify(rec))
    write('both', { version: 1, name: 'both', id, sharing: 'default', storageOnly: true, created: 1 })
    assert.throws(() => d.volumeEntry('both'), /inconsistent: a storage-only volume has no sharing key/)
    write('neither', { version: 1, name: 'neither', id, created: 1 })
    assert.throws(() => d.volumeEntry('neither'), /inconsistent: no sharing key name, and not storage-only/)
    write('odd', { version: 1, name: 'odd', id, sharing: 'default', storageOnly: 'yes', created: 1 })
    assert.throws(() => d.volumeEntry('odd'), /"storageOnly" must be true or false/)
    write('reads', { version: 1, name: 'reads', id, storageOnly: true, storage: [], created: 1 })
    assert.throws(() => d.volumeEntry('reads'), /has no "storage"/)
    write('old', { version: 1, name: 'old', id, sharing: 'default', created: 1 })
    assert.equal(d.volume('old').sharing, 'default')
  } finally {
    cleanup()
  }
})

test('a storage-only closet holds and serves ciphertext: black reads white\'s volume from it, white gets black\'s edits from it; no plaintext there', { timeout: 120_000 }, async () => {
  const t0 = Date.now()
  const { dir, cleanup } = tempDir('bazil-closet-')
  const testnet = await createTestnet(4, { host: '127.0.0.1' })
  const bootstrap = [`--bootstrap=127.0.0.1:${testnet.bootstrap[0]!.port}`]
  const W = path.join(dir, 'white')
  const B = path.join(dir, 'black')
  const C = path.join(dir, 'closet')
  const bmnt = path.join(dir, 'bmnt')
  fs.mkdirSync(bmnt)
  // Reads on demand give up after this long (a missing source fails fast, a present one answers in ms).
  process.env.BAZIL_REMOTE_TIMEOUT_MS = '5000'
  const servers = new Map<string, ServerProcess>()
  const logs = (): string => [...servers].map(([n, s]) => `[${n}]\n${s.log()}`).join('\n----\n')
  const start = async (name: string, d: string): Promise<ServerProcess> => {
    const s = await startServer(d, bootstrap)
    servers.set(name, s)
    return s
  }
  const stop = async (name: string): Promise<void> => {
    await servers.get(name)?.stop('SIGTERM')
  }
  const opened: Hypercore[] = []
  let gray: TestPeer | null = null
  const times: Record<string, number> = {}
  const lap = (what: string): void => {
    times[what] = Date.now() - t0
  }
  try {
    // The marker is in every name and every file's content: none of it may reach the closet.
    const marker = `mk${randomBytes(8).toString('hex')}`
    const src = path.join(dir, 'src')
    fs.mkdirSync(path.join(src, `${marker}-docs`), { recursive: true })
    const files: Record<string, string> = {
      [`${marker}-notes.txt`]: `${marker} notes: the plan\n`,
      [`${marker}-docs/${marker}-letter.txt`]: `${marker} dear black,\n`,
      // Several chunks, each with the marker in it.
      [`${marker}-docs/${marker}-big.txt`]: Array.from({ length: 6000 }, (_, i) => `${marker} line ${i} ${randomBytes(24).toString('hex')}\n`).join('')
    }
    for (const [p, text] of Object.entries(files)) fs.writeFileSync(path.join(src, p), text)

    for (const d of [W, B, C]) {
      ok(await cli(d, ['create']), `create ${d}`)
    }
    const key = async (d: string): Promise<string> => ok(await cli(d, ['debug', 'pubkey']), 'pubkey').stdout.trim()
    const WHITE = await key(W)
    const BLACK = await key(B)
    const CLOSET = await key(C)
    const sekrit = randomBytes(32)
    ok(await bazil(W, ['sharing', 'add', 'friends'], sekrit), 'sharing add white')
    ok(await bazil(B, ['sharing', 'add', 'friends'], sekrit), 'sharing add black')

    // Peers know each other before their servers dial: a dial refused because the other side
    // had not added us yet delays the first contact by seconds (spec/protocol.md, known limits).
    ok(await cli(C, ['peer', 'add', WHITE]), 'closet: peer add white')
    ok(await cli(W, ['peer', 'add', CLOSET]), 'white: peer add closet')
    ok(await cli(B, ['peer', 'add', CLOSET]), 'black: peer add closet')
    ok(await cli(B, ['peer', 'add', WHITE]), 'black: peer add white')

    // White writes; the closet connects storage-only and holds everything white has.
    await start('white', W)
    await start('closet', C)
    lap('servers up')
    ok(await bazil(W, ['volume', 'create', '--sharing=friends', 'myfiles']), 'volume create')
    ok(await bazil(W, ['volume', 'import', 'myfiles', src]), 'import')
    lap('imported')
    ok(await cli(W, ['peer', 'volume', 'allow', CLOSET, 'myfiles']), 'white: volume allow closet')
    ok(await cli(W, ['peer', 'storage', 'allow', CLOSET, 'local']), 'white: storage allow closet')
    // White lets black write before black ever connects (recorded in white's log, which the
    // closet holds): black may then join and write through the closet while white is away.
    ok(await cli(W, ['peer', 'add', BLACK]), 'white: peer add black')
    ok(await cli(W, ['peer', 'volume', 'allow', BLACK, 'myfiles']), 'white: volume allow black')
    const withSharing = await bazil(C, ['volume', 'connect', '--storage-only', '--sharing=friends', WHITE, 'myfiles'])
    assert.equal(withSharing.code, 1)
    assert.match(withSharing.stderr, /^bazil: --storage-only holds a volume without its sharing key/)
    const held = ok(await cli(C, ['volume', 'connect', '--storage-only', WHITE, 'myfiles']), 'closet: connect storage-only', logs())
    assert.match(held.stdout, /holding volume "myfiles" from peer \S+ storage-only \(1 writer logs/)
    const cs1 = summaryOf(ok(await cli(C, ['volume', 'sync', '--json', 'myfiles', WHITE]), 'closet: sync with white', logs()).stdout)
    assert.equal(cs1.complete, true, JSON.stringify(cs1))
    assert.equal(cs1.storageOnly, true)
    assert.equal(cs1.writers, 1)
    assert.ok(cs1.entries >= 1, JSON.stringify(cs1))
    assert.equal(cs1.entriesApplied, 0)
    assert.ok(cs1.replica && cs1.replica.blocks >= 2 && cs1.replica.blocks === cs1.replica.length, `the replica of white's store: ${JSON.stringify(cs1)}`)
    lap('closet holds white')

    // White goes away; the closet restarts (what it holds is in writers/ and mirrors.json).
    // Black connects from the closet alone and reads everything.
    await stop('white')
    await stop('closet')
    await start('closet', C)
    ok(await cli(C, ['peer', 'add', BLACK]), 'closet: peer add black')
    ok(await cli(C, ['peer', 'volume', 'allow', BLACK, 'myfiles']), 'closet: volume allow black')
    await start('black', B)
    ok(await bazil(B, ['volume', 'connect', '--sharing=friends', CLOSET, 'myfiles']), 'black: connect from the closet', logs())
    // Black's volume reads white's content: white is offline, the closet holds a replica of its store.
    const sadd = ok(await cli(B, ['volume', 'storage', 'add', 'myfiles', `peerkey:${WHITE}`]), 'black: storage add white', logs())
    assert.match(sadd.stdout, /in use now/, sadd.stdout)
    const bs1 = summaryOf(ok(await cli(B, ['volume', 'sync', '--json', 'myfiles', CLOSET]), 'black: sync with closet', logs()).stdout)
    assert.equal(bs1.complete, true, JSON.stringify(bs1))
    assert.equal(bs1.writers, 2, JSON.stringify(bs1))
    lap('black connected')

    // White admits black as a writer of the volume: they meet once, and white takes black's
    // log from black itself (a log is taken up only from the node it is bound to, never as a
    // relay: spec/protocol.md, "Writer logs"). Black's edits come later, through the closet.
    ok(await cli(W, ['peer', 'add', BLACK]), 'white: peer add black')
    ok(await cli(W, ['peer', 'volume', 'allow', BLACK, 'myfiles']), 'white: volume allow black')
    ok(await cli(B, ['peer', 'volume', 'allow', WHITE, 'myfiles']), 'black: volume allow white')
    await start('white', W)
    const wb = summaryOf(ok(await cli(W, ['volume', 'sync', '--json', 'myfiles', BLACK]), 'white: sync with black', logs()).stdout)
    assert.equal(wb.writers, 2, JSON.stringify(wb))
    await stop('white')
    lap('white met black')

    const names = JSON.parse(ok(await cli(B, ['volume', 'ls', '--json', 'myfiles', `/${marker}-docs`]), 'black: ls').stdout) as { name: string }[]
    assert.deepEqual(names.map((n) => n.name).sort(), [`${marker}-big.txt`, `${marker}-letter.txt`])
    if (hasFuse) {
      ok(await cli(B, ['volume', 'mount', 'myfiles', bmnt]), 'black: mount')
      const tree = await sh(`cd "${bmnt}" && find . | sort`)
      assert.equal(tree.out, ['.', './.snap', `./${marker}-docs`, `./${marker}-docs/${marker}-big.txt`, `./${marker}-docs/${marker}-letter.txt`, `./${marker}-notes.txt`].join('\n') + '\n')
      for (const [p, text] of Object.entries(files)) {
        const r = await sh(`cat "${bmnt}/${p}"`)
        assert.equal(r.code, 0, `${p}: ${r.out.slice(0, 200)}\n${logs()}`)
        assert.equal(r.out, text, p)
      }
      // Black edits: a change to white's file and a new one.
      const edit = await sh(`echo '${marker} black was here' >> "${bmnt}/${marker}-notes.txt" && echo '${marker} from black' > "${bmnt}/${marker}-docs/${marker}-reply.txt" && sync "${bmnt}/${marker}-docs/${marker}-reply.txt" "${bmnt}/${marker}-notes.txt"`)
      assert.equal(edit.code, 0, edit.out)
      ok(await cli(B, ['volume', 'unmount', bmnt]), 'black: unmount')
    } else {
      for (const [p, text] of Object.entries(files)) assert.equal(ok(await cli(B, ['volume', 'cat', 'myfiles', p]), `cat ${p}`, logs()).stdout, text)
      ok(await bazil(B, ['volume', 'import', 'myfiles', path.join(src, `${marker}-notes.txt`)]), 'black: edit')
    }
    lap('black read and edited')

    // Black hands its log and its store to the closet, then goes away too.
    ok(await cli(B, ['peer', 'storage', 'allow', CLOSET, 'local']), 'black: storage allow closet')
    const bs2 = summaryOf(ok(await cli(B, ['volume', 'sync', '--json', 'myfiles', CLOSET]), 'black: sync edits', logs()).stdout)
    assert.equal(bs2.complete, true, JSON.stringify(bs2))
    const cs2 = summaryOf(ok(await cli(C, ['volume', 'sync', '--json', 'myfiles', BLACK]), 'closet: sync with black', logs()).stdout)
    if (process.env.BAZIL_NET_DEBUG) console.log(`closet sync with black: ${JSON.stringify(cs2)}`)
    assert.equal(cs2.complete, true, JSON.stringify(cs2))
    assert.equal(cs2.writers, 2, JSON.stringify(cs2))
    assert.ok(cs2.replica && cs2.replica.blocks > 0 && cs2.replica.blocks === cs2.replica.length, `the replica of black's store: ${JSON.stringify(cs2)}`)
    await stop('black')
    lap('closet holds black')

    // White comes back and gets black's edits from the closet alone (it names the closet as a store).
    await start('white', W)
    ok(await cli(W, ['volume', 'storage', 'add', 'myfiles', `peerkey:${CLOSET}`]), 'white: storage add closet', logs())
    const ws = summaryOf(ok(await cli(W, ['volume', 'sync', '--json', 'myfiles', CLOSET]), 'white: sync with closet', logs()).stdout)
    assert.equal(ws.complete, true, JSON.stringify(ws))
    assert.equal(ws.writers, 2, JSON.stringify(ws))
    const notes = ok(await cli(W, ['volume', 'cat', 'myfiles', `${marker}-notes.txt`]), 'white: cat notes', logs()).stdout
    if (hasFuse) {
      assert.equal(notes, `${files[`${marker}-notes.txt`]}${marker} black was here\n`)
      assert.equal(ok(await cli(W, ['volume', 'cat', 'myfiles', `${marker}-docs/${marker}-reply.txt`]), 'white: cat reply', logs()).stdout, `${marker} from black\n`)
    } else {
      assert.equal(notes, files[`${marker}-notes.txt`])
    }
    lap('white got black\'s edits')

    // The closet refuses what needs plaintext, with one line.
    const refusal = 'bazil: volume myfiles is storage-only on this node: it holds ciphertext and has no sharing key\n'
    for (const argv of [['volume', 'ls', 'myfiles'], ['volume', 'cat', 'myfiles', `${marker}-notes.txt`], ['volume', 'mount', 'myfiles', bmnt], ['log', 'show', 'myfiles'], ['volume', 'storage', 'add', 'myfiles', `peerkey:${WHITE}`]]) {
      const r = argv[1] === 'ls' ? await bazil(C, argv) : await cli(C, argv)
      assert.equal(r.code, 1, argv.join(' '))
      assert.equal(r.stderr, refusal, argv.join(' '))
    }
    assert.match(ok(await cli(C, ['volume', 'list']), 'closet: volume list').stdout, /^myfiles\tstorage-only$/m)

    // A peer the closet knows but allowed no volume: no offer, no replica, and no block of
    // the logs or the stores, whatever keys it learned.
    gray = await startPeer(dir, 'gray', { bootstrap: testnet.bootstrap })
    await gray.stop() // (so that it knows the closet before it dials or is dialled)
    PeerRegistry.update(gray.root, (r) => r.add(decodeKey(CLOSET)))
    ok(await cli(C, ['peer', 'add', encodeKey(gray.key)]), 'closet: peer add gray')
    await gray.restart()
    await gray.net.waitConnected(decodeKey(CLOSET), 20_000)
    await sleep(300)
    assert.deepEqual(gray.net.remote(decodeKey(CLOSET)), { storage: null, volumes: [] })
    assert.deepEqual(gray.net.storeOffers(decodeKey(CLOSET)), { storage: null, stores: [] })
    const volumeId = (JSON.parse(fs.readFileSync(path.join(C, 'volumes', 'myfiles.json'), 'utf8')) as { id: string }).id
    const logKeys = (JSON.parse(fs.readFileSync(path.join(C, 'writers', `${volumeId}.json`), 'utf8')) as { writers: string[] }).writers
    const mirrors = (JSON.parse(fs.readFileSync(path.join(C, 'mirrors.json'), 'utf8')) as { stores: { node: string; cas: string; index: string }[] }).stores
    assert.equal(logKeys.length, 2)
    assert.deepEqual(mirrors.map((m) => m.node).sort(), [WHITE, BLACK].sort())
    const targets = [...logKeys, ...mirrors.flatMap((m) => [m.cas, m.index])].map((k) => decodeKey(k))
    lap('gray connected')
    for (const k of targets) opened.push(await tryToSteal(gray, decodeKey(CLOSET), k))
    await sleep(1500)
    await Promise.all(
      opened.map(async (core) => {
        assert.equal(core.length, 0)
        await assert.rejects(core.get(0, { timeout: 500 }))
      })
    )
    lap('gray got nothing')

    // Nothing of the names or the content is in the closet's data dir, in any file.
    await stop('closet')
    await stop('white')
    const needle = Buffer.from(marker)
    for (const text of [marker, 'notes: the plan', 'dear black', 'black was here', ' line 4321 ']) {
      assert.deepEqual(filesContaining(C, Buffer.from(text)), [], `the closet holds plaintext: "${text}"`)
    }
    // The same scan does find them where the sharing key is (the tree checkpoint), so it looks in the right places.
    assert.ok(filesContaining(W, needle).length > 0, 'the scan finds plaintext on white')
    lap('scanned')
    console.log(`closet scenario timings (ms since start): ${JSON.stringify(times)}`)
    if (process.env.BAZIL_NET_DEBUG) console.log(logs())
  } catch (err) {
    console.error(logs()) // every server's log, the stopped ones' included (a restarted one's last run)
    throw err
  } finally {
    for (const core of opened) await core.close().catch(() => {})
    if (gray) await gray.stop().catch(() => {})
    for (const s of servers.values()) await s.stop('SIGTERM')
    if (isMounted(bmnt)) await sh(`fusermount -uz "${bmnt}"`)
    await testnet.destroy()
    delete process.env.BAZIL_REMOTE_TIMEOUT_MS
    cleanup()
  }
})
