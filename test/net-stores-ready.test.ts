// A command that waits for a peer (volume sync, volume connect) reads through it at once: once
// waitConnected resolves, the stores the peer offered are sources of this node, however long
// the node takes to take them up. (A CI run once read right after a sync and found no source:
// the node was still opening the offered store's cores.)
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tempDir } from './helpers.js'
import { addPeer, sleep, startPeer } from './net-helpers.js'
import { nodeHost } from '../src/net/index.js'
import { encodeKey } from '../src/crypto.js'

test('waitConnected resolves only once the stores the peer offered are taken up (a slow take-up included)', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir()
  let takenUp = 0
  const a = await startPeer(dir, 'a', { bootstrap: [] })
  const b = await startPeer(dir, 'b', {
    bootstrap: [],
    host: (node, net) => {
      const host = nodeHost(node, { writersChanged: (id) => net().writersChanged(id) })
      return {
        ...host,
        async storesOffered(peer, offers) {
          await sleep(700) // a node slow to open the offered store's cores (a loaded machine)
          await host.storesOffered(peer, offers)
          if (offers.storage) takenUp++
        }
      }
    }
  })
  try {
    // A volume of b's that reads what it lacks from a's store (`volume storage add`).
    b.dir.addVolume({ version: 1, name: 'v', id: 'ab'.repeat(32), sharing: 'default', created: 1 })
    b.dir.addVolumeStorage('v', encodeKey(a.key))
    await addPeer(a, b, { storage: true })
    await addPeer(b, a, { location: a.location() })
    await b.net.waitConnected(a.key, 20_000)
    assert.equal(takenUp >= 1, true, 'the store a offers is taken up before waitConnected resolves')
    assert.deepEqual(b.node.remoteStores.list(), [encodeKey(a.key)])
  } finally {
    await b.stop()
    await a.stop()
    cleanup()
  }
})
