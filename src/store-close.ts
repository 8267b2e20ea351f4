// Closing a corestore while peers may still be sending blocks.
//
// corestore.close() closes every core (hypercore 11.37.1, lib/core.js _close: the replicator,
// then the core's state: lib/session-state.js close() destroys the state's mutex WITHOUT waiting
// for its holder and closes the core's RocksDB session), then the database. A block or upgrade a
// stream delivered just before is verified and stored under that mutex (_verifyBlock /
// _verifyShared): when its flush returns, the core announces the append to its replicator, which
// reads the storage in the background (Replicator.onupgrade -> _resolveBlocksLocally). On a
// closed session that read throws 'RocksDB session is closed' as an unhandled rejection, which
// crashes a server stopping while peers send blocks (and failed test/writers-property after its
// end). So before the store closes: stop replication on every open core (its channels close, no
// further data is taken) and wait until the data already taken is verified and stored.
import type Corestore from 'corestore'
import type { StoreCore } from 'corestore'

/** How long close waits for blocks in flight before closing anyway: a verify is a few storage operations. */
const SETTLE_LIMIT_MS = 10_000

/** Closes `store` once no replication stream is writing into any of its cores. */
export async function closeStore(store: Corestore): Promise<void> {
  const cores = [...store.cores]
  const peers = cores.flatMap((c) => [...c.replicator.peers])
  for (const c of cores) c.replicator.destroy()
  await settled(cores, peers)
  await store.close()
}

/** Resolves once no peer is processing data and no core's state is locked (the store of a verified block). */
async function settled(cores: StoreCore[], peers: StoreCore['replicator']['peers']): Promise<void> {
  const deadline = Date.now() + SETTLE_LIMIT_MS
  while (Date.now() < deadline) {
    const locked = cores.find((c) => c.state !== null && !c.state.mutex.destroyed && !c.state.mutex.idle())
    if (locked?.state) {
      // Queue behind the holder: resolves when it has stored its block and announced it.
      const mutex = locked.state.mutex
      try {
        await mutex.lock()
        mutex.unlock()
      } catch {
        // Destroyed meanwhile: its core is closing on its own.
      }
      continue
    }
    // Data waiting for the replicator's upgrade lock, or still in its Merkle proof, takes the mutex next.
    if (peers.every((p) => p.dataProcessing === 0) && cores.every((c) => c.replicator._rxLock.idle())) return
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}
