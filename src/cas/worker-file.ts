// Starting one of the content store's worker threads, compiled or from sources.
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

/**
 * A worker running `<name>.js` next to this file (compiled), or `<name>.ts` under tsx (run from
 * sources: a worker does not inherit tsx's loader, so it registers tsx first).
 */
export function startWorker(name: string): Worker {
  const js = new URL(`./${name}.js`, import.meta.url)
  if (fs.existsSync(fileURLToPath(js))) return new Worker(js)
  const ts = new URL(`./${name}.ts`, import.meta.url).href
  const tsx = import.meta.resolve('tsx/esm/api')
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(ts)}) })`, { eval: true })
}
