// hypercore-id-encoding: z-base-32 for 32-byte keys (ships no types).
declare module 'hypercore-id-encoding' {
  export function encode(key: Buffer): string
  export function decode(id: string | Buffer): Buffer
  export function normalize(id: string | Buffer): string
  export function isValid(id: string | Buffer): boolean
  const _default: { encode: typeof encode; decode: typeof decode; normalize: typeof normalize; isValid: typeof isValid }
  export default _default
}
