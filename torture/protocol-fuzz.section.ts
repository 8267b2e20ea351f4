// Torture: fuzzed bazil protocol messages from registered peers, while the node serves another.
//
//   BAZIL_TORTURE_FUZZ_MESSAGES  messages to send in all (default 10000)
//   BAZIL_TORTURE_FUZZ_WORKERS   registered fuzzing peers sending at once (default 8)
//   BAZIL_TORTURE_SEED           seed of the generator (default: random; printed)
//
// Each message is random (a valid HELLO/WRITERS/STORES of random shape), a mutation of a valid
// one (bit flips, truncation, extension, a rewritten count or varint), random bytes, an unknown
// version or type, an oversized message, or a garbage frame straight on the encrypted stream
// (not protomux). The node must: never crash; drop the connection of every message its decoder
// or handler rejects, saying why in its log (the reasons are counted); keep every connection
// whose messages are all valid; and keep serving peer b, which receives a's new log entries
// live the whole time and is never disconnected.
import { decodeMessage, encodeMessage, MAX_MESSAGE_BYTES, type Message } from '../src/net/protocol.js'
import { PeerRegistry } from '../src/net/index.js'
import { generateKeyPair } from '../src/crypto.js'
import { addPeer, copyVolumeRecord, shareKey, startPeer, startRogue, type Rogue, type RogueLink } from '../test/net-helpers.js'
import { envInt, type Section, type SectionResult, type TortureEnv } from './section.js'

/** A small seeded generator (mulberry32), so that a failing run can be replayed. */
function rng(seed: number): () => number {
  let t = seed >>> 0
  return () => {
    t = (t + 0x6d2b79f5) >>> 0
    let r = Math.imul(t ^ (t >>> 15), 1 | t)
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296
  }
}

type Kind = 'valid' | 'mutated' | 'random' | 'version' | 'oversized' | 'frame'

interface Sample {
  kind: Kind
  bytes: Buffer
  /** Why the node must reject it (null: it must keep the connection). */
  reject: string | null
}

function normalize(reason: string): string {
  return reason
    .replace(/[0-9a-f]{16,}/g, 'KEY')
    .replace(/"[^"]*"/g, '"…"')
    .replace(/\d+/g, 'N')
    .slice(0, 90)
}

export default {
  name: 'protocol-fuzz',
  async run(env: TortureEnv): Promise<SectionResult> {
    const total = envInt('BAZIL_TORTURE_FUZZ_MESSAGES', 10_000)
    const workers = Math.max(1, envInt('BAZIL_TORTURE_FUZZ_WORKERS', 8))
    const seed = envInt('BAZIL_TORTURE_SEED', Math.floor(Math.random() * 2 ** 31))
    env.log(`seed ${seed}, ${total} messages, ${workers} fuzzing peers`)
    const rand = rng(seed)
    const int = (n: number): number => Math.floor(rand() * n)
    const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(256)))
    const failures: string[] = []
    const crashes: string[] = []
    const onCrash = (err: unknown): void => {
      crashes.push(String((err as Error)?.stack ?? err))
    }
    process.on('uncaughtException', onCrash)
    process.on('unhandledRejection', onCrash)

    const a = await startPeer(env.tmpDir, 'a', { bootstrap: [] })
    const b = await startPeer(env.tmpDir, 'b', { bootstrap: [] })
    const rogues: Rogue[] = []
    try {
      shareKey([a, b])
      const vol = await a.node.createVolume('v', 'friends')
      const idHex = vol.id.toString('hex')
      copyVolumeRecord(a, b, 'v')
      await b.node.volume('v')
      await addPeer(a, b, { volumes: [idHex] })
      await addPeer(b, a, { location: a.location(), volumes: [idHex] })
      await b.net.waitConnected(a.key, 20_000)
      let bDrops = 0
      b.net.on('peer-disconnected', () => bDrops++)

      // The fuzzers: registered at a, allowed the volume (so WRITERS for it reach the handler).
      const ids = Array.from({ length: workers }, () => generateKeyPair())
      PeerRegistry.update(a.root, (r) => {
        for (const k of ids) {
          r.add(k.publicKey)
          r.setVolume(k.publicKey, idHex, true)
        }
      })
      a.net.refresh()
      await a.net.settled()

      // The fuzzer's own HELLO (sent first on every connection) offers volume v, so WRITERS
      // for v are valid and WRITERS for any other volume are rejected by the handler.
      const myHello = encodeMessage({ type: 'hello', storage: null, volumes: [{ id: vol.id, name: 'v' }] })
      const key = (): Buffer => (rand() < 0.3 ? vol.id : bytes(32))
      const name = (): string => {
        const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-'
        let s = alphabet[int(62)]
        for (let i = int(20); i > 0; i--) s += alphabet[int(alphabet.length)]
        return s
      }
      const validMessage = (): Message => {
        const t = int(3)
        if (t === 0) {
          const n = int(4)
          const volumes = Array.from({ length: n }, () => ({ id: bytes(32), name: name() }))
          return { type: 'hello', storage: rand() < 0.5 ? { cas: bytes(32), index: bytes(32) } : null, volumes }
        }
        if (t === 1) return { type: 'writers', volumeId: vol.id, writers: Array.from({ length: 1 + int(5) }, () => bytes(32)) }
        return { type: 'stores', stores: Array.from({ length: int(4) }, () => ({ node: bytes(32), cas: bytes(32), index: bytes(32) })) }
      }
      const mutate = (buf: Buffer): Buffer => {
        const out = Buffer.from(buf)
        switch (int(5)) {
          case 0:
            if (out.length > 0) out[int(out.length)] ^= 1 << int(8)
            return out
          case 1:
            return out.subarray(0, int(out.length))
          case 2:
            return Buffer.concat([out, bytes(1 + int(8))])
          case 3:
            if (out.length > 2) out[2 + int(Math.min(4, out.length - 2))] = int(256)
            return out
          default:
            // a varint in a longer form than needed
            return Buffer.concat([out.subarray(0, 2), Buffer.from([0xfd, out[2] ?? 0, 0]), out.subarray(3)])
        }
      }
      const sample = (): Sample => {
        const r = rand()
        let kind: Kind
        let buf: Buffer
        if (r < 0.25) [kind, buf] = ['valid', encodeMessage(validMessage())]
        else if (r < 0.7) [kind, buf] = ['mutated', mutate(encodeMessage(validMessage()))]
        else if (r < 0.8) [kind, buf] = ['random', bytes(int(300))]
        else if (r < 0.88) [kind, buf] = ['version', Buffer.concat([Buffer.from([rand() < 0.5 ? 2 + int(254) : 1, rand() < 0.5 ? 1 : 4 + int(252)]), bytes(int(80))])]
        else if (r < 0.95) [kind, buf] = ['oversized', Buffer.concat([Buffer.from([1, 1]), bytes(MAX_MESSAGE_BYTES - 1 + int(100_000))])]
        else return { kind: 'frame', bytes: bytes(1 + int(64)), reject: null }
        let reject: string | null = null
        try {
          const m = decodeMessage(buf)
          // What the handler refuses after a valid decode (our HELLO offered only v).
          if (m.type === 'writers' && !m.volumeId.equals(vol.id)) reject = 'writers for a volume its hello did not offer'
        } catch (err) {
          reject = (err as Error).message
        }
        return { kind, bytes: buf, reject }
      }

      const kinds: Record<string, number> = {}
      const expected: Record<string, number> = {}
      let sent = 0
      let drops = 0
      let kept = 0
      let entriesWritten = 0
      const t0 = Date.now()
      // a keeps writing while it is fuzzed; b must receive every entry.
      let writing = true
      const writer = (async () => {
        while (writing) {
          await vol.writeFile(`/during-${entriesWritten}`, Buffer.from(`entry ${entriesWritten}\n`))
          await vol.flush()
          entriesWritten++
          await new Promise((r) => setTimeout(r, 200))
        }
      })()

      const runWorker = async (w: number): Promise<void> => {
        const rogue = await startRogue(env.tmpDir, `fuzz${w}`, ids[w])
        rogues.push(rogue)
        let link: RogueLink | null = null
        let open = false
        const connect = async (): Promise<void> => {
          for (let attempt = 0; ; attempt++) {
            try {
              link = await rogue.connect(a)
              break
            } catch (err) {
              if (attempt >= 20) throw err
              await new Promise((r) => setTimeout(r, 100))
            }
          }
          open = true
          const l = link!
          void l.closed.then(() => {
            if (link === l) open = false
          })
          l.send(myHello)
        }
        await connect()
        while (sent < total) {
          sent++
          const s = sample()
          kinds[s.kind] = (kinds[s.kind] ?? 0) + 1
          if (!open) await connect()
          const l = link!
          if (s.kind === 'frame') {
            // Not a protomux frame: protomux drops the stream or skips it; either way the
            // framing after it is lost, so this connection ends here.
            l.conn.write(s.bytes)
            await Promise.race([l.closed, new Promise((r) => setTimeout(r, 100))])
            await l.close()
            open = false
            continue
          }
          l.send(s.bytes)
          if (s.reject === null) {
            kept++
            continue
          }
          expected[normalize(s.reject)] = (expected[normalize(s.reject)] ?? 0) + 1
          const gone = await Promise.race([l.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))])
          if (gone) drops++
          else {
            failures.push(`${s.kind} message kept the connection open although it must be rejected (${s.reject}): ${s.bytes.subarray(0, 40).toString('hex')}`)
            await l.close()
          }
          open = false
          if (failures.length > 20) return
        }
      }
      await Promise.all(Array.from({ length: workers }, (_, w) => runWorker(w)))
      writing = false
      await writer
      const ms = Date.now() - t0

      // b got every entry a wrote meanwhile, and was never dropped.
      const logAtB = b.node.store.get({ key: vol.log.key })
      await logAtB.ready()
      const deadline = Date.now() + 20_000
      while (logAtB.contiguousLength < vol.log.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      if (logAtB.contiguousLength < vol.log.length) failures.push(`b has ${logAtB.contiguousLength} of a's ${vol.log.length} log blocks after the fuzzing`)
      await logAtB.close()
      if (bDrops > 0) failures.push(`b was disconnected ${bDrops} times during the fuzzing`)
      if (!a.net.connected(b.key)) failures.push('b is not connected to a after the fuzzing')
      for (const c of crashes) failures.push(`uncaught: ${c.split('\n')[0]}`)

      // The node's own reasons, from its log.
      const reasons: Record<string, number> = {}
      for (const line of a.lines) {
        const m = /: (protocol error: .*|bad message: .*): disconnecting$/.exec(line)
        if (m) reasons[normalize(m[1])] = (reasons[normalize(m[1])] ?? 0) + 1
      }
      const logged = Object.values(reasons).reduce((x, y) => x + y, 0)
      const rejectedByDecoderOrHandler = Object.values(expected).reduce((x, y) => x + y, 0)
      if (logged < rejectedByDecoderOrHandler) failures.push(`${rejectedByDecoderOrHandler} messages had to be rejected with a reason, the node logged ${logged}`)
      const top = Object.entries(reasons).sort((x, y) => y[1] - x[1])
      env.log(`reasons (node's log): ${top.map(([r, n]) => `${n}× ${r}`).join(' | ')}`)
      const figures: Record<string, number | string> = {
        messages: sent,
        'kept (valid)': kept,
        'rejected (disconnects)': drops,
        'reasons logged': logged,
        'distinct reasons': top.length,
        crashes: crashes.length,
        'b entries received live': entriesWritten,
        'b disconnects': bDrops,
        seconds: Math.round(ms / 100) / 10,
        seed
      }
      for (const [k, n] of Object.entries(kinds)) figures[`kind ${k}`] = n
      return { rounds: sent, failures, figures }
    } finally {
      process.off('uncaughtException', onCrash)
      process.off('unhandledRejection', onCrash)
      for (const r of rogues) await r.close().catch(() => {})
      await b.stop()
      await a.stop()
    }
  }
} satisfies Section

