// Typed surface of protomux 3 that bazil uses (the package ships no types).
declare module 'protomux' {
  import type { Duplex } from 'node:stream'
  import type { Encoding } from 'compact-encoding'

  export interface MessageOptions<T> {
    encoding?: Encoding<T>
    /** Must not throw: protomux rethrows TypeError/RangeError (safety-catch) and crashes the process. */
    onmessage?: (message: T, channel: Channel) => void | Promise<void>
  }

  export interface ChannelMessage<T> {
    send(message: T): boolean
  }

  export interface Channel {
    readonly opened: boolean
    readonly closed: boolean
    readonly protocol: string
    open(handshake?: unknown): void
    close(): void
    addMessage<T>(opts: MessageOptions<T>): ChannelMessage<T>
    fullyOpened(): Promise<boolean>
  }

  export interface ChannelOptions {
    protocol: string
    id?: Buffer | null
    unique?: boolean
    handshake?: Encoding<unknown>
    messages?: MessageOptions<unknown>[]
    onopen?: (handshake: unknown, channel: Channel) => void | Promise<void>
    onclose?: (isRemote: boolean, channel: Channel) => void | Promise<void>
    ondestroy?: (channel: Channel) => void | Promise<void>
  }

  export default class Protomux {
    constructor(stream: Duplex)
    static from(stream: Duplex): Protomux
    static isProtomux(value: unknown): value is Protomux
    readonly stream: Duplex
    createChannel(opts: ChannelOptions): Channel | null
    pair(opts: { protocol: string; id?: Buffer | null }, notify: (id: Buffer) => void | Promise<void>): void
    unpair(opts: { protocol: string; id?: Buffer | null }): void
    opened(opts: { protocol: string; id?: Buffer | null }): boolean
    destroy(err?: Error): void
  }
}
