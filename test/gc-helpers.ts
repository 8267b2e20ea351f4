// Helpers of the gc tests: a data dir with volume `v` filled by the caller, closed, handed to the test.
import path from 'node:path'
import { DataDir } from '../src/datadir.js'
import { Node } from '../src/node.js'
import type { Volume } from '../src/volume/volume.js'
import { tempDir } from './helpers.js'

/** A fresh data dir whose volume `v` (sharing key `default`) `fill` writes; closed, then `fn(root)`; removed after. */
export async function withFilledVolume(fill: (vol: Volume) => Promise<void>, fn: (root: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir()
  try {
    const root = path.join(dir, 'data')
    const node = await Node.open(DataDir.create(root))
    try {
      const vol = await node.createVolume('v', 'default')
      await fill(vol)
      await vol.flush()
    } finally {
      await node.close()
    }
    await fn(root)
  } finally {
    cleanup()
  }
}
