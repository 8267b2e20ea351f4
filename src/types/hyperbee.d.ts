// Typed surface of hyperbee 2 that bazil uses (the package ships no types).
declare module 'hyperbee' {
  import type { Hypercore } from 'hypercore'

  export interface Node<K, V> { seq: number; key: K; value: V }
  export interface Batch<K, V> {
    put(key: K, value: V): Promise<void>
    del(key: K): Promise<void>
    get(key: K): Promise<Node<K, V> | null>
    flush(): Promise<void>
    close(): Promise<void>
  }
  export interface RangeOpts<K> { gt?: K; gte?: K; lt?: K; lte?: K; limit?: number; reverse?: boolean }

  export default class Hyperbee<K = Buffer, V = Buffer> {
    constructor(core: Hypercore, opts?: { keyEncoding?: 'binary' | 'utf-8' | 'json'; valueEncoding?: 'binary' | 'utf-8' | 'json' })
    readonly core: Hypercore
    readonly version: number
    ready(): Promise<void>
    close(): Promise<void>
    get(key: K, opts?: { wait?: boolean; update?: boolean }): Promise<Node<K, V> | null>
    put(key: K, value: V): Promise<void>
    del(key: K): Promise<void>
    batch(): Batch<K, V>
    createReadStream(range?: RangeOpts<K>): AsyncIterable<Node<K, V>>
    /** The index's history: one record per put/del block, by seq (gte..lt). */
    createHistoryStream(opts?: { gte?: number; lt?: number; live?: boolean; reverse?: boolean }): AsyncIterable<{ type: 'put' | 'del'; seq: number; key: K; value: V }>
  }
}
