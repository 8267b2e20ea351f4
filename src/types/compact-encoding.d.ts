// Typed surface of compact-encoding 3 that bazil uses (the package ships no types).
declare module 'compact-encoding' {
  export interface State {
    start: number
    end: number
    buffer: Buffer | null
  }

  export interface Encoding<T> {
    preencode(state: State, value: T): void
    encode(state: State, value: T): void
    decode(state: State): T
  }

  export const uint: Encoding<number>
  export const uint8: Encoding<number>
  export const uint16: Encoding<number>
  export const uint32: Encoding<number>
  export const string: Encoding<string>
  export const utf8: Encoding<string>
  export const buffer: Encoding<Buffer | null>
  export const fixed32: Encoding<Buffer>
  export const raw: Encoding<Buffer>
  export function array<T>(enc: Encoding<T>): Encoding<T[]>
  export function state(start?: number, end?: number, buffer?: Buffer | null): State
  export function encode<T>(enc: Encoding<T>, value: T): Buffer
  export function decode<T>(enc: Encoding<T>, buffer: Buffer): T

  const c: {
    uint: Encoding<number>
    uint8: Encoding<number>
    uint16: Encoding<number>
    uint32: Encoding<number>
    string: Encoding<string>
    utf8: Encoding<string>
    buffer: Encoding<Buffer | null>
    fixed32: Encoding<Buffer>
    raw: Encoding<Buffer>
    array: typeof array
    state: typeof state
    encode: typeof encode
    decode: typeof decode
  }
  export default c
}
