// Moves a content store of format version 1 (core `cas`: one object per block, hyperbee
// `cas-index`) into packs (spec/cas.md section 4, "Migration"), at open. Objects keep their
// order; each batch's legacy blocks are cleared once the batch is in packs and indexed, so the
// extra space needed is one batch and a crash mid-way resumes where it stopped (the cleared
// blocks are the migrated ones; anything migrated twice is deduplicated by the pack table).
import fs from 'node:fs'
import path from 'node:path'
import type Corestore from 'corestore'
import type { Hypercore } from 'hypercore'
import type { Log } from '../log.js'
import type { StoredObject } from './pack-codec.js'
import { MIN_OBJECT_BYTES } from './pack-codec.js'
import { BLOCK_VERSION } from './convergent.js'

/** The cores of a store of format version 1 (emptied by the migration). */
export const CAS_CORE_NAME = 'cas'
export const CAS_INDEX_CORE_NAME = 'cas-index'
/** Version 1's address filter cache (DATA/corestore/cas-filter), removed with the old cores. */
const LEGACY_FILTER_FILE = 'cas-filter'
/** Bytes per put during the migration (and per clear of migrated legacy blocks). */
const BATCH_BYTES = 16 * 1024 * 1024
const READ_AHEAD = 64
const PROGRESS_MS = 5000

/** A named core if the corestore holds one by that name, else null (nothing is created). */
async function openIfPresent(store: Corestore, name: string): Promise<Hypercore | null> {
  await store.ready()
  if (!(await store.storage.getAlias({ name, namespace: store.ns }))) return null
  const core = store.get({ name })
  await core.ready()
  return core
}

/** First block still held: the migration clears blocks in order, so they are a prefix. */
async function firstHeld(core: Hypercore): Promise<number> {
  let lo = 0
  let hi = core.length
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2)
    if (await core.has(mid)) hi = mid
    else lo = mid + 1
  }
  return lo
}

/**
 * Migrates the version 1 store in `store`, if there is one, putting its objects with `put`
 * (which deduplicates and packs them). Returns the objects read from the old core.
 */
export async function migrateLegacyStore(store: Corestore, put: (objects: StoredObject[]) => Promise<void>, log: Log): Promise<number> {
  const cas = await openIfPresent(store, CAS_CORE_NAME)
  const index = await openIfPresent(store, CAS_INDEX_CORE_NAME)
  let migrated = 0
  try {
    if (cas && cas.length > 0) {
      const total = cas.length
      const start = await firstHeld(cas)
      const began = Date.now()
      let reported = began
      log('info', `cas store: migrating ${total - start} objects (of ${total}) from the version 1 store (cores cas, cas-index) into packs`)
      let batch: StoredObject[] = []
      let batchBytes = 0
      let batchStart = start
      let skipped = 0
      for (let at = start; at < total; at += READ_AHEAD) {
        const reads: Promise<Buffer | null>[] = []
        for (let i = at; i < Math.min(total, at + READ_AHEAD); i++) reads.push(cas.get(i, { wait: false }))
        const blocks = await Promise.all(reads)
        for (let j = 0; j < blocks.length; j++) {
          const block = blocks[j]
          if (!block || block.length < MIN_OBJECT_BYTES || block[0] !== BLOCK_VERSION) {
            skipped++
            log('warn', `cas store: migration: block ${at + j} of the version 1 store is ${block ? `not an object (${block.length} bytes, version ${block[0]})` : 'not held'}: skipped`)
            continue
          }
          batch.push({ address: block.subarray(1, 33), block })
          batchBytes += block.length
          migrated++
        }
        const end = Math.min(total, at + READ_AHEAD)
        if (batchBytes >= BATCH_BYTES || end === total) {
          await put(batch)
          await cas.clear(batchStart, end)
          batch = []
          batchBytes = 0
          batchStart = end
          if (Date.now() - reported >= PROGRESS_MS) {
            reported = Date.now()
            log('info', `cas store: migration: ${end} of ${total} objects moved into packs (${Math.round((Date.now() - began) / 1000)} s)`)
          }
        }
      }
      log('info', `cas store: migration done: ${migrated} objects in packs${skipped ? `, ${skipped} unreadable blocks skipped` : ''} (${Date.now() - began} ms); the version 1 cores are emptied`)
    }
    // Only once every object is in packs: empty the old cores (their space is freed).
    if (cas && cas.length > 0) {
      await cas.clear(0, cas.length)
      await cas.truncate(0)
    }
    if (index && index.length > 0) {
      await index.clear(0, index.length)
      await index.truncate(0)
    }
    const dir = (store.storage as { path?: unknown }).path
    if (typeof dir === 'string') fs.rmSync(path.join(dir, LEGACY_FILTER_FILE), { force: true })
  } finally {
    await cas?.close()
    await index?.close()
  }
  return migrated
}
