// Starting one of our worker threads (the content store's, the tree's), compiled or from sources.
import fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

/**
 * A worker running `<name>.js` next to this file (or next to the module `base`, its
 * import.meta.url) compiled, or `<name>.ts` under tsx (run from sources: a worker does not
 * inherit tsx's loader, so it registers tsx first).
 */
export function startWorker(name: string, base: string = import.meta.url): Worker {
  const js = new URL(`./${name}.js`, base)
  if (fs.existsSync(fileURLToPath(js))) return new Worker(js)
  const ts = new URL(`./${name}.ts`, base).href
  const tsx = import.meta.resolve('tsx/esm/api')
  return new Worker(`import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(ts)}) })`, { eval: true })
}
