// All of bazil's cryptography, in one place, on sodium-native (SHA-256 alone on node's OpenSSL).
//
// Every key other than the node key pair and the sharing keys is derived here with keyed
// BLAKE2b and a distinct context string per use (see spec/keys.md), so that one secret never
// serves two purposes.
import { createHash } from 'node:crypto'
import sodium from 'sodium-native'
import z32 from 'hypercore-id-encoding'

export const KEY_BYTES = 32
export const HASH_BYTES = 32
export const NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES // 24
export const TAG_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES // 16
export const SIGNATURE_BYTES = sodium.crypto_sign_BYTES // 64

/** Context strings of every derived key. Changing one changes the on-disk format. */
export const CONTEXT = {
  /** Gear table of the content-defined chunker, from the sharing key. */
  gear: 'bazil/cas/gear/v1',
  /** Key under which a chunk's plaintext hash P is hashed to its store address A. */
  casAddress: 'bazil/cas/address/v1',
  /** Per-chunk encryption key: derived from P under this key. */
  casChunkKey: 'bazil/cas/chunk-key/v1',
  /** Volume key: encrypts op-log entries of one volume, from the sharing key + volume id. */
  volume: 'bazil/volume/v1',
  /** State key: seals a volume's state sent to a joiner (spec/tree.md "Starting from a state"), from the volume key. */
  volumeState: 'bazil/volume/state/v1',
  /** Signature over a writer log's binding block (block 0), version 1. */
  logBinding: 'bazil/log/binding/v1',
  /** Signature over a writer log's binding block, version 2 (carries the volume's genesis). */
  logBindingV2: 'bazil/log/binding/v2',
  /** Volume id of a new volume: hashed from its genesis (creator node key, nonce), spec/oplog.md. */
  volumeId: 'bazil/volume/id/v1'
} as const

export class DecryptError extends Error {
  constructor(what: string) {
    super(`${what}: decryption failed (wrong key or corrupted data)`)
    this.name = 'DecryptError'
  }
}

export interface KeyPair {
  publicKey: Buffer
  secretKey: Buffer
}

export function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n)
  sodium.randombytes_buf(b)
  return b
}

/** Random bytes drawn 4 KiB at a time: ids made by the hundred thousand (an import's nodes) cost one call each, not one per id. */
const POOL_BYTES = 4096
let pool: Buffer = Buffer.alloc(0)
let poolAt = 0

/**
 * `n` random bytes (n <= 4096) as hex, for ids that must be unique, never for keys or nonces
 * (those take randomBytes: nothing of a key may sit in a shared buffer).
 */
export function randomHex(n: number): string {
  if (n > POOL_BYTES) return randomBytes(n).toString('hex')
  if (poolAt + n > pool.length) {
    pool = randomBytes(POOL_BYTES)
    poolAt = 0
  }
  const hex = pool.toString('hex', poolAt, poolAt + n)
  poolAt += n
  return hex
}

/** BLAKE2b of data (one buffer or several, hashed as their concatenation), optionally keyed. */
export function hash(data: Buffer | Buffer[], key?: Buffer, outLength: number = HASH_BYTES): Buffer {
  const out = Buffer.alloc(outLength)
  if (Array.isArray(data)) sodium.crypto_generichash_batch(out, data, key)
  else sodium.crypto_generichash(out, data, key)
  return out
}

/** Incremental BLAKE2b-256, for data that arrives in pieces. */
export function hasher(key?: Buffer): { update(data: Buffer): void; digest(): Buffer } {
  const state = sodium.crypto_generichash_instance(key, HASH_BYTES)
  return {
    update: (data) => state.update(data),
    digest: () => {
      const out = Buffer.alloc(HASH_BYTES)
      state.final(out)
      return out
    }
  }
}

/**
 * Derives a 32-byte key: BLAKE2b-256 keyed by `parent` over
 * `context || 0x00 || id`. The zero byte keeps (context, id) pairs unambiguous.
 */
export function deriveKey(parent: Buffer, context: string, id: Buffer = Buffer.alloc(0)): Buffer {
  if (parent.length < 16 || parent.length > 64) throw new Error('deriveKey: parent key must be 16..64 bytes')
  return hash([Buffer.from(context, 'utf8'), Buffer.from([0]), id], parent)
}

/** Expands a key into `length` pseudo-random bytes: BLAKE2b-512 keyed by `key` over a 4-byte LE counter. */
export function expandKey(key: Buffer, length: number): Buffer {
  const out = Buffer.alloc(Math.ceil(length / 64) * 64)
  const counter = Buffer.alloc(4)
  for (let i = 0; i * 64 < length; i++) {
    counter.writeUInt32LE(i)
    hash(counter, key, 64).copy(out, i * 64)
  }
  return out.subarray(0, length)
}

/** XChaCha20-Poly1305: returns ciphertext || tag. */
export function seal(key: Buffer, nonce: Buffer, plain: Buffer, ad: Buffer | null = null): Buffer {
  const out = Buffer.alloc(plain.length + TAG_BYTES)
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plain, ad, null, nonce, key)
  return out
}

/** seal() into `out` (plain.length + TAG_BYTES bytes), for callers that pack many results into one buffer. */
export function sealInto(out: Buffer, key: Buffer, nonce: Buffer, plain: Buffer, ad: Buffer | null = null): void {
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plain, ad, null, nonce, key)
}

/** Inverse of seal; throws DecryptError naming `what` on a wrong key or tampering. */
export function open(key: Buffer, nonce: Buffer, sealed: Buffer, ad: Buffer | null = null, what = 'data'): Buffer {
  if (sealed.length < TAG_BYTES) throw new DecryptError(what)
  const out = Buffer.alloc(sealed.length - TAG_BYTES)
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, sealed, ad, nonce, key)
  } catch {
    throw new DecryptError(what)
  }
  return out
}

export function generateKeyPair(): KeyPair {
  const publicKey = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES)
  const secretKey = Buffer.alloc(sodium.crypto_sign_SECRETKEYBYTES)
  sodium.crypto_sign_keypair(publicKey, secretKey)
  return { publicKey, secretKey }
}

export function sign(message: Buffer, secretKey: Buffer): Buffer {
  const sig = Buffer.alloc(SIGNATURE_BYTES)
  sodium.crypto_sign_detached(sig, message, secretKey)
  return sig
}

export function verify(message: Buffer, signature: Buffer, publicKey: Buffer): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== sodium.crypto_sign_PUBLICKEYBYTES) return false
  return sodium.crypto_sign_verify_detached(signature, message, publicKey)
}

export function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && sodium.sodium_memcmp(a, b)
}

/** A public key as printed everywhere: z-base-32 (52 characters). */
export function encodeKey(key: Buffer): string {
  return z32.encode(key)
}

/** Parses a public key given as z-base-32 or hex; throws a message naming the bad input. */
export function decodeKey(text: string, what = 'key'): Buffer {
  try {
    return z32.decode(text.trim())
  } catch {
    throw new Error(`invalid ${what} "${text}": expected 52 z-base-32 or 64 hex characters`)
  }
}

/**
 * SHA-256, only to compute identifiers other software defines with it (an Automerge
 * change's hash is SHA-256 of its chunk after magic and checksum); never for bazil's own keys.
 */
export function sha256(data: Uint8Array): Buffer {
  // OpenSSL uses the CPU's SHA extensions where there are: 826 vs 99 MB/s for sodium's portable
  // C here (a joiner hashes every change of the volume; session 9, helper join).
  return createHash('sha256').update(data).digest()
}
