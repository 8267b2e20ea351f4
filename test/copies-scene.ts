// The world of the copies and where tests: in-process nodes with their networks on a loopback
// DHT testnet (net-helpers.ts), a volume one of them writes, and the "stores to" relation
// (`volume storage add` + `peer storage allow`) that makes a peer keep a node's store.
import createTestnet from '@hyperswarm/testnet'
import { encodeKey } from '../src/crypto.js'
import { tempDir } from './helpers.js'
import { addPeer, copyVolumeRecord, shareKey, startPeer, type TestPeer } from './net-helpers.js'
import { toFileRef, type Volume } from '../src/volume/volume.js'
import { randomBytes } from '../src/crypto.js'
import type { Hypercore } from 'hypercore'

/** Starts these peers on a fresh testnet, runs `fn`, and stops everything whatever happens. */
export async function withPeers(names: string[], fn: (...peers: TestPeer[]) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('bazil-copies-')
  const testnet = await createTestnet(4)
  const peers: TestPeer[] = []
  try {
    for (const n of names) peers.push(await startPeer(dir, n, { bootstrap: testnet.bootstrap }))
    await fn(...peers)
  } finally {
    for (const p of peers) await p.stop()
    await testnet.destroy()
    cleanup()
  }
}

/**
 * `owner` and `keeper` share volume `id` (each allows the other); `owner` lets `keeper` read
 * its store (`peer storage allow`) and, with `storesTo`, lists it as storage of `volume`
 * (`volume storage add`): the keeper is asked to keep the owner's store.
 */
export async function link(owner: TestPeer, keeper: TestPeer, id: string, opts: { volume?: string; ownerStorage?: boolean } = {}): Promise<void> {
  await addPeer(owner, keeper, { location: keeper.location(), storage: opts.ownerStorage ?? true, volumes: [id] })
  await addPeer(keeper, owner, { location: owner.location(), volumes: [id] })
  if (opts.volume) owner.dir.addVolumeStorage(opts.volume, encodeKey(keeper.key))
}

/** The node's own `packs` core, opened for its length (close it before the node stops). */
export async function ownPacks(p: TestPeer): Promise<{ readonly length: number; close(): Promise<void> }> {
  const core = p.node.store.get({ key: p.node.chunks.casKey })
  await core.ready()
  return core
}

/** `writer` creates volume "docs" (sharing key shared with the desktops) and stores to each desktop. */
export async function storingTo(writer: TestPeer, desktops: TestPeer[]): Promise<Volume> {
  shareKey([writer, ...desktops])
  const vol = await writer.node.createVolume('docs', 'friends')
  for (const d of desktops) {
    copyVolumeRecord(writer, d, 'docs')
    await link(writer, d, vol.id.toString('hex'), { volume: 'docs' })
  }
  return vol
}

/**
 * Writes /a.bin of `bytes` random bytes on `p` (into its own store, flushed); returns them and
 * the node's own `packs` core, open (close it before the node stops).
 */
export async function writeOwnFile(p: TestPeer, vol: Volume, bytes: number): Promise<{ data: Buffer; own: Buffer; core: Hypercore }> {
  const data = randomBytes(bytes)
  await vol.writeFile('/a.bin', data)
  await vol.flush()
  await p.node.chunks.flush()
  const own = p.node.chunks.casKey
  const core = p.node.store.get({ key: own })
  await core.ready()
  return { data, own, core }
}

/** A file of the volume, read whole through its content store. */
export async function readWhole(vol: Volume, p: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of vol.cas.readFile(toFileRef(vol.tree.stat(p).content!))) chunks.push(c)
  return Buffer.concat(chunks)
}
