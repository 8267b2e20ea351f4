// Iteration benchmark of the content store alone (no CLI, no op log): big-file import and
// export, and many small files imported 4 at a time like `bazil volume import` does.
//
//   node --import tsx bench/cas-perf.ts [WORKDIR]
// CAS_BIG_MIB (default 1024), CAS_SMALL_FILES (default 10000), CAS_SMALL_IN_FLIGHT (default 4),
// CAS_SKIP=big|small.
// Uses WORKDIR/big/big.bin and WORKDIR/small/ if present (so baselines can share the data),
// otherwise creates them. The store lives in WORKDIR/store-* and is deleted afterwards.
import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import Corestore from 'corestore'
import type { Cas as CasType, ChunkStore as ChunkStoreType } from '../src/cas/index.js'

// CAS_MODULE: another copy of src/cas/index (e.g. an older version) to compare against.
const { Cas, ChunkStore } = (await import(process.env.CAS_MODULE ?? '../src/cas/index.js')) as typeof import('../src/cas/index.js')
type Cas = CasType
type ChunkStore = ChunkStoreType

const MiB = 1024 * 1024
const BIG_MIB = Number(process.env.CAS_BIG_MIB ?? 1024)
const SMALL_FILES = Number(process.env.CAS_SMALL_FILES ?? 10000)
const SMALL_IN_FLIGHT = Number(process.env.CAS_SMALL_IN_FLIGHT ?? 4)
const SKIP = process.env.CAS_SKIP ?? ''
const work = path.resolve(process.argv[2] ?? '.bench-work-cas')

function secondsSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e9
}

function ensureBig(): string {
  const file = path.join(work, 'big', 'big.bin')
  if (fs.existsSync(file) && fs.statSync(file).size === BIG_MIB * MiB) return file
  fs.mkdirSync(path.dirname(file), { recursive: true })
  const fd = fs.openSync(file, 'w')
  for (let i = 0; i < BIG_MIB; i++) fs.writeSync(fd, randomBytes(MiB))
  fs.closeSync(fd)
  return file
}

function ensureSmall(): string[] {
  const root = path.join(work, 'small')
  if (!fs.existsSync(root)) {
    for (let i = 0; i < SMALL_FILES; i++) {
      const dir = path.join(root, `d${Math.floor(i / 100)}`)
      if (i % 100 === 0) fs.mkdirSync(dir, { recursive: true })
      fs.writeFileSync(path.join(dir, `f${i}.txt`), randomBytes(512 + Math.floor(Math.random() * 8192)))
    }
  }
  const files: string[] = []
  for (const d of fs.readdirSync(root)) for (const f of fs.readdirSync(path.join(root, d))) files.push(path.join(root, d, f))
  return files.slice(0, SMALL_FILES)
}

async function withStore<T>(tag: string, fn: (cas: Cas, chunks: ChunkStore) => Promise<T>): Promise<T> {
  const dir = path.join(work, `store-${tag}-${process.pid}`)
  fs.rmSync(dir, { recursive: true, force: true })
  const store = new Corestore(dir)
  const chunks = await ChunkStore.open(store)
  try {
    return await fn(new Cas(chunks, Buffer.alloc(32, 7)), chunks)
  } finally {
    await chunks.close()
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function big(): Promise<void> {
  const file = ensureBig()
  await withStore('big', async (cas, chunks) => {
    const t0 = process.hrtime.bigint()
    const ref = await cas.writeFile(file)
    const appended = secondsSince(t0)
    await chunks.flush?.()
    const w = secondsSince(t0)
    console.log(`big write returned after ${appended.toFixed(2)} s, indexed after ${w.toFixed(2)} s`)
    console.log(`big write  ${BIG_MIB} MiB: ${w.toFixed(2)} s, ${((BIG_MIB * MiB) / 1e6 / w).toFixed(1)} MB/s`)
    const t1 = process.hrtime.bigint()
    let n = 0
    for await (const part of cas.readFile(ref)) n += part.length
    const r = secondsSince(t1)
    if (n !== BIG_MIB * MiB) throw new Error(`read ${n} bytes`)
    console.log(`big read   ${BIG_MIB} MiB: ${r.toFixed(2)} s, ${((BIG_MIB * MiB) / 1e6 / r).toFixed(1)} MB/s`)
    const t2 = process.hrtime.bigint()
    const again = await cas.writeFile(file)
    const d = secondsSince(t2)
    if (!again.hash.equals(ref.hash)) throw new Error('re-import gave another ref')
    console.log(`big re-import (all dedupe): ${d.toFixed(2)} s, ${((BIG_MIB * MiB) / 1e6 / d).toFixed(1)} MB/s`)
  })
}

async function small(): Promise<void> {
  const files = ensureSmall()
  await withStore('small', async (cas, chunks) => {
    const t0 = process.hrtime.bigint()
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < files.length) await cas.writeFile(files[next++]!)
    }
    await Promise.all(Array.from({ length: SMALL_IN_FLIGHT }, worker))
    await chunks.flush?.()
    const s = secondsSince(t0)
    console.log(`small write ${files.length} files (${SMALL_IN_FLIGHT} in flight): ${s.toFixed(2)} s, ${(files.length / s).toFixed(0)} files/s`)
  })
}

if (!SKIP.includes('small')) await small()
if (!SKIP.includes('big')) await big()
